"""The lab's topology: a YAML data file, loaded and validated into typed, immutable records.

Everything downstream (Pulumi resources, Ansible inventory, probes) is derived from these records,
so a mistake is caught here, once, with the file, the line and the field that is wrong, before
anything is created.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from edge.model.datafile import NAME_RE, Mapping, Reader, kind, load_checked

PUBLIC_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
INTERNAL_RANGE = ipaddress.IPv4Network("10.0.0.0/8")
# Prefixes that carry this machine's own traffic (package registries, DNS): never part of a lab.
FORBIDDEN = tuple(
    ipaddress.IPv4Network(p) for p in ("192.0.2.0/24", "203.0.113.0/24", "10.255.0.0/16")
)
# Link rates are written as tc writes them: a whole number and an SI bit-rate unit.
RATE_RE = re.compile(r"^([1-9][0-9]*)(kbit|mbit|gbit)$")
RATE_KBIT = {"kbit": 1, "mbit": 1000, "gbit": 1000 * 1000}
MAX_DELAY_MS = 10_000
# The Linux capabilities, as Docker's cap_add writes them (capabilities(7) without CAP_). A role
# is granted exactly the ones its `capabilities:` lists, each with why it needs it.
CAPABILITIES = frozenset({
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
    "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
    "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP",
    "SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE",
    "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG",
    "WAKE_ALARM",
})
ROLE_KEYS = ("tier", "forwarding", "ansible_role", "capabilities")
# The engine edge itself talks to ($DOCKER_HOST or the local socket): always there, never declared.
LOCAL_ENGINE = "local"
# How an engine's API is reached: a unix socket, ssh (the `ssh` program) or TLS-protected tcp.
ENDPOINT_RE = re.compile(r"^(unix://(/\S+)|ssh://([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+(:[0-9]{1,5})?"
                         r"|tcp://[A-Za-z0-9.-]+:[0-9]{1,5})$")
TLS_FILES = ("ca", "cert", "key")


class TopologyError(ValueError):
    """A topology file that cannot be used; the message names file, line, field and the fix."""


@dataclass(frozen=True)
class Role:
    """What a role means to the infrastructure: its tier, whether it forwards packets, and the
    Linux capabilities its containers get beyond Docker's defaults (name -> why it needs it)."""

    name: str
    tier: str
    forwarding: bool
    ansible_role: str   # the Ansible role that configures it (several node roles may share one)
    capabilities: dict[str, str]


@dataclass(frozen=True)
class Network:
    """One lab network (a Docker internal bridge)."""

    name: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    line: int


@dataclass(frozen=True)
class Route:
    """Send traffic for the networks in `to` through the neighbour node `via`."""

    to: tuple[str, ...]
    via: str


@dataclass(frozen=True)
class Link:
    """How a node's links are shaped, to model a low-capacity path (0 leaves that part off)."""

    delay_ms: int     # added to every packet the node forwards, in each direction
    rate_kbit: int    # egress rate limit of each of its interfaces


@dataclass(frozen=True)
class Node:
    """One container of the lab."""

    name: str
    role: str
    addresses: dict[str, ipaddress.IPv4Address]
    routes: tuple[Route, ...]
    dns: tuple[str, ...]
    volumes: dict[str, str]
    line: int
    link: Link | None = None


# As an endpoint, the local engine's name: the engine `docker` itself would use ($DOCKER_HOST or
# the local socket).
LOCAL = LOCAL_ENGINE


@dataclass(frozen=True)
class Endpoint:
    """Where one engine's API is, and the TLS files a tcp:// endpoint needs."""

    url: str = LOCAL
    ca: str = ""
    cert: str = ""
    key: str = ""

    @property
    def local(self) -> bool:
        return self.url == LOCAL

    def props(self) -> dict[str, str]:
        """As a Pulumi input (plain text values)."""
        return {"url": self.url, "ca": self.ca, "cert": self.cert, "key": self.key}

    @classmethod
    def from_props(cls, props: dict[str, str] | None) -> Endpoint:
        """The endpoint of a resource's inputs; none (resources made before engines) is local."""
        return cls(**(props or {}))


@dataclass(frozen=True)
class Engine:
    """A Docker engine nodes may be placed on (`engines:`); `tls` holds the ca, cert and key
    files (absolute paths) of a tcp:// endpoint."""

    name: str
    endpoint: str
    tls: tuple[str, str, str] | None
    line: int

    def api(self) -> Endpoint:
        """How its API is reached, with its TLS files."""
        return Endpoint(self.endpoint, *(self.tls or ("", "", "")))


@dataclass(frozen=True)
class Topology:
    """A validated topology, with addresses as written (slot 0)."""

    path: Path
    zone: str
    public_block: ipaddress.IPv4Network
    internal_block: ipaddress.IPv4Network
    slots: dict[str, int]
    roles: dict[str, Role]
    networks: dict[str, Network]
    volumes: tuple[str, ...]
    nodes: dict[str, Node]
    engines: dict[str, Engine] = field(default_factory=dict)
    # node -> engine name, for every node when the file has `placement:`; empty means all local.
    placement: dict[str, str] = field(default_factory=dict)
    # stack -> engine name: every node of that stack there (`placement.stacks`), so that one
    # topology serves a live stack here and a staging stack of a pool on another engine.
    stack_engines: dict[str, str] = field(default_factory=dict)

    def engine_of(self, node: str, stack: str = "") -> str:
        """The engine a node's container is created on in `stack`: the stack's own engine
        when the topology gives it one, else the node's placement."""
        return self.stack_engines.get(stack) or self.placement.get(node, LOCAL_ENGINE)


def load_topology(path: Path | str) -> Topology:
    """Load and validate a topology file; raise TopologyError naming file, line and fix."""
    path = Path(path)
    doc, reader = load_checked(path, "topology", "edge-testbed:topology", TopologyError)
    if not isinstance(doc, dict):
        raise TopologyError(f"{path}:1: the file must be a mapping with zone, address_plan, "
                            "roles, networks and nodes.")
    return _validate(reader, doc)


def _validate(r: Reader, doc: Mapping) -> Topology:
    known = {"zone", "address_plan", "roles", "networks", "volumes", "nodes", "engines",
             "placement"}
    for key in doc:
        if key not in known:
            r.fail(doc, str(key), "unknown top-level key", f"Use only: {', '.join(sorted(known))}.",
                   str(key))
    zone = doc.get("zone")
    if not isinstance(zone, str) or not zone.endswith(".test"):
        r.fail(doc, "zone", f"'{zone}' is not a zone under the reserved .test TLD",
               "Name the lab zone like paas.test, so it can never shadow a real domain.", "zone")

    plan = r.mapping(doc, "address_plan", "address_plan")
    public = r.network(plan, "public", "address_plan.public")
    internal = r.network(plan, "internal", "address_plan.internal")
    if not public.subnet_of(PUBLIC_RANGE):
        r.fail(plan, "address_plan.public", f"{public} is outside {PUBLIC_RANGE}",
               f"Choose a block inside {PUBLIC_RANGE}.", "public")
    if not internal.subnet_of(INTERNAL_RANGE) or any(internal.overlaps(f) for f in FORBIDDEN):
        r.fail(plan, "address_plan.internal", f"{internal} is outside 10.0.0.0/8 or touches "
               "10.255.0.0/16", "Choose a block inside 10.0.0.0/8 below 10.255.0.0.", "internal")

    slot_map = r.mapping(plan, "slots", "address_plan.slots", required=False)
    for stack, slot in slot_map.items():
        if not isinstance(slot, int) or isinstance(slot, bool) or slot < 0:
            r.fail(slot_map, f"address_plan.slots.{stack}", f"'{slot}' is not a slot number",
                   "Write a whole number from 0 up.", str(stack))
    if len(set(slot_map.values())) != len(slot_map):
        r.fail(slot_map, "address_plan.slots", "two stacks share a slot",
               "Give every stack its own slot, or their networks would collide.")

    roles = {}
    role_map = r.mapping(doc, "roles", "roles")
    for name, spec in role_map.items():
        r.name(role_map, name, f"roles.{name}")
        if not isinstance(spec, dict) or not isinstance(spec.get("tier"), str):
            r.fail(role_map, f"roles.{name}", "a role needs a `tier` (text)",
                   "Write e.g. `border: {tier: routing, forwarding: true}`.", name)
        for key in spec:
            if key not in ROLE_KEYS:
                r.fail(spec, f"roles.{name}.{key}", "unknown role setting",
                       f"Use only: {', '.join(ROLE_KEYS)}.", str(key))
        roles[name] = Role(name, spec["tier"], bool(spec.get("forwarding", False)),
                           str(spec.get("ansible_role", name)),
                           _capabilities(r, spec, f"roles.{name}"))

    networks: dict[str, Network] = {}
    net_map = r.mapping(doc, "networks", "networks")
    for name, spec in net_map.items():
        field = f"networks.{name}"
        spec = r.entry(net_map, name, field, "`{subnet: PREFIX, gateway: ADDRESS}`")
        subnet = r.network(spec, "subnet", f"{field}.subnet")
        if not (subnet.subnet_of(public) or subnet.subnet_of(internal)):
            r.fail(spec, f"{field}.subnet", f"{subnet} is in neither address_plan block "
                   f"({public}, {internal})", "Move it inside one of the two blocks.", "subnet")
        for other in networks.values():
            if subnet.overlaps(other.subnet):
                r.fail(spec, f"{field}.subnet", f"{subnet} overlaps network '{other.name}' "
                       f"({other.subnet})", "Give every network its own prefix.", "subnet")
        gateway = (r.address(spec, "gateway", f"{field}.gateway") if "gateway" in spec
                   else subnet.broadcast_address - 1)
        if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
            r.fail(spec, f"{field}.gateway", f"{gateway} is not a usable address of {subnet}",
                   "Pick a host address inside the subnet (the last one is customary).", "gateway")
        networks[name] = Network(name, subnet, gateway, spec.line)

    vol_map = r.mapping(doc, "volumes", "volumes", required=False)
    volumes = tuple(r.name(vol_map, name, f"volumes.{name}") for name in vol_map)

    nodes = _validate_nodes(r, r.mapping(doc, "nodes", "nodes"), roles, networks, volumes)
    engines = _engines(r, r.mapping(doc, "engines", "engines", required=False))
    placement, stack_engines = (
        _placement(r, r.mapping(doc, "placement", "placement"), engines, roles, nodes)
        if "placement" in doc else ({}, {}))
    return Topology(r.path, zone, public, internal, dict(slot_map), roles, networks, volumes,
                    nodes, engines, placement, stack_engines)


def _engines(r: Reader, engine_map: Mapping) -> dict[str, Engine]:
    """`engines: {NAME: {endpoint: URL, tls: {ca: F, cert: F, key: F}}}`, each checked whole."""
    engines = {}
    shape = ("`{endpoint: unix:///run/docker.sock}`, `{endpoint: ssh://user@host}` or "
             "`{endpoint: tcp://host:2376, tls: {ca: ca.pem, cert: cert.pem, key: key.pem}}`")
    for name, spec in engine_map.items():
        where = f"engines.{name}"
        spec = r.entry(engine_map, name, where, shape)
        if name == LOCAL_ENGINE:
            r.fail(engine_map, where, "'local' is the engine edge runs on and needs no entry",
                   "Remove it; placements may name `local` without declaring it.", name)
        for key in spec:
            if key not in ("endpoint", "tls"):
                r.fail(spec, f"{where}.{key}", "unknown engine setting",
                       "Use only `endpoint` and `tls`.", str(key))
        endpoint = spec.get("endpoint")
        if not isinstance(endpoint, str) or not ENDPOINT_RE.match(endpoint):
            r.fail(spec, f"{where}.endpoint", f"'{endpoint}' is not an engine endpoint",
                   f"Write one of {shape}.", "endpoint" if "endpoint" in spec else None)
        tcp = endpoint.startswith("tcp://")
        if tcp != ("tls" in spec):
            r.fail(spec, f"{where}.tls", "a tcp:// endpoint needs `tls` and only it takes one"
                   if tcp else "`tls` is only for a tcp:// endpoint",
                   "An engine's API is root on its machine: reach it over TLS with client "
                   "certificates (`tls: {ca: ..., cert: ..., key: ...}`), a unix socket or ssh.",
                   "tls" if "tls" in spec else "endpoint")
        tls = _tls_files(r, spec, where) if tcp else None
        engines[name] = Engine(name, endpoint, tls, spec.line)
    return engines


def _tls_files(r: Reader, spec: Mapping, where: str) -> tuple[str, str, str]:
    """The `tls:` files of an engine, relative to the topology file, each an existing file."""
    tls = r.mapping(spec, "tls", f"{where}.tls")
    if sorted(tls) != sorted(TLS_FILES):
        r.fail(spec, f"{where}.tls", f"expected exactly {', '.join(TLS_FILES)} (found "
               f"{', '.join(map(str, tls)) or 'nothing'})",
               "Name the CA certificate, the client certificate and its key.", "tls")
    paths = []
    for key in TLS_FILES:
        value = tls[key]
        path = r.path.parent / str(value) if isinstance(value, str) and value else None
        if path is None or not path.is_file():
            r.fail(tls, f"{where}.tls.{key}", f"'{value}' is not a file",
                   "Give a path, absolute or relative to the topology file, of a file that "
                   "exists.", key)
        paths.append(str(path.resolve()))
    return (paths[0], paths[1], paths[2])


def _placement(r: Reader, spec: Mapping, engines: dict[str, Engine], roles: dict[str, Role],
               nodes: dict[str, Node]) -> tuple[dict[str, str], dict[str, str]]:
    """`placement: {tiers: {TIER: ENGINE}, nodes: {NODE: ENGINE}, stacks: {STACK: ENGINE}}`:
    every node's engine (a node's own entry winning over its tier's, `local` for the rest), and
    the stacks that sit wholly on one engine (winning over both)."""
    for key in spec:
        if key not in ("tiers", "nodes", "stacks"):
            r.fail(spec, f"placement.{key}", "unknown placement setting",
                   "Use only `tiers:` (tier -> engine), `nodes:` (node -> engine) and "
                   "`stacks:` (stack -> engine).", str(key))
    known = sorted(engines) + [LOCAL_ENGINE]

    def engine(where: Mapping, field: str, key: str) -> str:
        value = where[key]
        if value not in known:
            r.fail(where, field, f"unknown engine '{value}'",
                   f"Use one of: {', '.join(known)} (or declare it under `engines:`).", key)
        return value

    tiers = {role.tier for role in roles.values()}
    by_tier = r.mapping(spec, "tiers", "placement.tiers", required=False)
    for tier in by_tier:
        if tier not in tiers:
            r.fail(by_tier, f"placement.tiers.{tier}", f"unknown tier '{tier}'",
                   f"Use one of: {', '.join(sorted(tiers))} (the roles' tiers).", str(tier))
    by_node = r.mapping(spec, "nodes", "placement.nodes", required=False)
    for node in by_node:
        if node not in nodes:
            r.fail(by_node, f"placement.nodes.{node}", f"unknown node '{node}'",
                   f"Use one of: {', '.join(sorted(nodes))}.", str(node))
    by_stack = r.mapping(spec, "stacks", "placement.stacks", required=False)
    for stack in by_stack:
        if not isinstance(stack, str) or not NAME_RE.match(stack):
            r.fail(by_stack, f"placement.stacks.{stack}", f"'{stack}' is not a stack name",
                   "Use the stack's name: lower-case letters, digits and '-', starting with a "
                   "letter.", str(stack))
    if not by_tier and not by_node and not by_stack:
        r.fail(spec, "placement", "places nothing",
               "Add `tiers:`, `nodes:` or `stacks:` entries, or remove `placement:`.", None)
    tier_engine = {t: engine(by_tier, f"placement.tiers.{t}", t) for t in by_tier}
    node_engine = {n: engine(by_node, f"placement.nodes.{n}", n) for n in by_node}
    stack_engine = {s: engine(by_stack, f"placement.stacks.{s}", s) for s in by_stack}
    placed = ({name: node_engine.get(name) or tier_engine.get(roles[node.role].tier, LOCAL_ENGINE)
               for name, node in nodes.items()} if by_tier or by_node else {})
    return placed, stack_engine


def _capabilities(r: Reader, spec: Mapping, field: str) -> dict[str, str]:
    """A role's `capabilities: {NAME: why}`: required, so that every privilege a container gets
    beyond Docker's defaults is written down with its reason, and none is granted by habit."""
    where = f"{field}.capabilities"
    shape = ("Write `capabilities:` with one indented `NAME: what fails without it` line per "
             "capability, e.g. `NET_ADMIN: edge-init installs the topology's routes` "
             "(`capabilities: {}` for none).")
    caps = spec.get("capabilities")
    if not isinstance(caps, dict):
        r.fail(spec, where, "a role must say which Linux capabilities its containers get and "
               f"why (found {kind(caps)})", shape, "capabilities")
    for cap, why in caps.items():
        if cap not in CAPABILITIES:
            bare = str(cap).upper().removeprefix("CAP_")
            close = ([bare] if bare in CAPABILITIES
                     else difflib.get_close_matches(bare, sorted(CAPABILITIES), n=1))
            hint = f"Did you mean {close[0]}? " if close else ""
            r.fail(caps, f"{where}.{cap}", f"unknown capability '{cap}'",
                   f"{hint}Write a Linux capability as Docker's cap_add does: upper case, "
                   "without CAP_, e.g. NET_ADMIN (see capabilities(7)).", str(cap))
        if not isinstance(why, str) or not why.strip():
            r.fail(caps, f"{where}.{cap}", f"no `why` (found {kind(why)})",
                   f"Say on the same line what fails without it: `{cap}: <what needs it>`.",
                   str(cap))
        if "\n" in why.strip():
            r.fail(caps, f"{where}.{cap}", "the `why` is more than one line",
                   "Say it in one line; longer reasons belong in a comment above it.", str(cap))
    return {cap: why.strip() for cap, why in caps.items()}


def _validate_nodes(r: Reader, node_map: Mapping, roles: dict[str, Role],
                    networks: dict[str, Network], volumes: tuple[str, ...]) -> dict[str, Node]:
    taken: dict[ipaddress.IPv4Address, str] = {}
    parsed: dict[str, Node] = {}
    for name, spec in node_map.items():
        field = f"nodes.{name}"
        spec = r.entry(node_map, name, field, "with `role:` and `networks:`")
        role = spec.get("role")
        if role not in roles:
            r.fail(spec, f"{field}.role", f"unknown role '{role}'",
                   f"Use one of: {', '.join(sorted(roles))} (or declare it under `roles:`).",
                   "role")
        nets = r.mapping(spec, "networks", f"{field}.networks")
        if not nets:
            r.fail(spec, f"{field}.networks", "a node needs at least one network",
                   "Attach it, e.g. `networks: {dmz: 198.18.2.20}`.", "networks")
        addresses = {}
        for net, _ in nets.items():
            where = f"{field}.networks.{net}"
            if net not in networks:
                r.fail(nets, where, f"unknown network '{net}'",
                       f"Use one of: {', '.join(sorted(networks))}.", net)
            addr = r.address(nets, net, where)
            subnet = networks[net].subnet
            if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address,
                                              networks[net].gateway):
                r.fail(nets, where, f"{addr} is not a free host address of {net} ({subnet})",
                       "Pick a host address inside the subnet, not the gateway.", net)
            if addr in taken:
                r.fail(nets, where, f"duplicate address {addr}, already used by {taken[addr]}",
                       "Give every interface its own address.", net)
            taken[addr] = f"nodes.{name}.networks.{net}"
            addresses[net] = addr
        vols = r.mapping(spec, "volumes", f"{field}.volumes", required=False)
        for vol, mount in vols.items():
            if vol not in volumes:
                r.fail(vols, f"{field}.volumes.{vol}", f"unknown volume '{vol}'",
                       "Declare it under the top-level `volumes:`.", vol)
            if not isinstance(mount, str) or not mount.startswith("/"):
                r.fail(vols, f"{field}.volumes.{vol}", f"'{mount}' is not an absolute path",
                       "Write the mount point, e.g. /var/lib/paas.", vol)
        link = _link(r, spec, field, roles[role]) if "link" in spec else None
        parsed[name] = Node(name, role, addresses, (), (), dict(vols), spec.line, link)
    return {name: _with_routes(r, node_map[name], node, parsed, networks)
            for name, node in parsed.items()}


def _link(r: Reader, spec: Mapping, field: str, role: Role) -> Link:
    """Validate a node's `link: {delay_ms: N, rate: Nmbit}`."""
    where = f"{field}.link"
    link = r.mapping(spec, "link", where)
    for key in link:
        if key not in ("delay_ms", "rate"):
            r.fail(link, f"{where}.{key}", "unknown link setting",
                   "Use only `delay_ms` and `rate`, e.g. `link: {delay_ms: 120, rate: 2mbit}`.",
                   str(key))
    # The delay line detours the packets a node forwards (roles/link), so only routers have one.
    if not role.forwarding:
        r.fail(spec, where, f"role '{role.name}' does not forward packets",
               "Shape the links of a router (a role with `forwarding: true`) on the path.", "link")
    delay = link.get("delay_ms", 0)
    if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY_MS:
        r.fail(link, f"{where}.delay_ms", f"'{delay}' is not a delay in milliseconds",
               f"Write a whole number from 0 to {MAX_DELAY_MS}, e.g. `delay_ms: 120`.", "delay_ms")
    rate_kbit = 0
    if "rate" in link:
        match = RATE_RE.match(str(link["rate"]))
        if not match:
            r.fail(link, f"{where}.rate", f"'{link['rate']}' is not a rate",
                   "Write a whole number with kbit, mbit or gbit, e.g. `rate: 2mbit`.", "rate")
        rate_kbit = int(match.group(1)) * RATE_KBIT[match.group(2)]
    if not delay and not rate_kbit:
        r.fail(spec, where, "this link shapes nothing",
               "Set a `delay_ms` above 0, a `rate` or both, or remove `link:`.", "link")
    return Link(delay, rate_kbit)


def _with_routes(r: Reader, spec: Mapping, node: Node, nodes: dict[str, Node],
                 networks: dict[str, Network]) -> Node:
    """Resolve `routes` and `dns`, which name other nodes, once every node is known."""
    field = f"nodes.{node.name}"
    routes = []
    raw_routes = spec.get("routes", []) or []
    if not isinstance(raw_routes, list):
        r.fail(spec, f"{field}.routes", "expected a list", "Write `routes: [{to: [NET], via: NODE}]`.",
               "routes")
    for i, route in enumerate(raw_routes):
        where = f"{field}.routes[{i}]"
        if not isinstance(route, dict) or "to" not in route or "via" not in route:
            r.fail(spec, where, "a route needs `to` (networks) and `via` (a node)",
                   "Write `{to: [dmz], via: firewall}`.", "routes")
        targets = route["to"] if isinstance(route["to"], list) else [route["to"]]
        for target in targets:
            if target not in networks:
                r.fail(route, f"{where}.to", f"unknown network '{target}'",
                       f"Use one of: {', '.join(sorted(networks))}.", "to")
            if target in node.addresses:
                r.fail(route, f"{where}.to", f"'{target}' is directly connected",
                       "Remove it: connected networks need no route.", "to")
        via = nodes.get(route["via"])
        if via is None or via.name == node.name:
            r.fail(route, f"{where}.via", f"'{route['via']}' is not another node",
                   "Name the neighbour that forwards the traffic.", "via")
        if not set(via.addresses) & set(node.addresses):
            r.fail(route, f"{where}.via", f"'{via.name}' shares no network with '{node.name}'",
                   "Route through a neighbour on one of this node's networks.", "via")
        routes.append(Route(tuple(targets), via.name))
    dns = spec.get("dns", []) or []
    for server in dns:
        if server not in nodes or server == node.name:
            r.fail(spec, f"{field}.dns", f"'{server}' is not a node",
                   "Name the node whose address the container uses as its DNS server.", "dns")
    return Node(node.name, node.role, node.addresses, tuple(routes), tuple(dns), node.volumes,
                node.line, node.link)
