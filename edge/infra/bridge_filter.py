"""Let packets cross *within* a lab bridge, which Docker's internal-network rules would drop.

Docker loads br_netfilter, so frames bridged between two containers of one network pass the host's
iptables FORWARD chain. For an internal network Docker drops every such frame whose destination
is outside the network's subnet, which is exactly what a router's traffic looks like (client ->
border on `internet`, addressed to the dmz). One rule per lab bridge in DOCKER-USER (evaluated
first) accepts traffic that enters and leaves the same bridge. Traffic between two bridges (the
host as a router) still meets Docker's drop rules: the host is never a path between lab networks.
"""

from __future__ import annotations

import subprocess

CHAIN = "DOCKER-USER"


def bridge_name(network_id: str) -> str:
    """The host interface Docker gives a bridge network (no custom name is ever set)."""
    return f"br-{network_id[:12]}"


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", "10", *args], capture_output=True, text=True,
                          check=False)


def _rule(bridge: str) -> list[str]:
    return [CHAIN, "-i", bridge, "-o", bridge, "-m", "comment", "--comment",
            "edge-testbed: within one lab network", "-j", "ACCEPT"]


def allow_within(bridge: str) -> None:
    """Insert the rule for `bridge` unless it is there; no-op if Docker manages no iptables."""
    if _iptables("-S", CHAIN).returncode != 0:
        return   # dockerd runs with iptables off: nothing filters bridged traffic
    if _iptables("-C", *_rule(bridge)).returncode != 0:
        added = _iptables("-I", *_rule(bridge)[:1], "1", *_rule(bridge)[1:])
        if added.returncode != 0:
            raise RuntimeError(f"cannot add the {CHAIN} rule for {bridge}: {added.stderr.strip()}")


def remove(bridge: str) -> None:
    """Delete the rule for `bridge` (every copy), if any."""
    while _iptables("-D", *_rule(bridge)).returncode == 0:
        pass
