#!/usr/bin/env bash
# Make a Pulumi CLI with its Python language host available, without any download from
# Pulumi's sites (they cannot be reached here): everything is built from Go modules that
# the Go module proxy serves, pinned by tools/pulumi/go.mod + go.sum.
#
# Prints ONE line on stdout: the directory holding
#   pulumi  pulumi-language-python  pulumi-language-python-exec  pulumi-resource-pulumi-python
# Put it first on PATH (all four must sit together for a Python program with dynamic resources):
#   PATH="$(scripts/setup-pulumi.sh):$PATH"
# Progress and errors go to stderr.
#
# 1. A `pulumi` already on PATH is used when `pulumi version` >= 3.200.0 and the three companion
#    files are beside it or on PATH.
# 2. Otherwise the pinned build is cached outside the repo, shared by every clone on the machine:
#      ${EDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-testbed}/pulumi/<stamp>/bin
#    <stamp> hashes the pin and the build flags, so a rebuild happens only when they change.
#    The first build takes several minutes (about 10 on 2 cores); later runs are instant.
#
# EDGE_PULUMI_BUILD=1 skips step 1 (always use the pinned build).
set -euo pipefail

MIN_PULUMI_VERSION=3.200.0
COMPANIONS=(pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python)

log() { printf 'pulumi: %s\n' "$*" >&2; }
die() { printf 'pulumi: ERROR: %s\n' "$*" >&2; exit 1; }

# version_ge A B: true when dotted version A >= B (a leading "v" and any "-suffix" are ignored).
version_ge() {
    local a="${1#v}" b="${2#v}"
    a="${a%%[-+]*}"; b="${b%%[-+]*}"
    local -a x y
    IFS=. read -r -a x <<<"$a"
    IFS=. read -r -a y <<<"$b"
    local i
    for i in 0 1 2; do
        local xi="${x[i]:-0}" yi="${y[i]:-0}"
        xi="${xi%%[!0-9]*}"; yi="${yi%%[!0-9]*}" # "27rc1" -> "27"
        [[ "$xi" =~ ^[0-9]+$ ]] || return 1
        [[ "$yi" =~ ^[0-9]+$ ]] || return 1
        if ((10#$xi > 10#$yi)); then return 0; fi
        if ((10#$xi < 10#$yi)); then return 1; fi
    done
    return 0
}

# --- 1. an existing pulumi on PATH ------------------------------------------------------------
use_existing() {
    local exe dir ver f
    exe="$(command -v pulumi 2>/dev/null)" || return 1
    dir="$(cd "$(dirname "$exe")" && pwd -P)"
    ver="$(PULUMI_SKIP_UPDATE_CHECK=true timeout 30 "$exe" version 2>/dev/null | head -n1 | tr -d '[:space:]')" || return 1
    if ! [[ "${ver#v}" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]]; then
        log "ignoring $exe: could not read its version (got '$ver')"
        return 1
    fi
    if ! version_ge "$ver" "$MIN_PULUMI_VERSION"; then
        log "ignoring $exe: version $ver is older than $MIN_PULUMI_VERSION"
        return 1
    fi
    for f in "${COMPANIONS[@]}"; do
        if [[ ! -x "$dir/$f" ]] && ! command -v "$f" >/dev/null 2>&1; then
            log "ignoring $exe ($ver): no $f beside it or on PATH"
            return 1
        fi
    done
    log "using $exe ($ver)"
    printf '%s\n' "$dir"
}

if [[ "${EDGE_PULUMI_BUILD:-}" != 1 ]] && use_existing; then
    exit 0
fi

# --- 2. the pinned build ------------------------------------------------------------------------
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
MOD_DIR="$REPO/tools/pulumi"
[[ -f "$MOD_DIR/go.mod" && -f "$MOD_DIR/go.sum" ]] || die "missing $MOD_DIR/go.mod or go.sum"

PKG_PATH=github.com/pulumi/pulumi/pkg/v3
SDK_PATH=github.com/pulumi/pulumi/sdk/v3
pin_of() { awk -v m="$1" '$1 == m { print $2; exit }' "$MOD_DIR/go.mod"; }
PULUMI_VERSION="$(pin_of "$PKG_PATH")"
SDK_VERSION="$(pin_of "$SDK_PATH")"
[[ -n "$PULUMI_VERSION" ]] || die "tools/pulumi/go.mod does not require $PKG_PATH"
[[ "$PULUMI_VERSION" == "$SDK_VERSION" ]] ||
    die "tools/pulumi/go.mod pins $PKG_PATH $PULUMI_VERSION but $SDK_PATH $SDK_VERSION: they must match"

BUILD_TAGS=osusergo,grpcnotrace
LDFLAGS="-s -w -X $SDK_PATH/go/common/version.Version=$PULUMI_VERSION"
BUILD_DESC="CGO_ENABLED=0 go build -trimpath -buildvcs=false -mod=readonly -tags $BUILD_TAGS -ldflags '$LDFLAGS'"

STAMP="$(
    {
        cat "$MOD_DIR/go.mod" "$MOD_DIR/go.sum"
        find "$MOD_DIR/cmd" -type f -name '*.go' | LC_ALL=C sort | xargs -r cat
        printf '%s\n' "$BUILD_DESC"
    } | sha256sum | cut -c1-16
)"

. "$REPO/scripts/setup-cache.sh"
CACHE="$(edge_cache_dir)" || exit 1
ROOT="$CACHE/pulumi"
FINAL="$ROOT/$STAMP"
BIN="$FINAL/bin"

complete() {
    local f
    [[ -f "$1/.complete" && -x "$1/pulumi" ]] || return 1
    for f in "${COMPANIONS[@]}"; do [[ -x "$1/$f" ]] || return 1; done
}

if complete "$BIN"; then
    printf '%s\n' "$BIN"
    exit 0
fi

mkdir -p "$ROOT"
# One build at a time per cache (parallel first runs of several clones wait for each other).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$ROOT/.lock"
    if ! flock -n 9; then
        log "another build of this cache is running; waiting for it…"
        flock 9
    fi
    if complete "$BIN"; then
        printf '%s\n' "$BIN"
        exit 0
    fi
    # Holding the lock, any half-built folder is from a build that was killed: drop it.
    rm -rf "$ROOT"/.build-*
fi

# Go: present and at least the version tools/pulumi/go.mod asks for.
GO="$(command -v go 2>/dev/null || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; fi
[[ -n "$GO" ]] || die "the 'go' command was not found (not on PATH, not in /usr/local/go/bin). Install Go >= $(awk '$1 == "go" { print $2; exit }' "$MOD_DIR/go.mod") and put it on PATH (Debian 12's golang-go package is too old), then run this again."
GO_WANT="$(awk '$1 == "go" { print $2; exit }' "$MOD_DIR/go.mod")"
GO_HAVE="$(cd "$MOD_DIR" && { GOWORK=off "$GO" env GOVERSION 2>/dev/null || true; })"
GO_HAVE="${GO_HAVE#go}"
if [[ -z "$GO_HAVE" ]] || ! version_ge "$GO_HAVE" "$GO_WANT"; then
    die "$GO is Go ${GO_HAVE:-of unknown version}; building Pulumi needs Go >= $GO_WANT. Put a newer go first on PATH, or run with GOTOOLCHAIN=go$GO_WANT so the go command fetches that toolchain from the Go module proxy."
fi

log "building $PULUMI_VERSION from Go modules with go$GO_HAVE (first time takes several minutes)…"
log "cache: $FINAL"
START=$SECONDS

TMP="$(mktemp -d "$ROOT/.build-$STAMP.XXXXXX")"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 0755 "$TMP"
mkdir "$TMP/bin"

# progress WHAT TOTAL: pass lines through to $TMP/build.log, and say how many came, every 20 s.
progress() {
    local what=$1 total=$2 count=0 last=$SECONDS line
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$TMP/build.log"
        count=$((count + 1))
        if ((SECONDS - last >= 20)); then
            log "$what: $count of $total ($((SECONDS - START))s)"
            last=$SECONDS
        fi
    done
    log "$what: $count of $total"
}

export GOWORK=off CGO_ENABLED=0
TARGETS=("$PKG_PATH/cmd/pulumi" ./cmd/pulumi-language-python)
cd "$MOD_DIR"
MODULES=$(grep -vc '/go.mod ' go.sum)
"$GO" mod download -x 2>&1 | { grep --line-buffered '\.zip$' || true; } | progress "modules fetched" "at most $MODULES"
[[ ${PIPESTATUS[0]} == 0 ]] || die "downloading the Go modules failed: $(tail -n 20 "$TMP/build.log")"
PACKAGES=$("$GO" list -mod=readonly -tags "$BUILD_TAGS" -deps "${TARGETS[@]}" | wc -l)
"$GO" build -v -trimpath -buildvcs=false -mod=readonly -tags "$BUILD_TAGS" -ldflags "$LDFLAGS" \
    -o "$TMP/bin/" "${TARGETS[@]}" 2>&1 | progress "packages compiled" "$PACKAGES"
[[ ${PIPESTATUS[0]} == 0 ]] || die "go build failed:
$(tail -n 30 "$TMP/build.log")
If go.mod/go.sum are out of date, run 'go mod tidy' in tools/pulumi."
cd "$REPO"

# The two Python-side scripts ship inside the sdk module the CLI was built from.
SDK_DIR="$(cd "$MOD_DIR" && "$GO" list -mod=readonly -m -f '{{.Dir}}' "$SDK_PATH")"
[[ -n "$SDK_DIR" && -d "$SDK_DIR" ]] || die "could not locate $SDK_PATH in the Go module cache"
install -m 0755 "$SDK_DIR/python/cmd/pulumi-language-python-exec" "$TMP/bin/pulumi-language-python-exec"
install -m 0755 "$SDK_DIR/python/dist/pulumi-resource-pulumi-python" "$TMP/bin/pulumi-resource-pulumi-python"

GOT="$(PULUMI_SKIP_UPDATE_CHECK=true "$TMP/bin/pulumi" version | head -n1 | tr -d '[:space:]')"
[[ "$GOT" == "$PULUMI_VERSION" ]] || die "built pulumi reports version '$GOT', expected $PULUMI_VERSION"

printf 'version=%s\nstamp=%s\nbuild=%s\ngo=%s\n' "$PULUMI_VERSION" "$STAMP" "$BUILD_DESC" "$GO_HAVE" \
    >"$TMP/bin/.complete"

# Publish atomically: the stamp folder appears whole or not at all.
if [[ -e "$FINAL" ]]; then
    rm -rf "$FINAL" # left over without a .complete marker (e.g. by hand); never a finished build
fi
mv -T "$TMP" "$FINAL"
trap - EXIT

log "built $PULUMI_VERSION in $((SECONDS - START))s"
printf '%s\n' "$BIN"
