"""A stack's concrete plan: the topology moved to the stack's address slot, with Docker names.

Two stacks of the same topology (the live `lab` and its `staging` copy, or a test's throw-away
stack) must never share a name or a prefix. Every name is prefixed with the stack, and every
address moves by `slot` blocks of its address_plan block, so collisions are impossible by
construction rather than by care.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from edge.model.datafile import NAME_RE
from edge.model.topology import (
    FORBIDDEN,
    INTERNAL_RANGE,
    LOCAL_ENGINE,
    PUBLIC_RANGE,
    Engine,
    Link,
    Topology,
    TopologyError,
)

PROJECT = "edge-testbed"
LABEL_PROJECT = "edge-testbed.project"
LABEL_STACK = "edge-testbed.stack"
LABEL_PURPOSE = "edge-testbed.purpose"
LABEL_NODE = "edge-testbed.node"
LABEL_ROLE = "edge-testbed.role"
# Which run made an object (test sessions, benchmarks): lets a run remove its own leftovers and
# those of runs that died, never those of a run still going. User stacks carry none.
LABEL_RUN = "edge-testbed.run"
# A lab interface on a Swarm overlay: the 1500-byte underlay minus VXLAN's 50 bytes.
OVERLAY_MTU = 1450


@dataclass(frozen=True)
class NetworkPlan:
    """One Docker network of the stack."""

    name: str           # topology name, e.g. "dmz"
    docker_name: str    # e.g. "edge-lab-dmz"
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address


@dataclass(frozen=True)
class NodePlan:
    """One container of the stack, with everything Docker needs to create it."""

    name: str
    role: str
    tier: str
    ansible_role: str
    container_name: str
    hostname: str
    addresses: dict[str, ipaddress.IPv4Address]   # topology network name -> address
    routes: tuple[str, ...]                       # "PREFIX via ADDRESS", for edge-init
    dns: tuple[str, ...]
    volumes: dict[str, str]                       # docker volume name -> mount point
    sysctls: dict[str, str]
    capabilities: tuple[str, ...]                 # its role's, from the topology (sorted)
    link: Link | None                             # shaping of its interfaces (roles/link)
    engine: str = LOCAL_ENGINE                    # the engine its container is created on


@dataclass(frozen=True)
class StackPlan:
    """Everything one stack creates, derived from the topology; pure data."""

    stack: str
    slot: int
    purpose: str
    zone: str
    networks: dict[str, NetworkPlan]
    volumes: dict[str, str]          # topology volume name -> docker volume name
    nodes: dict[str, NodePlan]
    run: str = ""
    engines: dict[str, Engine] = field(default_factory=dict)   # the non-local engines used

    @property
    def spread(self) -> bool:
        """Nodes on an engine other than this one (on several, or all on another): the lab
        networks are Swarm overlays made here, on the manager. A stack wholly on another engine
        is made the same way, so nothing on that machine's host (bridges, their iptables rules)
        is ever edge's to make or clean up."""
        return any(node.engine != LOCAL_ENGINE for node in self.nodes.values())

    @property
    def mtu(self) -> int | None:
        """The MTU of every lab interface when it is not the engine's default (a spread stack's
        overlays): the networks are made with it, and the routers' converge keeps it (the
        `mtu` of the stack's `networks` output), so a full frame still fits the underlay."""
        return OVERLAY_MTU if self.spread else None

    def labels(self, **extra: str) -> dict[str, str]:
        """Labels that mark a Docker object as this stack's, so leftovers are found by label."""
        run = {LABEL_RUN: self.run} if self.run else {}
        return {LABEL_PROJECT: PROJECT, LABEL_STACK: self.stack, LABEL_PURPOSE: self.purpose,
                **run, **extra}


def slot_count(topology: Topology) -> int:
    """How many stacks fit side by side: the smaller of the two ranges' capacities."""
    public = PUBLIC_RANGE.num_addresses // topology.public_block.num_addresses
    internal_first = int(topology.internal_block.network_address) - int(INTERNAL_RANGE.network_address)
    internal = (INTERNAL_RANGE.num_addresses - 65536 - internal_first) // \
        topology.internal_block.num_addresses  # the top /16 (10.255.x.x) is never used
    public_first = (int(topology.public_block.network_address)
                    - int(PUBLIC_RANGE.network_address)) // topology.public_block.num_addresses
    return min(public - public_first, internal)


def shift(address: ipaddress.IPv4Address, topology: Topology, slot: int) -> ipaddress.IPv4Address:
    """Move an address written for slot 0 into `slot`'s block."""
    block = topology.public_block if address in topology.public_block else topology.internal_block
    return address + slot * block.num_addresses


def _shift_net(net: ipaddress.IPv4Network, topology: Topology, slot: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"{shift(net.network_address, topology, slot)}/{net.prefixlen}")


def stack_plan(topology: Topology, stack: str, slot: int, purpose: str = "lab",
               run: str = "") -> StackPlan:
    """Derive the concrete plan of `stack` at `slot`; raise TopologyError if it cannot fit."""
    if not NAME_RE.match(stack):
        raise TopologyError(f"stack name '{stack}' cannot name Docker objects. Use lower-case "
                            "letters, digits and '-', starting with a letter.")
    limit = slot_count(topology)
    if not 0 <= slot < limit:
        raise TopologyError(f"{topology.path}: slot {slot} of stack '{stack}' is out of range. "
                            f"Set `edge-testbed:slot` to a number from 0 to {limit - 1}.")
    prefix = f"edge-{stack}"
    networks = {}
    for net in topology.networks.values():
        subnet = _shift_net(net.subnet, topology, slot)
        if any(subnet.overlaps(f) for f in FORBIDDEN):
            raise TopologyError(f"{topology.path}:{net.line}: network '{net.name}' would land on "
                                f"{subnet}, which carries this machine's own traffic. "
                                "Choose another slot.")
        networks[net.name] = NetworkPlan(net.name, f"{prefix}-{net.name}", subnet,
                                         shift(net.gateway, topology, slot))
    volumes = {name: f"{prefix}-{name}" for name in topology.volumes}

    def address_of(node: str, network: str) -> ipaddress.IPv4Address:
        return shift(topology.nodes[node].addresses[network], topology, slot)

    nodes = {}
    for node in topology.nodes.values():
        role = topology.roles[node.role]
        routes = []
        for route in node.routes:
            shared = sorted(set(topology.nodes[route.via].addresses) & set(node.addresses))[0]
            gateway = address_of(route.via, shared)
            routes += [f"{networks[to].subnet} via {gateway}" for to in route.to]
        dns = []
        for server in node.dns:
            server_nets = topology.nodes[server].addresses
            shared = sorted(set(server_nets) & set(node.addresses)) or sorted(server_nets)
            dns.append(str(address_of(server, shared[0])))
        # Docker turns forwarding on in every container; only routers may forward (a dual-homed
        # load balancer must never be a path from the dmz into the PaaS network).
        sysctls = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv4.ip_forward": "0"}
        if role.forwarding:
            sysctls |= {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0"}
        nodes[node.name] = NodePlan(
            name=node.name, role=node.role, tier=role.tier, ansible_role=role.ansible_role,
            container_name=f"{prefix}-{node.name}", hostname=node.name,
            addresses={net: shift(a, topology, slot) for net, a in node.addresses.items()},
            routes=tuple(routes), dns=tuple(dns),
            volumes={volumes[v]: mount for v, mount in node.volumes.items()},
            sysctls=sysctls, capabilities=tuple(sorted(role.capabilities)), link=node.link,
            engine=topology.engine_of(node.name, stack),
        )
    engines = {n.engine: topology.engines[n.engine] for n in nodes.values()
               if n.engine != LOCAL_ENGINE}
    return StackPlan(stack, slot, purpose, topology.zone, networks, volumes, nodes, run, engines)
