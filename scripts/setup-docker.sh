#!/usr/bin/env bash
# Make a Docker engine available for the edge testbed on a machine without systemd.
# `setup-docker.sh config` only writes the daemon config (when no engine answers).
#
# If an engine already answers, it is used as it is and nothing is changed. Otherwise dockerd is
# installed (Debian's docker.io) if missing, given a daemon config whose bridge addresses cannot
# collide with anything this machine routes, and started in the background so that it outlives
# this script.
#
# Why the address care: this machine reaches its package registries and DNS through
# 192.0.2.0/24, 203.0.113.0/24 and 10.255.255.0/24, and the lab uses 198.18.0.0/15 and 10.0.0.0/8
# for its own networks. Docker's defaults (and any bridge it creates) must stay clear of all of
# them, or the machine cuts itself off. So docker0 ("bip") and the pools for networks created
# without an explicit subnet ("default-address-pools") are picked at run time, among /16s of
# 172.16.0.0/12, skipping every prefix in `ip -4 route show table all` (except docker's own bridges).
#
# Docker's iptables management stays on: the lab's internal networks rely on it for isolation.
#
# Environment (all optional):
#   EDGE_DOCKERD_LOG      dockerd log file (default /var/log/edge-testbed-dockerd.log)
#   EDGE_DOCKERD_TIMEOUT  seconds to wait for the engine to answer (default 60)
set -euo pipefail

readonly LOG=${EDGE_DOCKERD_LOG:-/var/log/edge-testbed-dockerd.log}
readonly START_TIMEOUT=${EDGE_DOCKERD_TIMEOUT:-60}
readonly DOCKER_ETC=/etc/docker
readonly DAEMON_JSON=$DOCKER_ETC/daemon.json
# daemon.json is JSON (no comments, and dockerd rejects unknown keys), so the "written by this
# script" mark is a sidecar file holding the checksum of what was written. An edited file no
# longer matches and is then left alone like any file written by someone else.
readonly MARKER=$DOCKER_ETC/daemon.json.edge-testbed.sha256
readonly PIDFILE=/var/run/docker.pid
readonly DATA_ROOT=/var/lib/docker

# Never used by docker whatever the routing table says: this machine's own traffic and the lab's
# own address space (see the header).
readonly ALWAYS_AVOID=(192.0.2.0/24 203.0.113.0/24 10.255.255.0/24 198.18.0.0/15 10.0.0.0/8)
# How many /16s (each split into /24 networks) go into default-address-pools.
readonly POOL_COUNT=4

say() { printf 'setup-docker: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

engine_answers() {
    # `timeout`: a wedged daemon must not hang the script.
    timeout 15 docker info >/dev/null 2>&1
}

# --- addresses ------------------------------------------------------------------------------------

ip_to_int() {
    local IFS=.
    # shellcheck disable=SC2086  # splitting the dotted quad on purpose
    set -- $1
    echo $(( ($1 << 24) | ($2 << 16) | ($3 << 8) | $4 ))
}

# True if two IPv4 prefixes (a.b.c.d/len) share any address: they agree on the shorter length.
prefixes_overlap() {
    local a=${1%/*} alen=${1#*/} b=${2%/*} blen=${2#*/}
    local len=$(( alen < blen ? alen : blen ))
    local mask=$(( len == 0 ? 0 : (0xFFFFFFFF << (32 - len)) & 0xFFFFFFFF ))
    (( ($(ip_to_int "$a") & mask) == ($(ip_to_int "$b") & mask) ))
}

# Every IPv4 prefix this machine routes, in all tables, except the default route (it covers
# everything) and routes of docker's own bridges (they are what is being chosen here).
host_prefixes() {
    ip -4 route show table all | awk '
        BEGIN { split("unicast local broadcast multicast throw unreachable prohibit blackhole nat anycast", t, " ")
                for (i in t) types[t[i]] = 1 }
        {
            first = 1
            if ($1 in types) first = 2
            prefix = $first
            if (prefix == "default") next
            for (i = first; i < NF; i++)
                if ($i == "dev" && ($(i + 1) == "docker0" || $(i + 1) ~ /^br-/)) next
            if (prefix !~ /\//) prefix = prefix "/32"
            print prefix
        }' | sort -u
}

# Candidate /16s inside 172.16.0.0/12, docker's usual ones first.
candidate_blocks() {
    local n
    for n in $(seq 17 31) 16; do echo "172.$n.0.0/16"; done
}

free_blocks() {
    local -a avoid
    mapfile -t avoid < <(host_prefixes)
    avoid+=("${ALWAYS_AVOID[@]}")
    local block prefix clash
    while read -r block; do
        clash=
        for prefix in "${avoid[@]}"; do
            if prefixes_overlap "$block" "$prefix"; then clash=$prefix; break; fi
        done
        if [[ -n $clash ]]; then
            say "skipping $block: overlaps host route $clash"
        else
            echo "$block"
        fi
    done < <(candidate_blocks)
}

# --- sandbox probes -------------------------------------------------------------------------------

# dockerd needs some cgroup hierarchy. Minimal sandboxes without systemd may have none mounted.
ensure_cgroups() {
    if grep -qE '^[^ ]+ /sys/fs/cgroup(/[^ ]*)? cgroup2? ' /proc/mounts; then
        return
    fi
    say "no cgroup filesystem mounted: mounting cgroup2 on /sys/fs/cgroup"
    mkdir -p /sys/fs/cgroup
    mount -t cgroup2 cgroup2 /sys/fs/cgroup || die "cannot mount cgroup2 on /sys/fs/cgroup"
}

# docker uses the `iptables` on PATH (Debian: the nft backend by default). If that backend does not
# work here but the legacy one does, switch; if neither works, iptables management has to go off.
# Prints "true" or "false" for the "iptables" daemon option.
iptables_mode() {
    if ! command -v iptables >/dev/null; then
        echo true  # not installed yet: docker.io depends on it and brings it along
        return
    fi
    if iptables -w -t nat -S >/dev/null 2>&1 && iptables -w -t filter -S >/dev/null 2>&1; then
        echo true
        return
    fi
    if command -v iptables-legacy >/dev/null && iptables-legacy -w -t nat -S >/dev/null 2>&1 \
        && command -v update-alternatives >/dev/null; then
        say "iptables (nft backend) does not work here; switching the iptables alternative to legacy"
        update-alternatives --set iptables /usr/sbin/iptables-legacy >&2
        update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >&2 || true
        echo true
        return
    fi
    say "WARNING: no working iptables here: docker's iptables management is turned OFF;"
    say "WARNING: internal networks are then NOT isolated by the host's firewall"
    echo false
}

# overlay2 is docker's best driver, but some sandboxes cannot mount overlayfs (e.g. when
# /var/lib/docker itself sits on overlayfs). Try a real overlay mount where docker would do it.
# Prints the storage driver to force, or nothing to let docker choose (it picks overlay2).
storage_driver() {
    [[ -d $DATA_ROOT ]] || mkdir -m 0711 "$DATA_ROOT"
    local probe ok=
    probe=$(mktemp -d "$DATA_ROOT/.edge-overlay-probe.XXXXXX")
    mkdir "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
    if mount -t overlay overlay \
        -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
        ok=1
        umount "$probe/merged"
    fi
    rm -rf --one-file-system "$probe"
    if [[ -n $ok ]]; then
        return
    fi
    if command -v fuse-overlayfs >/dev/null && [[ -e /dev/fuse ]]; then
        say "overlayfs cannot be mounted under $DATA_ROOT: using the fuse-overlayfs storage driver"
        echo fuse-overlayfs
    else
        say "overlayfs cannot be mounted under $DATA_ROOT: using the (slow, big) vfs storage driver"
        echo vfs
    fi
}

# --- daemon config --------------------------------------------------------------------------------

render_daemon_json() {
    local iptables=$1 driver=$2
    local -a free
    mapfile -t free < <(free_blocks)
    (( ${#free[@]} >= 2 )) || die "fewer than two /16s of 172.16.0.0/12 are free of host routes"
    local bip_block=${free[0]}
    local -a pools=("${free[@]:1:POOL_COUNT}")
    say "docker0 (bip): ${bip_block%.0/16}.1/16; default address pools: ${pools[*]} (split in /24s)"
    printf '{\n'
    printf '  "bip": "%s",\n' "${bip_block%.0/16}.1/16"
    printf '  "default-address-pools": [\n'
    local i
    for i in "${!pools[@]}"; do
        printf '    {"base": "%s", "size": 24}%s\n' "${pools[$i]}" "$( (( i + 1 < ${#pools[@]} )) && echo ,)"
    done
    printf '  ],\n'
    [[ -n $driver ]] && printf '  "storage-driver": "%s",\n' "$driver"
    printf '  "iptables": %s\n' "$iptables"
    printf '}\n'
}

file_is_ours() {
    [[ -f $MARKER ]] && [[ "$(sha256sum <"$DAEMON_JSON" | cut -d' ' -f1)" == "$(cat "$MARKER")" ]]
}

write_daemon_json() {
    if [[ -e $DAEMON_JSON ]] && ! file_is_ours; then
        say "$DAEMON_JSON was not written by this script: leaving it unchanged"
        grep -q '"bip"' "$DAEMON_JSON" \
            || say "WARNING: it sets no \"bip\": docker0 gets docker's default 172.17.0.0/16"
        grep -q '"default-address-pools"' "$DAEMON_JSON" \
            || say "WARNING: it sets no \"default-address-pools\": docker's defaults apply"
        return
    fi
    ensure_cgroups
    local iptables driver content
    iptables=$(iptables_mode)
    driver=$(storage_driver)
    content=$(render_daemon_json "$iptables" "$driver")
    if [[ -e $DAEMON_JSON ]] && [[ "$content" == "$(cat "$DAEMON_JSON")" ]]; then
        say "$DAEMON_JSON is up to date"
        return
    fi
    mkdir -p "$DOCKER_ETC"
    printf '%s\n' "$content" >"$DAEMON_JSON.tmp"
    mv "$DAEMON_JSON.tmp" "$DAEMON_JSON"
    sha256sum <"$DAEMON_JSON" | cut -d' ' -f1 >"$MARKER"
    say "wrote $DAEMON_JSON"
}

# --- engine ---------------------------------------------------------------------------------------

# docker.io comes through the one installer of host packages (scripts/host-packages lists it).
install_docker() {
    if command -v dockerd >/dev/null && command -v docker >/dev/null; then
        return
    fi
    "$(dirname "${BASH_SOURCE[0]}")/setup-host-packages.sh"
}

# True if the process exists and is not a zombie.
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ -n $state && $state != Z ]]
}

running_dockerd_pid() {
    local pid
    [[ -f $PIDFILE ]] || return 1
    pid=$(cat "$PIDFILE")
    [[ -n $pid ]] && alive "$pid" && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] && echo "$pid"
}

# Byte offset where this run's part of the (appended-to) log starts.
LOG_START=0

fail_start() {
    say "ERROR: $1"
    say "last lines dockerd logged in $LOG:"
    tail -c "+$(( LOG_START + 1 ))" "$LOG" | tail -n 20 | sed 's/^/    /' >&2
    exit 1
}

# A dockerd that is shutting down (its pid file may be gone already) still owns its containerd
# and the containers' shims: a new dockerd started beside it has its containers killed under it.
# Wait for such leftovers to exit first.
wait_for_old_daemons() {
    local waited=0
    while pgrep -x dockerd >/dev/null || pgrep -f 'containerd --config /var/run/docker/containerd' >/dev/null; do
        (( waited == 0 )) && say "an earlier dockerd/containerd is still exiting: waiting for it"
        (( waited < START_TIMEOUT )) || die "an earlier dockerd or containerd does not exit (pids: $(pgrep -d' ' -x dockerd) $(pgrep -d' ' -f 'containerd --config /var/run/docker/containerd')); stop it, then run again"
        sleep 1
        waited=$(( waited + 1 ))
    done
}

start_dockerd() {
    local pid latest waited=0
    if pid=$(running_dockerd_pid); then
        say "dockerd (pid $pid) is running but does not answer yet: waiting for it"
        while alive "$pid" && ! engine_answers && (( waited < START_TIMEOUT )); do
            sleep 1
            waited=$(( waited + 1 ))
        done
        engine_answers && return
        alive "$pid" && fail_start "dockerd (pid $pid) did not answer within ${START_TIMEOUT}s"
        say "it exited (it was shutting down): starting a new one"
    fi
    if ! pid=$(running_dockerd_pid); then
        wait_for_old_daemons
        mkdir -p "$(dirname "$LOG")"
        LOG_START=$(stat -c %s "$LOG" 2>/dev/null || echo 0)
        printf '\n=== %s: started by edge-testbed scripts/setup-docker.sh ===\n' "$(date -Is)" >>"$LOG"
        # setsid + nohup + no inherited stdio: dockerd (and the containerd it spawns) must outlive
        # this script and the shell that ran it.
        setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
        pid=$!
        say "started dockerd (pid $pid), log: $LOG"
    fi
    waited=0
    until engine_answers; do
        # dockerd writes its pid file early; trust it over $! (in case setsid had to fork).
        if latest=$(running_dockerd_pid); then pid=$latest; fi
        alive "$pid" || fail_start "dockerd exited during start-up"
        (( waited < START_TIMEOUT )) || fail_start "dockerd did not answer within ${START_TIMEOUT}s"
        sleep 1
        waited=$(( waited + 1 ))
    done
}

main() {
    if [[ ${1:-} == config ]]; then
        # Only the daemon config, before setup installs the host packages (docker.io among them).
        engine_answers || { [[ $(id -u) -eq 0 ]] && write_daemon_json; } || true
        return
    fi
    if engine_answers; then
        say "a Docker engine already answers ($(docker info --format '{{.ServerVersion}}' 2>/dev/null)): using it as it is"
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "no Docker engine answers, and starting one needs root"
    # The config comes first: should the package's own scripts start dockerd, it starts safe.
    write_daemon_json
    install_docker
    if ! engine_answers; then
        start_dockerd
    fi
    say "Docker engine ready: $(docker info --format 'server {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}' 2>/dev/null)"
}

main "$@"
