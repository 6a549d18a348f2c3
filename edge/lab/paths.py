"""Shift the outside traffic onto a secondary border path, and back.

In April 2011 AWS shifted traffic off its primary network onto a low-capacity secondary one, which
could not carry it. The lab replays that: the topology's static routes send the internet side
through the primary `border`; `shift` sends every route that goes through a router of the same
role through another one (border2, whose links are shaped) instead, and `restore` puts the
topology's routes back. Both act on the running containers only (`ip route replace`, nothing is
re-created), so the BGP state and every daemon stay as they are; a container restarted while
shifted comes back on the topology's routes (edge-init installs them).

Everything comes from the stack as it stands (`edge.engines.stack.lab`): each node's addresses,
and its static routes as the topology declared them, already moved to the stack's slot.
"""

from __future__ import annotations

from edge.engines import docker_exec
from edge.model.lab import Lab


class PathError(ValueError):
    """A shift that cannot be made; the message says why."""


def _gateways(lab: Lab) -> dict[str, tuple[str, str]]:
    """address -> (node, network) for every address of the stack."""
    return {address: (name, network) for name, node in lab.nodes.items()
            for network, address in node.addresses.items()}


def topology_routes(lab: Lab) -> dict[str, list[tuple[str, str]]]:
    """node -> [(prefix, gateway)]: the static routes the topology gives each node."""
    routes = {}
    for name, node in lab.nodes.items():
        parsed = [tuple(route.split(" via ")) for route in node.routes]
        if parsed:
            routes[name] = parsed
    return routes


def shifted_routes(lab: Lab, to: str) -> dict[str, list[tuple[str, str]]]:
    """node -> [(prefix, gateway)]: the routes that go through another router of `to`'s role,
    now through `to`, at its address on the same network."""
    if to not in lab.nodes:
        raise PathError(f"no node '{to}' in stack '{lab.stack}'")
    target = lab.nodes[to]
    owners = _gateways(lab)
    moved: dict[str, list[tuple[str, str]]] = {}
    for name, routes in topology_routes(lab).items():
        for prefix, gateway in routes:
            via, network = owners[gateway]
            if via == to or lab.nodes[via].role != target.role:
                continue
            if network not in target.addresses:
                raise PathError(f"{name} reaches {prefix} through {via} on {network}, where "
                                f"{to} has no address")
            moved.setdefault(name, []).append((prefix, target.addresses[network]))
    if not moved:
        raise PathError(f"no static route goes through another '{target.role}' node than {to}")
    return moved


def _replace(lab: Lab, routes: dict[str, list[tuple[str, str]]]) -> None:
    """Install the routes in the running nodes; docker_exec.ExecError (a RuntimeError) names
    the node and the route that failed."""
    for name, entries in sorted(routes.items()):
        for prefix, gateway in entries:
            docker_exec.run(lab.nodes[name],
                            ["ip", "route", "replace", prefix, "via", gateway],
                            what=f"routing {prefix} via {gateway}")


def shift(lab: Lab, to: str = "border2") -> None:
    """Send the traffic that takes a router of `to`'s role through `to` instead."""
    _replace(lab, shifted_routes(lab, to))


def restore(lab: Lab) -> None:
    """Put back every node's static routes exactly as the topology declares them.

    A stopped container is left alone: edge-init installs the topology's routes when it starts.
    """
    routes = {name: entries for name, entries in topology_routes(lab).items()
              if docker_exec.is_running(lab.nodes[name])}
    _replace(lab, routes)
