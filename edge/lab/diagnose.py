"""Say where a broken flow dies, when the lab can tell: read-only checks along the path.

The checks follow the way a packet from the internet travels: the border's route to the
destination, the firewall's default-deny counter, the destination node itself (container
running, something listening), and for HTTP the load balancer's view of its backends.
"""

from __future__ import annotations

import docker

from edge.engines import docker_exec, facts
from edge.lab.probes import run_flows
from edge.model.contract import Flow
from edge.model.lab import Lab


def firewall_denied(lab: Lab, client: docker.DockerClient | None = None) -> dict[str, int]:
    """Packets counted by each firewall's default-deny rule (read before and after a probe); a
    firewall whose ruleset cannot be read, or has no such rule, is left out."""
    counts = {}
    for fw in lab.with_role("firewall"):
        try:
            ruleset = facts.NFT_RULESET.gather(fw.container, client)
        except (docker_exec.ExecError, facts.FactError):
            continue
        if (denied := ruleset.counter("forward-denied")) is not None:
            counts[fw.name] = denied
    return counts


def _state(container: str, client: docker.DockerClient | None) -> str:
    """The container's state: running, exited, paused, missing..."""
    try:
        return docker_exec.container(container, client).status
    except docker_exec.ContainerUnavailable as gone:
        return gone.state


def _down_servers(container: str, client: docker.DockerClient | None) -> list[str]:
    """The load balancer's servers that are not UP, as "proxy/server STATUS" ([] when its
    statistics cannot be read)."""
    try:
        stat = facts.HAPROXY_STAT.gather(container, client)
    except (docker_exec.ExecError, facts.FactError):
        return []
    return [f"{proxy}/{server} {status}" for (proxy, server), status in sorted(stat.items())
            if server not in ("FRONTEND", "BACKEND") and not status.startswith("UP")]


def where_it_dies(flow: Flow, before: str, after: str, lab: Lab,
                  client: docker.DockerClient | None = None) -> str:
    """The first finding along the path of a broken must-work flow (outcomes `before` and
    `after` the change), or "" if none."""
    target_node = flow.target
    address = flow.params.get("address") or flow.params.get("server")
    container = lab.nodes[target_node].container if target_node in lab.nodes else ""
    if (state := _state(container, client)) != "running":
        return f"{target_node} is not running ({state})"
    for border in lab.with_role("border"):
        try:
            route = docker_exec.run(border.container, ["ip", "route", "get", address],
                                    check=False, engine=client)
        except docker_exec.ContainerUnavailable as gone:
            return f"{border.name} is not running ({gone.state})"
        if route.exit_code != 0 or "unreachable" in route.stdout:
            return (f"{border.name} has no route to {address} (service prefix not received over "
                    "BGP?)")
    if after == "timeout":   # probe this flow alone, and see whether a firewall counted a drop
        denied_before = firewall_denied(lab, client)
        run_flows([flow], client)
        grew = [fw for fw, n in firewall_denied(lab, client).items()
                if n > denied_before.get(fw, n)]
        if grew:
            return f"dropped by the default deny of {', '.join(grew)}"
    if before.startswith("answered") and after in ("refused", "timeout"):
        port = flow.params.get("port") or {"http": 80, "dns": 53}.get(flow.kind)
        udp = flow.kind == "dns" and flow.params.get("transport") != "tcp"
        try:
            sockets = facts.LISTENING_SOCKETS.gather(container, client)
        except (docker_exec.ExecError, facts.FactError):
            sockets = None
        if sockets is not None and not facts.listens(sockets, address, int(port),
                                                         "udp" if udp else "tcp"):
            return f"nothing listens on {address}:{port} in {target_node}"
    if after.startswith("answered 503"):
        down = _down_servers(container, client)
        return (f"{target_node} answers but has no healthy backend (HTTP 503)"
                + (f": {', '.join(down)}" if down else ""))
    return ""
