# Sourced by the setup scripts (not run): where the builds every clone on this machine shares are
# kept (the Pulumi CLI, the Python dependencies), so a second clone builds nothing again. The
# same folder as edge.engines.images' cache_dir (the lab's root filesystem).

# edge_cache_dir: prints ${EDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edge-testbed}.
edge_cache_dir() {
    if [[ -n "${EDGE_CACHE:-}" ]]; then
        printf '%s\n' "$EDGE_CACHE"
    elif [[ -n "${XDG_CACHE_HOME:-}" ]]; then
        printf '%s\n' "$XDG_CACHE_HOME/edge-testbed"
    elif [[ -n "${HOME:-}" ]]; then
        printf '%s\n' "$HOME/.cache/edge-testbed"
    else
        printf 'set EDGE_CACHE, XDG_CACHE_HOME or HOME to choose where shared builds are kept\n' >&2
        return 1
    fi
}
