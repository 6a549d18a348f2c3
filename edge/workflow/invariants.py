"""What a preview holds on the staged copy besides the contract's flows: redundancy and agreement.

The contract asks about flows, one answer per vantage point. Some losses answer every flow as
before: a second border that stops learning the service prefix (traffic uses the first one), one
of two app servers gone behind a load balancer, a name server that stops following the primary
(it still answers, with yesterday's zone). These are read here, on the staging stack, before and
after the change, and judged as a difference:

- Redundant sets, declared by the roles as data (`roles/<role>/meta/edge_redundancy.yml`, see
  roles/common/meta/edge_redundancy.yml for the format): which fact to read (a parser of
  edge.engines.facts, READERS), how a member is named, which records are members and which of
  them are up. A set applies to every node that runs its role (itself or through a meta
  dependency), so a new role brings its own sets and nothing here changes. A member that was up
  before and is down or gone after is REDUNDANCY LOST, naming the node and the member.
- Zone agreement, declared by the role of the authoritative servers (`zone:`): every server
  answers the same SOA serial and names the same primary, every name of the zone (from a zone
  transfer over the TSIG key, run inside a server container with the key file the role writes)
  has the same records at every server, a zone change on the primary reaches every secondary, and
  the serial never goes backwards (a secondary would never transfer the zone again). A name
  published at fewer addresses after the change than before is REDUNDANCY LOST.

Reading is `read` (one `docker exec` per node and fact, in parallel); judging is pure (`judge`),
unit-tested on captured output.
"""

from __future__ import annotations

import fnmatch
import re
import string
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from edge import ROOT
from edge.engines import docker_exec, facts
from edge.model.datafile import Reader as DataReader
from edge.model.datafile import load_checked
from edge.model.lab import Lab
from edge.model.scope import EVERYONE, role_closure, role_defaults

DECLARATION = Path("meta") / "edge_redundancy.yml"    # under roles/<role>/
REDUNDANCY_LOST, DISAGREE = "redundancy-lost", "dns-disagreement"
SERIAL_HALF = 2 ** 31                                   # RFC 1982 serial arithmetic
WORKERS = 8                                             # parallel `docker exec`s of one reading
SHOWN = 4                                               # differing names told per server


class InvariantError(ValueError):
    """A role's redundancy declaration that cannot be used; the message names file, line, field
    and what to do."""


# --- the readers: a fact of edge.engines.facts and its records as named text fields -------------

def unbound_stubs(text: str) -> list[tuple[str, str]]:
    """Parse unbound.conf: (zone, address) per `stub-addr` of each `stub-zone` (in file order).
    The resolver role writes the whole configuration, so the file is what unbound runs."""
    found, zone = [], ""
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "stub-zone:":
            zone = ""
        elif words[0] == "name:" and len(words) == 2:
            zone = words[1].strip('"')
        elif words[0] == "stub-addr:":
            if len(words) != 2 or not zone:
                raise facts.FactError(f"line {number}: '{line.strip()}' is not `stub-addr: "
                                      "ADDRESS` inside a stub-zone with a name")
            found.append((zone, words[1]))
    return found


UNBOUND_STUBS = facts.Fact(
    "the resolver's stub zones",
    ("cat", role_defaults(ROOT / "roles", "resolver")["resolver_conf"]), unbound_stubs)


@dataclass(frozen=True)
class Reader:
    """A fact and how its parsed value becomes records (field -> text), the fields a
    declaration may name."""

    fact: facts.Fact
    fields: tuple[str, ...]
    records: Callable[[Any], list[dict[str, str]]]


def _haproxy_kind(server: str) -> str:
    return {"FRONTEND": "frontend", "BACKEND": "backend"}.get(server, "server")


READERS: dict[str, Reader] = {
    "haproxy_stat": Reader(facts.HAPROXY_STAT, ("proxy", "server", "kind", "status"), lambda stat: [
        {"proxy": proxy, "server": server, "kind": _haproxy_kind(server), "status": status}
        for (proxy, server), status in sorted(stat.items())]),
    "bgp_summary": Reader(facts.BGP_SUMMARY, ("peer", "state", "prefixes_received"), lambda peers: [
        {"peer": address, "state": peer.state, "prefixes_received": str(peer.prefixes_received)}
        for address, peer in sorted(peers.items())]),
    "routes": Reader(facts.IP_ROUTE, ("dst", "gateway", "dev", "protocol"), lambda found: [
        {"dst": r.dst, "gateway": r.gateway, "dev": r.dev, "protocol": r.protocol}
        for r in found]),
    "supervisor_status": Reader(facts.SUPERVISOR_STATUS, ("program", "state", "detail"),
                                lambda programs: [
        {"program": name, "state": p.state, "detail": p.detail}
        for name, p in sorted(programs.items())]),
    "unbound_stubs": Reader(UNBOUND_STUBS, ("zone", "address"), lambda stubs: [
        {"zone": zone, "address": address} for zone, address in stubs]),
}


# --- the declarations ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RedundantSet:
    """One redundant set a role declares: read with `reader` on every node running `role`."""

    role: str
    name: str
    reader: str
    member: str                                   # a format over the record's fields
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)
    up: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def members(self, records: Iterable[dict[str, str]]) -> dict[str, bool]:
        """Member name -> up, from the parsed records (pure)."""
        def matches(record: dict[str, str], rules: dict[str, tuple[str, ...]]) -> bool:
            return all(any(fnmatch.fnmatchcase(record[key], glob) for glob in globs)
                       for key, globs in rules.items())
        return {self.member.format(**record): matches(record, self.up)
                for record in records if matches(record, self.where)}


@dataclass(frozen=True)
class ZoneCheck:
    """The authoritative servers of the lab zone (nodes running `role`) must agree."""

    role: str
    network: str
    key_file: str


@dataclass(frozen=True)
class Declared:
    """Every role's declarations, as one tree's roles hold them."""

    sets: tuple[RedundantSet, ...] = ()
    zones: tuple[ZoneCheck, ...] = ()
    closure: dict[str, set[str]] = field(default_factory=dict)   # role -> roles that run with it

    def roles_of(self, role: str) -> set[str]:
        """The roles a node of Ansible role `role` runs: its own closure and every host's."""
        found = set(self.closure.get(role, {role}))
        for everyone in EVERYONE:
            found |= self.closure.get(everyone, {everyone})
        return found


def _globs(r: DataReader, parent: Any, key: str, where: str, fields: tuple[str, ...]
           ) -> dict[str, tuple[str, ...]]:
    rules = parent.get(key) or {}
    if not isinstance(rules, dict):
        r.fail(parent, f"{where}.{key}", "expected a mapping of field: glob",
               f"Write e.g. `{key}: {{{fields[-1]}: VALUE}}`.", key)
    found = {}
    for name, globs in rules.items():
        globs = globs if isinstance(globs, list) else [globs]
        if name not in fields:
            r.fail(rules, f"{where}.{key}.{name}", f"the reader has no field '{name}'",
                   f"Use one of: {', '.join(fields)}.", str(name))
        if not globs or not all(isinstance(g, (str, int)) and not isinstance(g, bool)
                                for g in globs):
            r.fail(rules, f"{where}.{key}.{name}", "expected a text (a glob) or a list of them",
                   "Write e.g. `state: RUNNING` or `status: [UP, \"UP *\"]`.", str(name))
        found[str(name)] = tuple(str(g) for g in globs)
    return found


def _load_one(path: Path, role: str) -> tuple[list[RedundantSet], list[ZoneCheck]]:
    doc, r = load_checked(path, "redundancy declaration", f"roles/{role}", InvariantError)
    if doc is None:
        return [], []
    if not isinstance(doc, dict) or set(doc) - {"sets", "zone"}:
        r.fail(doc, "file", "expected a mapping with `sets:` and/or `zone:`",
               "See roles/common/meta/edge_redundancy.yml for the format.", None)
    sets = doc.get("sets") or []
    if not isinstance(sets, list):
        r.fail(doc, "sets", "expected a list of sets", "Write `- name: ...` entries.", "sets")
    found = []
    for i, entry in enumerate(sets):
        where = f"sets[{i}]"
        if not isinstance(entry, dict):
            r.fail(doc, where, "expected a mapping", "Write `- name: ...` entries.", "sets")
        unknown = set(entry) - {"name", "fact", "member", "where", "up"}
        if unknown:
            r.fail(entry, f"{where}.{sorted(unknown)[0]}", "unknown key",
                   "Use only: name, fact, member, where, up.", sorted(unknown)[0])
        if not isinstance(entry.get("name"), str) or not entry["name"].strip():
            r.fail(entry, f"{where}.name", "missing", "Say what the members are, e.g. "
                   "`name: backend servers`.", "name")
        reader = READERS.get(entry.get("fact"))
        if reader is None:
            r.fail(entry, f"{where}.fact", f"'{entry.get('fact')}' is not a reader",
                   f"Use one of: {', '.join(sorted(READERS))}.", "fact")
        member = entry.get("member")
        named = [f for _, f, _, _ in string.Formatter().parse(member)
                 if f is not None] if isinstance(member, str) else None
        if not named or any(f not in reader.fields for f in named):
            r.fail(entry, f"{where}.member", f"'{member}' does not name a member from the "
                   "record's fields", f"Write e.g. `member: \"{{{reader.fields[0]}}}\"` with "
                   f"fields of {entry['fact']}: {', '.join(reader.fields)}.", "member")
        found.append(RedundantSet(role, entry["name"].strip(), entry["fact"], member,
                                  _globs(r, entry, "where", where, reader.fields),
                                  _globs(r, entry, "up", where, reader.fields)))
    zones = []
    if "zone" in doc:
        zone = doc["zone"]
        if not isinstance(zone, dict) or not all(isinstance(zone.get(k), str) and zone[k]
                                                 for k in ("network", "key_file")):
            r.fail(doc, "zone", "expected `network:` and `key_file:`", "Write the network the "
                   "servers answer on and the TSIG key file the role writes.", "zone")
        zones.append(ZoneCheck(role, zone["network"], zone["key_file"]))
    return found, zones


def load_declared(roles: Path) -> Declared:
    """Every `roles/<role>/meta/edge_redundancy.yml` of a tree's roles folder."""
    sets: list[RedundantSet] = []
    zones: list[ZoneCheck] = []
    for path in sorted(roles.glob(f"*/{DECLARATION}")):
        more, zone = _load_one(path, path.parents[1].name)
        sets += more
        zones += zone
    return Declared(tuple(sets), tuple(zones), role_closure(roles) if roles.is_dir() else {})


# --- findings -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """Something the change broke that no flow asks about: lost redundancy, or name servers that
    no longer agree. `node` is the node it is about ("" for the zone as a whole)."""

    kind: str          # REDUNDANCY_LOST or DISAGREE
    node: str
    subject: str       # the set's name, or the zone
    message: str       # in words, for people

    @property
    def reason(self) -> str:
        head = {REDUNDANCY_LOST: "REDUNDANCY LOST", DISAGREE: "NAME SERVERS DISAGREE"}[self.kind]
        return f"{head}: {self.message}"


# --- reading -------------------------------------------------------------------------------------

Members = dict[str, bool]


@dataclass(frozen=True)
class NodeView:
    """A node's redundant sets as read: set name -> members, or why it could not be read
    (`gone`: the container is not running)."""

    sets: dict[str, Members] = field(default_factory=dict)
    unread: dict[str, str] = field(default_factory=dict)
    gone: str = ""


@dataclass(frozen=True)
class ZoneView:
    """What each authoritative server serves: its SOA serial (None: no SOA answer), the primary
    its SOA names, and its records (no SOA) by a zone transfer. Servers whose container is not
    running are left out: a silent server is the contract's flows' business."""

    zone: str
    serials: dict[str, int | None] = field(default_factory=dict)
    primaries: dict[str, str] = field(default_factory=dict)
    records: dict[str, frozenset[tuple[str, str, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class View:
    """One reading of the staged copy."""

    nodes: dict[str, NodeView] = field(default_factory=dict)
    zones: tuple[ZoneView, ...] = ()


def node_script(readers: Iterable[str]) -> str:
    """One shell script that runs every reader's command in a node, each section opened by a
    marker line and closed by the command's exit code: one `docker exec` per node, however many
    sets its roles declare (each exec costs seconds on a loaded machine)."""
    return "; ".join(f"echo '=== {name}'; {docker_exec.shown(READERS[name].fact.command)}; "
                     f"echo \"=== exit $?\"" for name in readers)


def parse_node_output(text: str, wanted: list[RedundantSet]) -> NodeView:
    """The node script's output as a NodeView (pure): each reader's section parsed by its fact;
    a section whose command failed, or whose output its parser cannot read, is unread."""
    sections: dict[str, list[str]] = {}
    codes: dict[str, int] = {}
    current = ""
    for line in text.splitlines():
        if match := re.fullmatch(r"=== exit (\d+)", line.strip()):
            codes[current] = int(match.group(1))
        elif match := re.fullmatch(r"=== (\S+)", line.strip()):
            current = match.group(1)
            sections[current] = []
        elif current:
            sections[current].append(line)
    parsed: dict[str, list[dict[str, str]] | str] = {}
    for name in dict.fromkeys(s.reader for s in wanted):
        reader = READERS[name]
        if name not in codes or codes[name] not in reader.fact.ok_exit_codes:
            said = " ".join(" ".join(sections.get(name, [])).split())[-200:]
            parsed[name] = (f"`{docker_exec.shown(reader.fact.command)}` exited "
                            f"{codes.get(name, '?')}" + (f": {said}" if said else ""))
            continue
        try:
            parsed[name] = reader.records(reader.fact.parse("\n".join(sections[name])))
        except facts.FactError as err:
            parsed[name] = f"{reader.fact.name}: {err}"
    return NodeView({s.name: s.members(parsed[s.reader]) for s in wanted
                     if not isinstance(parsed[s.reader], str)},
                    {s.name: parsed[s.reader] for s in wanted
                     if isinstance(parsed[s.reader], str)})


def _read_node(lab: Lab, name: str, wanted: list[RedundantSet],
               client: docker.DockerClient | None) -> NodeView:
    script = node_script(dict.fromkeys(s.reader for s in wanted))
    try:
        said = docker_exec.run(lab.nodes[name], script, check=False,
                               timeout=facts.FACT_TIMEOUT_S, engine=client)
    except docker_exec.ContainerUnavailable as gone:
        return NodeView(gone=gone.state)
    return parse_node_output(said.stdout, wanted)


def zone_script(zone: str, servers: dict[str, str], key_file: str) -> str:
    """One shell script, run in a server's container: each server's SOA, then its zone by a
    transfer signed with the role's key (the secret never leaves the container)."""
    parts = []
    for name, address in sorted(servers.items()):
        ask = f"dig +time=2 +tries=1 @{address}"
        parts.append(f"echo '=== {name} soa'; {ask} +norecurse +noall +answer SOA {zone}; "
                     f"echo '=== {name} axfr'; {ask} -k {key_file} AXFR {zone}")
    return "; ".join(parts) + "; true"


def parse_zone_output(text: str, zone: str) -> ZoneView:
    """The zone script's output as a ZoneView (pure). A server that answered no SOA has serial
    None and no primary; its transfer's records are whatever it sent (none when it failed)."""
    origin = zone.rstrip(".") + "."
    sections: dict[tuple[str, str], list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if match := re.fullmatch(r"=== (\S+) (soa|axfr)", line.strip()):
            current = sections.setdefault((match.group(1), match.group(2)), [])
        elif line.split()[3:4] != ["TSIG"]:     # the transfer's signature, not zone data
            current.append(line)
    view = ZoneView(zone)
    for (server, part), lines in sorted(sections.items()):
        try:
            records = facts.zone_file("\n".join(lines), origin).records
        except facts.FactError:
            records = []
        if part == "soa":
            soa = next((value.split() for name, rtype, value in records
                        if rtype == "SOA" and name == origin), None)
            view.serials[server] = int(soa[2]) if soa and soa[2].isdigit() else None
            if soa:
                view.primaries[server] = soa[0]
        else:
            view.records[server] = frozenset(r for r in records if r[1] != "SOA")
    return view


def _read_zone(lab: Lab, check: ZoneCheck, servers: list[str],
               client: docker.DockerClient | None) -> ZoneView:
    """The zone as every running server serves it, read from inside the first running one
    (empty when none runs)."""
    addresses = {n: lab.nodes[n].addresses[check.network] for n in servers
                 if check.network in lab.nodes[n].addresses}
    script = zone_script(lab.zone, addresses, check.key_file)
    for name in sorted(addresses):
        try:
            said = docker_exec.run(lab.nodes[name], script, check=False,
                                   timeout=facts.FACT_TIMEOUT_S, engine=client)
        except docker_exec.ContainerUnavailable:
            continue
        view = parse_zone_output(said.stdout, lab.zone)
        running = {n for n in addresses if docker_exec.is_running(lab.nodes[n], client)}
        return ZoneView(view.zone, {n: s for n, s in view.serials.items() if n in running},
                        {n: p for n, p in view.primaries.items() if n in running},
                        {n: r for n, r in view.records.items() if n in running})
    return ZoneView(lab.zone)




def read(lab: Lab, declared: Declared, client: docker.DockerClient | None = None) -> View:
    """Every declared set on every node that runs its role, and every declared zone."""
    wanted = {name: [s for s in declared.sets if s.role in declared.roles_of(node.ansible_role)]
              for name, node in lab.nodes.items()}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        nodes = {name: pool.submit(_read_node, lab, name, sets, client)
                 for name, sets in sorted(wanted.items()) if sets}
        zones = [pool.submit(_read_zone, lab, check, sorted(
            n for n, node in lab.nodes.items() if check.role in declared.roles_of(
                node.ansible_role)), client) for check in declared.zones]
        return View({name: job.result() for name, job in nodes.items()},
                    tuple(job.result() for job in zones))


# --- judging (pure) ------------------------------------------------------------------------------

def serial_less(a: int, b: int) -> bool:
    """a < b in serial number arithmetic (RFC 1982), as a secondary compares serials."""
    return a != b and ((a < b and b - a < SERIAL_HALF) or (a > b and a - b > SERIAL_HALF))


def _plain(name: str) -> str:
    return name.rstrip(".") or "."


def _addresses(records: frozenset[tuple[str, str, str]], name: str) -> set[str]:
    return {value for owner, rtype, value in records if owner == name and rtype in ("A", "AAAA")}


def _primary(view: ZoneView) -> str | None:
    """The server the SOA names as primary, when every answering server names the same one and
    it is one of the servers (its first label is the node's name, as the dns role writes it)."""
    named = set(view.primaries.values())
    if len(named) != 1:
        return None
    node = named.pop().split(".")[0]
    return node if node in view.serials else None


def agreement(view: ZoneView) -> list[Finding]:
    """What the servers of one reading disagree on (pure): the primary their SOA names, their
    serial, and, under the same serial, the records of each name of the primary's zone."""
    zone = _plain(view.zone)
    found = []
    if len(set(view.primaries.values())) > 1:
        said = ", ".join(f"{n} names {_plain(p)}" for n, p in sorted(view.primaries.items()))
        found.append(Finding(DISAGREE, "", zone, f"{zone}: the servers name different "
                             f"primaries ({said}): a zone change on one never reaches the other"))
    primary = _primary(view)
    reference = primary or min(view.serials, default=None)
    if reference is None or view.serials.get(reference) is None:
        return found
    mine = view.serials[reference]
    for server, serial in sorted(view.serials.items()):
        if server == reference:
            continue
        if serial is None:
            found.append(Finding(DISAGREE, server, zone, f"{server} serves no SOA for {zone} "
                                 f"while {reference} serves serial {mine}"))
        elif primary and serial_less(mine, serial):
            found.append(Finding(DISAGREE, server, zone, f"{server} will never transfer "
                                 f"{zone}: serial {mine} < {serial}"))
        elif primary and serial != mine:
            found.append(Finding(DISAGREE, server, zone, f"the zone change did not reach "
                                 f"{server}: it serves serial {serial}, the primary {primary} "
                                 f"serves {mine}"))
        elif serial != mine:
            found.append(Finding(DISAGREE, server, zone, f"{server} serves serial {serial} of "
                                 f"{zone}, {reference} serves {mine}"))
        elif server in view.records and reference in view.records:
            found += _records_differ(view, reference, server)
    return found


def _records_differ(view: ZoneView, reference: str, server: str) -> list[Finding]:
    """Names whose records differ between two servers serving the same serial."""
    theirs, ours = view.records[server], view.records[reference]
    names = sorted({r[0] for r in ours} | {r[0] for r in theirs})
    differ = [n for n in names if {r for r in ours if r[0] == n} != {r for r in theirs
                                                                       if r[0] == n}]
    if not differ:
        return []
    shown = ", ".join(_plain(n) for n in differ[:SHOWN])
    more = f" and {len(differ) - SHOWN} more" if len(differ) > SHOWN else ""
    return [Finding(DISAGREE, server, _plain(view.zone), f"{server} and {reference} serve the "
                    f"same serial {view.serials[server]} with different records for {shown}"
                    f"{more}: one of them never loaded the change")]


def zone_findings(before: ZoneView, after: ZoneView, names: dict[str, str]) -> list[Finding]:
    """What the change did to the zone (pure): disagreements it brought (those of the baseline
    are left out), a serial that went backwards, and names published at fewer addresses.
    `names`: address -> node name, to say which load balancer left."""
    had = {f.message for f in agreement(before)}
    found = [f for f in agreement(after) if f.message not in had]
    zone = _plain(after.zone)
    old = [s for s in before.serials.values() if s is not None]
    primary = _primary(after)
    new = after.serials.get(primary) if primary else None
    if old and new is not None and serial_less(new, max(old)) \
            and not any(serial_less(new, s) for s in after.serials.values() if s is not None):
        found.append(Finding(DISAGREE, primary or "", zone, f"the serial of {zone} went "
                             f"backwards: {new} < {max(old)}; a secondary that kept "
                             f"{max(old)} would never transfer it again"))
    was = before.records.get(_primary(before) or "", frozenset())
    now = after.records.get(primary or "", frozenset())
    for name in sorted({r[0] for r in was}):
        left, kept = _addresses(was, name) - _addresses(now, name), _addresses(now, name)
        if left and kept:
            gone = ", ".join(f"{a} ({names[a]})" if a in names else a for a in sorted(left))
            found.append(Finding(REDUNDANCY_LOST, "", _plain(name), f"{_plain(name)}: {gone} "
                                 "no longer published"))
    return found


def set_findings(declared: Declared, before: View, after: View) -> list[Finding]:
    """Members up before and down or gone after, per node and set (pure). A node whose
    container stopped is one finding: everything it held is gone."""
    found = []
    for name, was in sorted(before.nodes.items()):
        now = after.nodes.get(name, NodeView(gone="missing"))
        if now.gone and not was.gone:
            held = [f"{sum(members.values())} {set_name}" for set_name, members in
                    sorted(was.sets.items()) if any(members.values())]
            found.append(Finding(REDUNDANCY_LOST, name, "node", f"{name} is not running "
                                 f"({now.gone}): gone with it: {', '.join(held) or 'nothing'}"))
            continue
        for set_name, members in sorted(was.sets.items()):
            if set_name in now.unread:
                lost = sorted(m for m, up in members.items() if up)
                if lost:
                    found.append(Finding(REDUNDANCY_LOST, name, set_name,
                                         f"{name}: {set_name} can no longer be read "
                                         f"({now.unread[set_name]}); were up: {', '.join(lost)}"))
                continue
            current = now.sets.get(set_name, {})
            lost = [f"{m} is down" if m in current else f"{m} is gone"
                    for m, up in sorted(members.items()) if up and not current.get(m)]
            if lost:
                found.append(Finding(REDUNDANCY_LOST, name, set_name,
                                     f"{name}: {set_name}: {', '.join(lost)}"))
    return found


def judge(declared: Declared, lab: Lab, before: View, after: View) -> list[Finding]:
    """Everything the change broke that the declarations hold (pure)."""
    names = {address: node.name for node in lab.nodes.values()
             for address in node.addresses.values()}
    found = set_findings(declared, before, after)
    for was, now in zip(before.zones, after.zones):
        found += zone_findings(was, now, names)
    return found


def unread(view: View) -> list[str]:
    """The sets that could not be read, said once each (they cannot be compared)."""
    return [f"{name}: {set_name} could not be read: {why}"
            for name, node in sorted(view.nodes.items()) for set_name, why in node.unread.items()]


def settle(lab: Lab, declared: Declared, before: View, timeout_s: float,
           interval_s: float = 1.0, client: docker.DockerClient | None = None
           ) -> tuple[View, list[Finding]]:
    """Read after the change until nothing is lost or `timeout_s` has passed: health checks
    rise, BGP sessions come back, secondaries transfer within seconds, and what is still lost
    then is real."""
    deadline = time.monotonic() + timeout_s
    while True:
        after = read(lab, declared, client)
        found = judge(declared, lab, before, after)
        if not found or time.monotonic() >= deadline:
            return after, found
        time.sleep(interval_s)
