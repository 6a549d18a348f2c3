# Source this file (`. scripts/env.sh`) to run the real `pulumi` by hand against the lab's local
# state: it puts the project's Pulumi CLI and venv on PATH and keeps the CLI offline.
_edge_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
eval "$("$_edge_root/.venv/bin/python" -m edge.engines.stack --print-env)"
unset _edge_root
