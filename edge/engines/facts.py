"""Facts, in pyinfra's sense: what a lab node *is*, read by a command and a pure parser.

A `Fact` is a read-only command and a function from its output text to typed data. The parsers
take text, never a container, so each is unit-tested on output captured from a real lab
(tests/unit/fixtures/<fact>/), including the awkward cases that broke code which read the same
output ad hoc: FRR's BGP summary without any peer (`{}`: no `ipv4Unicast` key at all), the
firewall after its table was deleted, a zone file a fault overwrote, a program that stopped.

    peers = facts.BGP_SUMMARY.gather("edge-lab-firewall")     # {'198.18.1.1': BgpPeer(...)}
"""

from __future__ import annotations

import csv
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import docker

from edge import ROOT
from edge.engines import docker_exec
from edge.model.scope import role_defaults

T = TypeVar("T")
# A read-only command that takes longer than this is stuck (a vtysh whose daemon hangs); the
# caller gets an error instead of waiting for ever.
FACT_TIMEOUT_S = 30.0


class FactError(ValueError):
    """Output a parser cannot read; the message names the line or field and what is wrong."""


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A read-only command run in a node, and the pure parser of its standard output."""

    name: str
    command: tuple[str, ...] | str          # an argv, or one shell line
    parse: Callable[[str], T]
    ok_exit_codes: frozenset[int] = frozenset({0})   # exits that still mean "here is the output"

    def gather(self, target: docker_exec.Target,
               engine: docker.DockerClient | None = None) -> T:
        """Run the command in the container and parse what it printed. Raises
        docker_exec.ExecError (ContainerUnavailable when the container is not running) when the
        command fails, FactError when its output is not what the parser knows."""
        what = f"reading {self.name}"
        result = docker_exec.run(target, self.command, timeout=FACT_TIMEOUT_S, check=False,
                                 what=what, engine=engine)
        name = docker_exec.name_of(target)
        if result.exit_code not in self.ok_exit_codes:
            raise docker_exec.ExecError(name, self.command, result, what, FACT_TIMEOUT_S)
        try:
            return self.parse(result.stdout)
        except FactError as err:
            raise FactError(f"{name}: {self.name} (`{docker_exec.shown(self.command)}`): "
                            f"{err}") from None


def _json(text: str, empty: Any) -> Any:
    """JSON output, `empty` when there is none (a command that found nothing may print nothing)."""
    if not text.strip():
        return empty
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise FactError(f"line {err.lineno} column {err.colno}: not JSON ({err.msg})") from None


# --- FRR: the running configuration -------------------------------------------------------------

@dataclass(frozen=True)
class Neighbor:
    """A BGP neighbor as configured: its address and remote AS (a number, or `internal` /
    `external`), and its description."""

    address: str
    remote_as: int | str
    description: str = ""


@dataclass(frozen=True)
class FrrConfig:
    """The BGP part of FRR's running configuration: the local AS (None: no `router bgp`), the
    router id, the neighbors by address, and the prefixes announced with `network` (in every
    address family, in the order they appear)."""

    asn: int | None = None
    router_id: str = ""
    neighbors: dict[str, Neighbor] = field(default_factory=dict)
    networks: list[str] = field(default_factory=list)


def frr_running_config(text: str) -> FrrConfig:
    """Parse `vtysh -c 'show running-config'` (only the default VRF's `router bgp` block).

    A block starts at a line without indentation and ends at `exit` or the next such line, so a
    `network` of another routing protocol (`router ospf`) is not taken for a BGP prefix.
    """
    asn, router_id = None, ""
    neighbors: dict[str, Neighbor] = {}
    networks: list[str] = []
    in_bgp = False
    for line in text.splitlines():
        if line and not line[0].isspace():
            match = re.fullmatch(r"router bgp (\d+)", line.strip())
            in_bgp = bool(match)
            if match:
                asn = int(match.group(1))
            continue
        words = line.split()
        if not in_bgp or not words:
            continue
        if words[:2] == ["bgp", "router-id"] and len(words) == 3:
            router_id = words[2]
        elif words[0] == "network" and len(words) >= 2:
            networks.append(words[1])
        elif words[0] == "neighbor" and len(words) >= 4 and words[2] == "remote-as":
            remote = int(words[3]) if words[3].isdigit() else words[3]
            old = neighbors.get(words[1])
            neighbors[words[1]] = Neighbor(words[1], remote, old.description if old else "")
        elif words[0] == "neighbor" and len(words) >= 4 and words[2] == "description":
            old = neighbors.get(words[1]) or Neighbor(words[1], "")
            neighbors[words[1]] = Neighbor(words[1], old.remote_as, " ".join(words[3:]))
    return FrrConfig(asn, router_id, neighbors, networks)


FRR_RUNNING_CONFIG = Fact("the FRR configuration", ("vtysh", "-c", "show running-config"),
                          frr_running_config)


# --- FRR: BGP sessions --------------------------------------------------------------------------

@dataclass(frozen=True)
class BgpPeer:
    """One BGP session: its state (Established, Active, Connect, Idle...), the prefixes received
    over it, and the peer's AS."""

    state: str
    prefixes_received: int
    remote_as: int | None = None

    @property
    def established(self) -> bool:
        return self.state == "Established"


def bgp_summary(text: str, family: str = "ipv4Unicast") -> dict[str, BgpPeer]:
    """Parse `show bgp summary json` / `show ip bgp summary json`: peer address -> BgpPeer.

    FRR prints three shapes: keyed by address family (`{"ipv4Unicast": {"peers": ...}}`), flat
    when the family was asked for (`show bgp ipv4 unicast summary json`), and `{}` when BGP has
    no peer in it (not configured yet, or the daemon just restarted). The last one has no
    `ipv4Unicast` key at all, which is what made code reading `.ipv4Unicast.peers` fail; here it is
    simply no peers.
    """
    data = _json(text, {})
    if not isinstance(data, dict):
        raise FactError(f"expected a JSON object, got {type(data).__name__}")
    block = data if "peers" in data else data.get(family) or {}
    peers = {}
    for address, peer in (block.get("peers") or {}).items():
        if "state" not in peer:
            raise FactError(f"peer {address} has no state")
        peers[address] = BgpPeer(peer["state"], int(peer.get("pfxRcd") or 0), peer.get("remoteAs"))
    return peers


BGP_SUMMARY = Fact("the BGP sessions", ("vtysh", "-c", "show bgp summary json"), bgp_summary)


# --- nftables -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NftRule:
    """A rule: its comment, its statements as canonical JSON without counter values (the same
    rule loaded twice compares equal), and the packets and bytes its counter saw (0 without one)."""

    comment: str
    statements: str
    packets: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class NftChain:
    """A chain: base chains have a type, hook, priority and policy; regular chains have none."""

    name: str
    type: str | None = None
    hook: str | None = None
    prio: int | None = None
    policy: str | None = None
    rules: list[NftRule] = field(default_factory=list)


@dataclass(frozen=True)
class Ruleset:
    """`nft -j list ruleset`: table ("<family> <name>", e.g. "inet edge") -> chain name ->
    NftChain, in the order nft lists them."""

    tables: dict[str, dict[str, NftChain]] = field(default_factory=dict)

    def normalized(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The ruleset without handles and counter values, as plain data: equal exactly when
        the same tables, chains, policies and rules are loaded."""
        return {table: {name: {"type": c.type, "hook": c.hook, "prio": c.prio,
                               "policy": c.policy, "rules": [r.statements for r in c.rules]}
                        for name, c in chains.items()}
                for table, chains in self.tables.items()}

    def counter(self, comment: str) -> int | None:
        """Packets counted by the rule with this comment (None: no such rule is loaded)."""
        return next((rule.packets for chains in self.tables.values()
                     for chain in chains.values() for rule in chain.rules
                     if rule.comment == comment), None)


def _without_counter_values(expr: list[dict]) -> str:
    return json.dumps([{"counter": {}} if "counter" in e else e for e in expr], sort_keys=True)


def nft_ruleset(text: str) -> Ruleset:
    """Parse `nft -j list ruleset` (or `nft -j list table|chain ...`, which print the same
    objects). No output, or only metainfo, is an empty ruleset."""
    items = _json(text, {"nftables": []})
    if not isinstance(items, dict) or not isinstance(items.get("nftables"), list):
        raise FactError('expected {"nftables": [...]}')
    tables: dict[str, dict[str, NftChain]] = {}
    for item in items["nftables"]:
        if "table" in item:
            tables.setdefault(f"{item['table']['family']} {item['table']['name']}", {})
        elif "chain" in item:
            c = item["chain"]
            tables.setdefault(f"{c['family']} {c['table']}", {})[c["name"]] = NftChain(
                c["name"], c.get("type"), c.get("hook"), c.get("prio"), c.get("policy"))
        elif "rule" in item:
            r = item["rule"]
            chain = tables.get(f"{r['family']} {r['table']}", {}).get(r["chain"])
            if chain is None:
                raise FactError(f"rule {r.get('handle')} is in chain {r['family']} {r['table']} "
                                f"{r['chain']}, which is not listed before it")
            counter = next((e["counter"] for e in r["expr"] if "counter" in e), {})
            chain.rules.append(NftRule(r.get("comment", ""), _without_counter_values(r["expr"]),
                                       int(counter.get("packets", 0)),
                                       int(counter.get("bytes", 0))))
    return Ruleset(tables)


NFT_RULESET = Fact("the nftables ruleset", ("nft", "-j", "list", "ruleset"), nft_ruleset)


# --- sockets, addresses, routes -----------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Socket:
    """A listening socket: tcp or udp, the local address (no brackets; 0.0.0.0, :: or * for
    any) and port."""

    proto: str
    address: str
    port: int


WILDCARDS = frozenset({"0.0.0.0", "::", "*"})


def listening_sockets(text: str) -> list[Socket]:
    """Parse `ss -Htlnu` (no header: Netid State Recv-Q Send-Q Local:Port Peer:Port ...): the
    distinct listening sockets, sorted (a daemon with a socket per thread lists one per thread).
    An interface scope (`127.0.0.53%lo:53`) is dropped."""
    found = set()
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        local = words[4] if len(words) > 4 else ""
        match = re.fullmatch(r"\[?([^\]%]+?)(?:%\S+?)?\]?:(\d+|\*)", local)
        if words[0] not in ("tcp", "udp") or not match:
            raise FactError(f"line {number}: '{line.strip()}' is not a tcp or udp socket of "
                            "`ss -Htlnu` (Netid State Recv-Q Send-Q Local:Port Peer:Port)")
        port = match.group(2)
        found.add(Socket(words[0], match.group(1), 0 if port == "*" else int(port)))
    return sorted(found)


def listens(sockets: list[Socket], address: str, port: int, proto: str = "tcp") -> bool:
    """Does something accept `proto` connections to address:port (itself or a wildcard)?"""
    return any(s.proto == proto and s.port == port and s.address in WILDCARDS | {address}
               for s in sockets)


LISTENING_SOCKETS = Fact("the listening sockets", ("ss", "-Htlnu"), listening_sockets)


def interface_addresses(text: str) -> dict[str, list[str]]:
    """Parse `ip -j addr`: interface name -> its addresses as "address/prefixlen" (IPv4 and
    IPv6, in the kernel's order); an interface without address maps to []."""
    links = _json(text, [])
    if not isinstance(links, list):
        raise FactError("expected a JSON list of interfaces")
    try:
        return {link["ifname"]: [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                                 if "local" in a]
                for link in links}
    except KeyError as missing:
        raise FactError(f"an interface has no field {missing}") from None


def interface_with(addresses: dict[str, list[str]], address: str) -> str | None:
    """The interface holding `address` (no prefix length), or None."""
    return next((name for name, held in addresses.items()
                 if any(a.split("/")[0] == address for a in held)), None)


IP_ADDR = Fact("the interface addresses", ("ip", "-j", "addr"), interface_addresses)


@dataclass(frozen=True)
class Route:
    """A route: destination prefix ("default" for 0.0.0.0/0), gateway ("" when on-link), device
    and the protocol that installed it (kernel, bgp, static...; "boot" when not said)."""

    dst: str
    gateway: str
    dev: str
    protocol: str


def routes(text: str) -> list[Route]:
    """Parse `ip -j route`; a host route (no "/") gets its /32 or /128."""
    entries = _json(text, [])
    if not isinstance(entries, list):
        raise FactError("expected a JSON list of routes")
    found = []
    for entry in entries:
        dst = entry.get("dst", "")
        if dst != "default" and "/" not in dst:
            try:
                dst = str(ipaddress.ip_network(dst))
            except ValueError:
                raise FactError(f"route destination '{dst}' is not an address") from None
        found.append(Route(dst, entry.get("gateway", ""), entry.get("dev", ""),
                           entry.get("protocol", "boot")))
    return found


IP_ROUTE = Fact("the routes", ("ip", "-j", "route"), routes)


@dataclass(frozen=True)
class WayOut:
    """`ip -j route get ADDRESS` read with `ip -j link`: the interface a packet to ADDRESS leaves
    by, the next hop ("" when on-link), that interface's MTU, and the path MTU the kernel learnt
    for ADDRESS from an ICMP fragmentation-needed (None when it learnt none)."""

    dev: str
    gateway: str
    mtu: int
    learnt_mtu: int | None


def way_out(text: str) -> WayOut:
    """Parse the two JSON lines of `ip -j route get ADDRESS; ip -j link`."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 2:
        raise FactError(f"expected 2 JSON lines (`ip -j route get`, `ip -j link`), got "
                        f"{len(lines)}")
    found, links = _json(lines[0], []), _json(lines[1], [])
    if not isinstance(found, list) or len(found) != 1 or not isinstance(links, list):
        raise FactError("expected one route, then a JSON list of interfaces")
    route = found[0]
    mtus = {link.get("ifname"): link.get("mtu") for link in links if isinstance(link, dict)}
    if route.get("dev") not in mtus or not isinstance(mtus[route["dev"]], int):
        raise FactError(f"the route leaves by '{route.get('dev')}', which `ip -j link` does not "
                        "list with an MTU")
    learnt = next((m["mtu"] for m in route.get("metrics") or []
                   if isinstance(m, dict) and isinstance(m.get("mtu"), int)), None)
    return WayOut(route["dev"], route.get("gateway", ""), mtus[route["dev"]], learnt)


def way_out_to(address: str) -> Fact[WayOut]:
    """How a node sends to `address` (an address of the lab: validated, never a shell word)."""
    ipaddress.ip_address(address)
    return Fact(f"the way out to {address}", f"ip -j route get {address} && ip -j link", way_out)


# --- BIND zone files ----------------------------------------------------------------------------

RR_TYPES = frozenset("A AAAA NS CNAME DNAME SOA MX TXT PTR SRV CAA DS DNSKEY RRSIG NSEC NSEC3 "
                     "NSEC3PARAM TLSA SSHFP HINFO NAPTR SPF SVCB HTTPS".split())
CLASSES = frozenset({"IN", "CH", "HS"})
TTL = r"\d+|(\d+[smhdwSMHDW])+"       # 300, 1h, 1h30m
# Which fields of a record's value are domain names (made absolute, so a relative name in a
# primary's file and the absolute one in a secondary's copy compare equal).
NAME_FIELDS = {"NS": (0,), "CNAME": (0,), "DNAME": (0,), "PTR": (0,), "MX": (1,), "SRV": (3,),
               "SOA": (0, 1)}


@dataclass(frozen=True)
class Zone:
    """A zone file: its origin (absolute, with the final dot), the SOA serial (None without SOA)
    and its records as (absolute name, type, value) tuples in file order; a value is the record's
    fields joined by one space, with names in it absolute."""

    origin: str
    serial: int | None
    records: list[tuple[str, str, str]]


def _zone_lines(text: str) -> list[tuple[int, str, list[str]]]:
    """(line number, its text, words) per logical line: comments gone, quoted strings kept whole,
    parenthesized continuations joined (the number and text are those of its first line)."""
    logical: list[tuple[int, str, list[str]]] = []
    words: list[str] = []
    depth, start, first = 0, 0, ""
    for number, line in enumerate(text.splitlines(), 1):
        if depth == 0:
            start, first, words = number, line, []
        for token in re.findall(r'"(?:[^"\\]|\\.)*"|;.*|[()]|[^\s()";]+', line):
            if token.startswith(";"):
                break
            if token in "()":
                depth += 1 if token == "(" else -1
                if depth < 0:
                    raise FactError(f"line {number}: ')' without '('")
            else:
                words.append(token)
        if depth == 0 and words:
            logical.append((start, first, words))
    if depth:
        raise FactError(f"line {start}: '(' is never closed")
    return logical


def zone_file(text: str, origin: str = ".") -> Zone:
    """Parse a zone file in BIND's text format ($ORIGIN, $TTL, `@`, relative names, an owner
    left blank for the previous one, TTL and class in either order, multi-line records).
    `origin` is the zone's name when the file has no $ORIGIN (as named.conf gives it)."""
    origin = origin if origin.endswith(".") else origin + "."
    records: list[tuple[str, str, str]] = []
    owner = ""

    def absolute(name: str) -> str:
        if name == "@":
            return origin
        if name.endswith("."):
            return name
        return f"{name}." if origin == "." else f"{name}.{origin}"

    for number, line, words in _zone_lines(text):
        if words[0] == "$ORIGIN" and len(words) == 2:
            origin = absolute(words[1])
            continue
        if words[0] == "$TTL":
            continue
        if words[0].startswith("$"):
            raise FactError(f"line {number}: directive {words[0]} is not supported")
        if not line[:1].isspace():
            owner, words = absolute(words[0]), words[1:]
        elif not owner:
            raise FactError(f"line {number}: a record without owner name and no record before it")
        while words and (words[0].upper() in CLASSES or re.fullmatch(TTL, words[0])):
            words = words[1:]
        rtype = words[0].upper() if words else ""
        if rtype not in RR_TYPES and not re.fullmatch(r"TYPE\d+", rtype):
            raise FactError(f"line {number}: '{line.strip()}' has no record type (A, NS, SOA...) "
                            "after its name, TTL and class: is this a zone file?")
        fields = words[1:]
        for index in NAME_FIELDS.get(rtype, ()):
            if index < len(fields):
                fields[index] = absolute(fields[index])
        records.append((owner, rtype, " ".join(fields)))
    soa = next((value for _, rtype, value in records if rtype == "SOA"), None)
    if soa is not None and (len(soa.split()) != 7 or not soa.split()[2].isdigit()):
        raise FactError(f"SOA '{soa}' is not: primary, contact, serial, refresh, retry, expire, "
                        "minimum")
    return Zone(origin, int(soa.split()[2]) if soa else None, records)


def zone(path: str, origin: str) -> Fact[Zone]:
    """The zone file at `path` (of zone `origin`) as a fact."""
    return Fact(f"zone file {path}", ("cat", path), lambda text: zone_file(text, origin))


# --- supervisord --------------------------------------------------------------------------------

SUPERVISOR_STATES = frozenset({"STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED",
                               "FATAL", "UNKNOWN"})


@dataclass(frozen=True)
class Program:
    """A supervised program: its supervisord state (RUNNING, EXITED, STOPPED, FATAL...; ERROR
    for a name supervisord does not know) and what supervisorctl said after it (pid and uptime,
    exit time, error)."""

    state: str
    detail: str = ""


def supervisor_status(text: str) -> dict[str, Program]:
    """Parse `supervisorctl status [name...]`: program name -> Program."""
    programs = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if match := re.fullmatch(r"(\S+):\s+ERROR\s+\((.*)\)", line.strip()):
            programs[match.group(1)] = Program("ERROR", match.group(2))
            continue
        match = re.fullmatch(r"(\S+)\s+([A-Z]+)\s*(.*)", line.strip())
        if not match or match.group(2) not in SUPERVISOR_STATES:
            raise FactError(f"line {number}: '{line.strip()}' is not 'program STATE detail' "
                            "(is supervisord running?)")
        programs[match.group(1)] = Program(match.group(2), match.group(3))
    return programs


# supervisorctl exits 3 when a program is not RUNNING (an EXITED one-shot) and 4 for an unknown
# name: the output is the answer all the same.
SUPERVISOR_STATUS = Fact("the supervised programs", ("supervisorctl", "status"),
                         supervisor_status, frozenset({0, 3, 4}))


# --- HAProxy ------------------------------------------------------------------------------------

def haproxy_stat(text: str) -> dict[tuple[str, str], str]:
    """Parse HAProxy's `show stat` CSV: (proxy, server) -> status (UP, DOWN, MAINT, "UP 1/2"
    while rising, ...; OPEN for a frontend); FRONTEND and BACKEND are pseudo servers."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return {}
    if not lines[0].startswith("# pxname,svname,"):
        raise FactError(f"line 1: '{lines[0][:60]}' is not the `show stat` header "
                        "(# pxname,svname,...)")
    rows = csv.DictReader([lines[0][2:], *lines[1:]])
    found = {}
    for number, row in enumerate(rows, 2):
        if not row.get("svname") or not row.get("status"):
            raise FactError(f"line {number}: no server name or status")
        found[(row["pxname"], row["svname"])] = row["status"]
    return found


ADMIN_SOCKET = role_defaults(ROOT / "roles", "loadbalancer")["loadbalancer_admin_socket"]
HAPROXY_STAT = Fact("the load balancer's servers", f"echo 'show stat' | nc -NU {ADMIN_SOCKET}",
                    haproxy_stat)
