"""Say where a broken flow dies, when the lab can tell: read-only checks along the path.

The checks follow the way a packet from the internet travels: the border's route to the
destination, the firewall's default-deny counter, the destination node itself (container
running, something listening), and for HTTP the load balancer's view of its backends. A flow
that goes silent though its packets are let through is followed back the way its answers travel
(the sender's route to the vantage point, hop by hop): a router whose way out is narrower than
the sender's packets needs path MTU discovery, which works only if its ICMP
fragmentation-needed reaches the sender; a packet filter on the way that counts such ICMP as
dropped, or a sender that never learnt the smaller MTU, is where the flow dies.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import docker

from edge.engines import docker_exec, facts
from edge.lab.probes import run_flows
from edge.model.contract import Flow
from edge.model.lab import Lab

# The comments of the rules whose counters say a packet was dropped on the way (roles/nftables):
# the firewall's default deny, and ICMP fragmentation-needed dropped while forwarding.
DENIED = "forward-denied"
FRAG_NEEDED_DROPPED = "icmp destination-unreachable frag-needed dropped"


def counters(lab: Lab, nodes: set[str], client: docker.DockerClient | None = None
             ) -> dict[tuple[str, str], int]:
    """(node, rule comment) -> packets counted, for the drop rules above on each of `nodes`
    (read before and after a probe); a node whose ruleset cannot be read, or has no such rule,
    is left out."""
    counts = {}
    for name in sorted(nodes):
        try:
            ruleset = facts.NFT_RULESET.gather(lab.nodes[name], client)
        except (docker_exec.ExecError, facts.FactError):
            continue
        for comment in (DENIED, FRAG_NEEDED_DROPPED):
            if (packets := ruleset.counter(comment)) is not None:
                counts[(name, comment)] = packets
    return counts


@dataclass(frozen=True)
class Hop:
    """A node on the way the answers of a flow travel back, and how it sends them on."""

    node: str
    network: str          # the lab network of its way out ("" if none holds the next hop)
    way: facts.WayOut


def answer_path(flow: Flow, lab: Lab, client: docker.DockerClient | None = None) -> list[Hop]:
    """The nodes an answer crosses from the flow's target back to its vantage point, the target
    first, each with its way out (as far as the routes can be read and lead to lab nodes)."""
    owners = {address: name for name, node in lab.nodes.items()
              for address in node.addresses.values()}
    vantage = next(iter(lab.nodes[flow.vantage].addresses.values()), "")
    hops: list[Hop] = []
    node = flow.target
    while vantage and node in lab.nodes and len(hops) < len(lab.nodes):
        try:
            way = facts.way_out_to(vantage).gather(lab.nodes[node], client)
        except (docker_exec.ExecError, facts.FactError):
            break
        next_hop = ipaddress.ip_address(way.gateway or vantage)
        network = next((n.name for n in lab.networks.values()
                        if next_hop in ipaddress.ip_network(n.subnet)), "")
        hops.append(Hop(node, network, way))
        if not way.gateway:
            break
        node = owners.get(way.gateway, "")
    return hops


def path_mtu_finding(flow: Flow, hops: list[Hop], dropped: list[str]) -> str:
    """Where a flow's big answers die, from the hops read after a probe (the target first) and
    the nodes whose fragmentation-needed drop counter grew meanwhile ("" when no hop is
    narrower than the sender's packets, or the sender learnt the narrower MTU)."""
    if len(hops) < 2:
        return ""
    sender = hops[0]
    narrow = min(hops[1:], key=lambda h: h.way.mtu)
    sends = min(sender.way.mtu, sender.way.learnt_mtu or sender.way.mtu)
    if narrow.way.mtu >= sends:
        return ""
    on = f" on {narrow.network}" if narrow.network else ""
    where = (f"{narrow.node} forwards at most {narrow.way.mtu}-byte packets towards "
             f"{flow.vantage} (MTU of {narrow.way.dev}{on}), {sender.node} sends {sends}")
    if dropped:
        return (f"{where}: {', '.join(dropped)} drops the ICMP fragmentation-needed that would "
                "tell it (path MTU discovery broken)")
    return (f"{where}: no ICMP fragmentation-needed reaches {sender.node} (path MTU discovery "
            "broken)")


def _state(container: docker_exec.Target, client: docker.DockerClient | None) -> str:
    """The container's state: running, exited, paused, missing..."""
    try:
        return docker_exec.container(container, client).status
    except docker_exec.ContainerUnavailable as gone:
        return gone.state


def _down_servers(container: docker_exec.Target, client: docker.DockerClient | None) -> list[str]:
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
    container = lab.nodes.get(target_node) or ""
    if (state := _state(container, client)) != "running":
        return f"{target_node} is not running ({state})"
    for border in lab.with_role("border"):
        try:
            route = docker_exec.run(border, ["ip", "route", "get", address],
                                    check=False, engine=client)
        except docker_exec.ContainerUnavailable as gone:
            return f"{border.name} is not running ({gone.state})"
        if route.exit_code != 0 or "unreachable" in route.stdout:
            return (f"{border.name} has no route to {address} (service prefix not received over "
                    "BGP?)")
    if after == "timeout":
        # probe this flow alone, and see what a filter counted meanwhile: a drop by a firewall's
        # default deny, or of the ICMP fragmentation-needed on the way its answers travel back
        hops = answer_path(flow, lab, client)
        firewalls = {fw.name for fw in lab.with_role("firewall")}
        watched = firewalls | {h.node for h in hops}
        was = counters(lab, watched, client)
        run_flows([flow], client)
        grew = sorted({key for key, n in counters(lab, watched, client).items()
                       if n > was.get(key, n)})
        # Only a firewall's forward policy is drop: a border's "forward-denied" rule counts
        # what its accept policy lets through.
        if denied := [node for node, comment in grew if comment == DENIED and node in firewalls]:
            return f"dropped by the default deny of {', '.join(denied)}"
        dropped = [node for node, comment in grew if comment == FRAG_NEEDED_DROPPED]
        if found := path_mtu_finding(flow, answer_path(flow, lab, client), dropped):
            return found
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
