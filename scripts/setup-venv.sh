#!/usr/bin/env bash
# The project's Python environment, .venv, ready in a second in every clone but the first.
#
# Why: pip installing the pinned dependencies (Ansible alone is thousands of files) took about a
# minute per clone, the largest part of a warm `make up` in a fresh clone. So the dependencies
# live in ONE virtual environment per pin set and interpreter, shared by every clone on the
# machine, like the Pulumi build (scripts/setup-pulumi.sh):
#     ${EDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-testbed}/venv/<stamp>
# <stamp> hashes pyproject.toml's dependencies and requires-python and the interpreter (version
# and path): a new pin builds a new shared environment, the old one stays for clones still on it.
# The shared environment holds the dependencies only, never the project: an editable install there
# would point at whichever clone built it.
#
# Each clone's .venv is then a small environment of its own (no pip run), layered on the shared
# one by a single .pth file in its site-packages, edge-testbed.pth:
#   - `import site; site.addsitedir(SHARED)` puts the shared site-packages on sys.path after the
#     clone's own (their .pth files are read too), so a package installed into .venv later
#     shadows the shared one for this clone only, and pip never uninstalls from the shared
#     environment (it is "outside environment" of the clone's .venv);
#   - the clone's root comes next on sys.path (what an editable install does), so `import edge`
#     is this clone's code, wherever the command runs from;
#   - bin/ holds the shared environment's commands, with this environment's python in their #!
#     line (ansible-playbook, pytest...), and the project's own ([project.scripts]: edge);
#   - site-packages/ansible_mitogen links to the shared one: ansible.cfg loads Mitogen's strategy
#     from that path.
# Progress and errors go to stdout (setup prefixes and times each line).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-cache.sh

# The interpreter itself, not a launcher in front of it (a pyenv shim costs 0.4 s a call).
PYTHON=$("${EDGE_PYTHON:-python3}" -c 'import sys; print(sys.executable)')
LAYOUT=1    # bump when the way .venv is made changes: every clone makes its .venv again
VENV=$PWD/.venv

die() { printf 'ERROR: %s\n' "$*"; exit 1; }

# pyproject KEY: one line per dependency ("deps") or per console script ("scripts": name entry).
pyproject() {
    "$PYTHON" -c '
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
if sys.argv[1] == "deps":
    print("\n".join(project["dependencies"] + ["requires-python " + project["requires-python"]]))
else:
    print("\n".join(f"{name} {entry}" for name, entry in project.get("scripts", {}).items()))
' "$1"
}

purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_path("purelib"))'; }

stamp=$(
    {
        pyproject deps
        "$PYTHON" -c 'import sys; print(sys.version)'
        realpath "$PYTHON"
    } | sha256sum | cut -c1-16
)
root="$(edge_cache_dir)/venv"
shared="$root/$stamp"
clone_stamp=$(printf '%s\n' "$LAYOUT" "$stamp" "$VENV" "$(pyproject scripts)" | sha256sum | cut -c1-16)

if [[ -f "$shared/.complete" && "$(cat "$VENV/.edge-stamp" 2>/dev/null)" == "$clone_stamp" ]]; then
    echo ".venv is up to date (dependencies in $shared)"
    exit 0
fi

# --- the shared dependencies --------------------------------------------------------------------
if [[ ! -f "$shared/.complete" ]]; then
    mkdir -p "$root"
    # One build at a time per stamp (several clones set up at once wait for the first).
    exec 9>"$root/.lock-$stamp"
    if ! flock -n 9; then
        echo "another setup is installing the dependencies into $shared; waiting for it..."
        flock 9
    fi
    if [[ ! -f "$shared/.complete" ]]; then
        # A venv cannot be moved once made: it is built in place, and marked complete at the end
        # (holding the lock, a folder without the mark is from a build that was killed).
        rm -rf "$shared"
        echo "installing the pinned dependencies into $shared (once per pin set)"
        "$PYTHON" -m venv "$shared"
        mapfile -t deps < <(pyproject deps | grep -v '^requires-python ')
        "$shared/bin/pip" install --progress-bar off --disable-pip-version-check "${deps[@]}" \
            | grep --line-buffered -E '^(Collecting|Successfully)' || true
        [[ ${PIPESTATUS[0]} == 0 ]] || die "pip could not install the dependencies into $shared"
        touch "$shared/.complete"
    fi
    exec 9>&-
fi

# --- this clone's .venv -------------------------------------------------------------------------
rm -rf "$VENV"
"$PYTHON" -m venv --without-pip "$VENV"
site=$(purelib "$VENV/bin/python")
shared_site=$(purelib "$shared/bin/python")
printf "import site; site.addsitedir('%s')\n%s\n" "$shared_site" "$PWD" >"$site/edge-testbed.pth"
ln -s "$shared_site/ansible_mitogen" "$site/ansible_mitogen"
written=()
for command in "$shared/bin"/*; do
    name=${command##*/}
    case $name in python* | activate* | Activate*) continue ;; esac
    first=""
    IFS= read -r first <"$command" || true
    if [[ $first == "#!$shared/bin/python"* ]]; then
        mapfile -t -s 1 lines <"$command"   # the script without its #! line
        printf '%s\n' "#!$VENV/bin/python" "${lines[@]}" >"$VENV/bin/$name"
        written+=("$VENV/bin/$name")
    else
        ln -s "$command" "$VENV/bin/$name"   # not a Python script (ruff is a binary)
    fi
done
while read -r name entry; do
    [[ -n $name ]] || continue
    printf '#!%s\nimport sys\nfrom %s import %s\nsys.exit(%s())\n' "$VENV/bin/python" \
        "${entry%%:*}" "${entry#*:}" "${entry#*:}" >"$VENV/bin/$name"
    written+=("$VENV/bin/$name")
done < <(pyproject scripts)
chmod 0755 "${written[@]}"
echo "$clone_stamp" >"$VENV/.edge-stamp"
echo ".venv made: dependencies from $shared, edge from $PWD"
