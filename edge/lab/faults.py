"""Faults: real, reversible damage to a running lab stack, to watch what the contract says.

The 2011 outage was an edge taken down by hand. A fault does one such thing to one node of a
stack — stop or kill or pause its container, cut it off a network, slow its link, take the
controller's storage away, flush the firewall, withdraw the service prefix, break a zone — and
records what `undo` needs to put it back exactly. Faults act through the Docker engine and inside
the containers (exec), never by sending traffic from this machine to lab addresses.

Active faults of a stack live in `<state>/stacks/<stack>/faults.json` (edge/model/state.py), so one
process injects and another (a later `edge fault clear`, a test's teardown) undoes. A fault is
recorded before it is injected (`injecting`, then `active` with what undoing it needs), so a
process killed halfway never leaves damage no record knows about.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from edge import ROOT
from edge.engines import docker_exec, facts
from edge.lab import paths
from edge.model.lab import Lab, Node
from edge.model.scope import role_defaults
from edge.model.state import ACTIVE, INJECTING, FaultRecord, StackState

AGENT = (Path(__file__).parent / "netem_agent.py").read_text()


NFT = role_defaults(ROOT / "roles", "nftables")   # nftables_table, nftables_file: what it loads
PAAS_DB = role_defaults(ROOT / "roles", "paas")["paas_db"]
DNS = role_defaults(ROOT / "roles", "dns")        # dns_named_conf, dns_program
ASIDE = ".edge-fault"                   # suffix of what a fault moved aside, next to the original
STORAGE_MODES = ("gone", "readonly")
# SQLite treats a database whose header says "write format version" > 2 as read-only (reads work,
# writes fail with "attempt to write a readonly database", as on a read-only mount, which would
# need CAP_SYS_ADMIN). Byte 18 of the file holds that version; the controller opens a connection
# per request, so the next request sees the change. argv: DB VERSION; prints the previous one.
# Making it read-only holds an exclusive lock so no commit can write the old header back;
# undoing needs no lock: nobody can write a read-only database.
WRITE_VERSION = """
import os, sqlite3, sys
path, version = sys.argv[1], int(sys.argv[2])
if not os.path.isfile(path):
    sys.exit(f"no database at {path}: is a storage fault already active? (edge fault list)")
conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=5)
if version > 2:
    conn.execute("BEGIN EXCLUSIVE")
with open(path, "r+b") as db:
    old = db.read(19)[18]
    if version > 2 and old > 2:
        sys.exit(f"{path} is read-only already: is a storage fault already active?")
    db.seek(18)
    db.write(bytes([version]))
print(old)
"""


class FaultError(RuntimeError):
    """A fault that cannot be injected or undone; the message says what is wrong and what to do."""


# One fault: what was done to which node, and what undoing it needs (its record, edge/model/state.py).
Fault = FaultRecord


# --- the faults: each kind injects (returning its restore data) and undoes ----------------------


@contextmanager
def _as_fault(hint: str = "") -> Iterator[None]:
    """A failed command, an unreadable output or an impossible shift as a FaultError (which the
    CLI prints as one message), followed by `hint`: what to check."""
    try:
        yield
    except (docker_exec.ExecError, facts.FactError, paths.PathError) as err:
        raise FaultError(f"{err}" + (f". {hint}" if hint else "")) from None


def _sh(container, command: str, what: str, hint: str = "") -> str:
    """Run a shell command in the node; its output, or FaultError saying what failed."""
    with _as_fault(hint):
        return docker_exec.run(container, command, what=what).stdout.strip()


NO_DEFAULT_ROUTE = "ip route del default 2>/dev/null || true"


def _restore_routes(container) -> None:
    """Put back the routes edge-init installs at start (EDGE_ROUTES), without Docker's default
    route: a network (re)connected to a running container brings a default route through the
    host's bridge address, which no lab node may have."""
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"] if "=" in e)
    routes = [r.strip() for r in env.get("EDGE_ROUTES", "").split(";") if r.strip()]
    _sh(container, " && ".join([NO_DEFAULT_ROUTE] + [f"ip route replace {r}" for r in routes]),
        "restoring routes")


def _stop(container, node: Node, lab: Lab, options: dict) -> dict:
    container.stop()
    return {}


def _kill(container, node: Node, lab: Lab, options: dict) -> dict:
    container.kill()   # SIGKILL; an explicit kill is not restarted by the restart policy
    return {}


def _start(container, fault: Fault, lab: Lab) -> None:
    """Start the node again (edge-init installs the routes, supervisord the daemons and
    rulesets). An injection whose process was killed may have left the engine stopping it (a
    stop runs on after its caller is gone, for up to its timeout): a container still running
    then is restarted, which waits for that stop, so it cannot exit after the undo."""
    container.reload()
    if container.status == "running" and fault.status == INJECTING:
        container.restart()
    else:
        container.start()


def _pause(container, node: Node, lab: Lab, options: dict) -> dict:
    container.pause()
    return {}


def _unpause(container, fault: Fault, lab: Lab) -> None:
    container.reload()
    if container.status == "paused":
        container.unpause()


def _disconnect(container, node: Node, lab: Lab, options: dict) -> dict:
    network = lab.networks[options["network"]].docker_name
    if network not in container.attrs["NetworkSettings"]["Networks"]:
        raise FaultError(f"{node.name} is not connected to {options['network']} now: is a "
                         "disconnect fault already active? (edge fault list)")
    container.client.networks.get(network).disconnect(container)
    # Docker gives the container a default route through the host's bridge on another network.
    _sh(container, NO_DEFAULT_ROUTE, "removing Docker's default route")
    return {"docker_network": network, "address": node.addresses[options["network"]]}


def _reconnect(container, fault: Fault, lab: Lab) -> None:
    if fault.restore["docker_network"] not in container.attrs["NetworkSettings"]["Networks"]:
        container.client.networks.get(fault.restore["docker_network"]).connect(
            container, ipv4_address=fault.restore["address"], aliases=[fault.target])
        container.reload()
    _restore_routes(container)


def _netem(container, node: Node, lab: Lab, options: dict) -> dict:
    address = node.addresses[options["network"]]
    with _as_fault():
        iface = facts.interface_with(facts.IP_ADDR.gather(container), address)
    if iface is None:
        raise FaultError(f"{node.container} has no interface with {address} now: is a "
                         "disconnect fault active on it? (edge fault list)")
    tap = f"fault-{iface}"[:15]
    with _as_fault("Is another netem fault active on it? (edge fault list)"):
        said = docker_exec.python(
            container, AGENT, iface, tap, str(options.get("delay_ms", 0)),
            str(options.get("loss_pct", 0)), str(_bits_per_s(options.get("rate", "0"))),
            what=f"shaping {iface}").stdout
    return {"interface": iface, "tap": tap, "pid": int(said.split()[-1])}


def _unnetem(container, fault: Fault, lab: Lab) -> None:
    r = fault.restore
    # The clsact qdisc first, so no frame is redirected to a TAP that is going away; the pid is
    # killed only if it is still the agent (a restarted container reuses pids).
    _sh(container, f"tc qdisc del dev {r['interface']} clsact 2>/dev/null; "
                   f"grep -qa {r['tap']} /proc/{r['pid']}/cmdline 2>/dev/null "
                   f"&& kill {r['pid']}; true", "removing the netem redirect")


def _bits_per_s(rate: str) -> float:
    """tc's rate syntax (e.g. 1mbit, 500kbit, 2gbit, 64000bit) in bits per second."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)(bit|bps)?", str(rate).strip().lower())
    if not match:
        raise FaultError(f"netem rate '{rate}' is not a rate: write e.g. 1mbit, 500kbit, 2gbit.")
    number, prefix, unit = match.groups()
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[prefix] * (8 if unit == "bps" else 1)
    return float(number) * scale


def _storage(container, node: Node, lab: Lab, options: dict) -> dict:
    if options["mode"] == "gone":   # the file vanishes from the volume, as in 2011
        _sh(container, f"test -f {PAAS_DB} && test ! -e {PAAS_DB}{ASIDE} && "
                       f"mv {PAAS_DB} {PAAS_DB}{ASIDE}", f"moving {PAAS_DB} aside",
            "Is a storage fault already active? (edge fault list)")
        return {"db": PAAS_DB}
    old = _python(container, WRITE_VERSION, PAAS_DB, "3")
    return {"db": PAAS_DB, "write_version": int(old)}


def _unstorage(container, fault: Fault, lab: Lab) -> None:
    db = fault.restore["db"]
    if fault.options["mode"] == "gone":   # over an empty database a converge may have made
        _sh(container, f"test ! -e {db}{ASIDE} || mv {db}{ASIDE} {db}", f"putting {db} back")
    else:
        _python(container, WRITE_VERSION, db, str(fault.restore["write_version"]))


def _python(container, program: str, *args: str) -> str:
    """Run a Python program in the node; what it printed, or FaultError with what it said."""
    with _as_fault():
        return docker_exec.python(container, program, *args).stdout.strip()


def _flush(container, node: Node, lab: Lab, options: dict) -> dict:
    # The role's table, not `nft flush ruleset`: that would also wipe the table Docker keeps in
    # the container for its DNS (iptables-nft rules nft cannot list back), so it could not be
    # undone. Without the table nothing filters: the firewall forwards and accepts everything.
    table = f"inet {NFT['nftables_table']}"
    _sh(container, f"nft list table {table} >/dev/null && nft delete table {table}",
        f"deleting table {table}", "Is a flush-firewall fault already active? (edge fault list)")
    return {"file": NFT["nftables_file"]}


def _reload_ruleset(container, fault: Fault, lab: Lab) -> None:
    _sh(container, f"nft -f {fault.restore['file']}", "reloading the ruleset")


# The keystrokes of an operator at work on a live node (the 2011 replay done by hand): the
# ruleset's rules flushed with the table left in place (its chains' drop policies then drop
# everything), a role's daemon stopped through supervisord, one of the node's routes deleted.
def _flush_table(container, node: Node, lab: Lab, options: dict) -> dict:
    table = f"inet {NFT['nftables_table']}"
    _sh(container, f"nft list table {table} >/dev/null && nft flush table {table}",
        f"flushing table {table}", "Is a flush fault already active? (edge fault list)")
    return {"file": NFT["nftables_file"]}


# The daemon an operator stops on a node of each role: the one its service depends on.
DAEMONS = {"loadbalancer": "haproxy", "dns": DNS["dns_program"], "resolver": "unbound"}


def _stop_daemon(container, node: Node, lab: Lab, options: dict) -> dict:
    program = DAEMONS[node.role]
    with _as_fault():
        state = facts.SUPERVISOR_STATUS.gather(container).get(program)
    if state is None or state.state != "RUNNING":
        raise FaultError(f"{node.container}: {program} is "
                         f"{state.state if state else 'not supervised'}, not RUNNING: is a "
                         "stop-daemon fault already active? (edge fault list)")
    _sh(container, f"supervisorctl stop {program}", f"stopping {program}")
    return {"program": program}


def _start_daemon(container, fault: Fault, lab: Lab) -> None:
    _sh(container, f"supervisorctl start {fault.restore['program']}",
        f"starting {fault.restore['program']}")


def _delete_route(container, node: Node, lab: Lab, options: dict) -> dict:
    if not node.routes:
        raise FaultError(f"{node.name} has no route of the topology to delete: pick a node "
                         f"that has some ({', '.join(n for n, d in lab.nodes.items() if d.routes)})"
                         ".")
    route = node.routes[0]
    _sh(container, f"ip route del {route}", f"deleting route {route}",
        "Is a delete-route fault already active? (edge fault list)")
    return {"route": route}


def _replace_route(container, fault: Fault, lab: Lab) -> None:
    _sh(container, f"ip route replace {fault.restore['route']}",
        f"putting route {fault.restore['route']} back")


def _bgp(container, asn: int, prefixes: list[str], withdraw: bool) -> None:
    args = ["configure terminal", f"router bgp {asn}", "address-family ipv4 unicast",
            *(f"{'no ' if withdraw else ''}network {p}" for p in prefixes)]
    _sh(container, "vtysh " + " ".join(f"-c {shlex.quote(a)}" for a in args),
        "withdrawing the prefix" if withdraw else "announcing the prefix again")


def _withdraw(container, node: Node, lab: Lab, options: dict) -> dict:
    with _as_fault():
        frr = facts.FRR_RUNNING_CONFIG.gather(container)
    if frr.asn is None or not frr.networks:
        raise FaultError(f"{node.container} announces no prefix over BGP: is a withdraw-prefix "
                         "fault already active? (edge fault list)")
    _bgp(container, frr.asn, frr.networks, withdraw=True)
    return {"asn": frr.asn, "prefixes": frr.networks}


def _announce(container, fault: Fault, lab: Lab) -> None:
    _bgp(container, fault.restore["asn"], fault.restore["prefixes"], withdraw=False)


def _break_zone(container, node: Node, lab: Lab, options: dict) -> dict:
    zone = lab.zone
    conf = _sh(container, f"cat {DNS['dns_named_conf']}", "reading named's configuration")
    block = re.search(rf'zone "{re.escape(zone)}" \{{(.*?)\n\}};', conf, re.S)
    if not block or not (path := re.search(r'\bfile "([^"]+)"', block.group(1))):
        raise FaultError(f"{node.container} serves no zone {zone}: converge the stack first.")
    if re.search(r"\btype (secondary|slave);", block.group(1)):
        primary = re.search(r"\b(?:primaries|masters) \{\s*([\d.]+)", block.group(1))
        holder = next((n for n, d in lab.nodes.items() if primary and
                       primary.group(1) in d.addresses.values()), "the primary")
        raise FaultError(f"break-zone needs the name server holding the zone file: {node.name} "
                         f"is a secondary and would transfer a fresh copy from {holder} at once. "
                         f"Break the zone on {holder}, or stop {node.name}.")
    file = path.group(1)
    # A reload keeps serving the old zone when the new file is broken; a restart loads nothing.
    _sh(container, f"test ! -e {file}{ASIDE} && cp -p {file} {file}{ASIDE} && "
                   f"echo 'this is not a zone file (edge fault break-zone)' > {file} && "
                   f"supervisorctl restart {DNS['dns_program']}", f"breaking {file}",
        "Is a break-zone fault already active? (edge fault list)")
    return {"file": file, "zone": zone}


def _repair_zone(container, fault: Fault, lab: Lab) -> None:
    file = fault.restore["file"]
    _sh(container, f"test ! -e {file}{ASIDE} || mv {file}{ASIDE} {file}; "
                   f"rndc reload {fault.restore['zone']}", f"restoring {file}")


def _shift(container, node: Node, lab: Lab, options: dict) -> dict:
    with _as_fault():
        paths.shift(lab, node.name)  # every route through a sibling router, through this one
    return {}


def _unshift(container, fault: Fault, lab: Lab) -> None:
    with _as_fault():
        paths.restore(lab)


@dataclass(frozen=True)
class Kind:
    """How to inject and undo one kind of fault, and what it may be asked for."""

    inject: Callable[[Any, Node, Lab, dict], dict]    # (container, node, lab, options)
    undo: Callable[[Any, Fault, Lab], None]            # (container, fault, lab)
    roles: frozenset[str] | None = None                # the roles it applies to (None: any)
    options: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()


NET = frozenset({"network"})
KINDS: dict[str, Kind] = {
    "stop": Kind(_stop, _start),
    "kill": Kind(_kill, _start),
    "pause": Kind(_pause, _unpause),
    "disconnect": Kind(_disconnect, _reconnect, options=NET, required=NET),
    "netem": Kind(_netem, _unnetem, options=NET | {"delay_ms", "loss_pct", "rate"}, required=NET),
    "storage": Kind(_storage, _unstorage, frozenset({"controller"}), frozenset({"mode"}),
                    frozenset({"mode"})),
    "flush-firewall": Kind(_flush, _reload_ruleset, frozenset({"firewall", "border"})),
    "withdraw-prefix": Kind(_withdraw, _announce, frozenset({"firewall"})),
    "break-zone": Kind(_break_zone, _repair_zone, frozenset({"dns"})),
    "flush-table": Kind(_flush_table, _reload_ruleset, frozenset({"firewall", "border"})),
    "stop-daemon": Kind(_stop_daemon, _start_daemon, frozenset(DAEMONS)),
    "delete-route": Kind(_delete_route, _replace_route),
    # The traffic shift of the AWS 2011 replay: outside traffic onto this (slow) border path.
    "shift": Kind(_shift, _unshift, frozenset({"border"})),
}


# --- checking the request, before anything changes --------------------------------------------

def _checked(kind: str, target: str, lab: Lab, options: dict) -> tuple[Node, dict]:
    """The target node and the options, or FaultError naming what is wrong and the fix."""
    if kind not in KINDS:
        raise FaultError(f"unknown fault kind '{kind}'. Use one of: {', '.join(KINDS)}.")
    if target not in lab.nodes:
        raise FaultError(f"no node '{target}' in stack '{lab.stack}'. Use one of: "
                         f"{', '.join(sorted(lab.nodes))}.")
    node = lab.nodes[target]
    roles, allowed, required = KINDS[kind].roles, KINDS[kind].options, KINDS[kind].required
    if roles is not None and node.role not in roles:
        fits = ", ".join(sorted(n for n, d in lab.nodes.items() if d.role in roles)) or "none"
        raise FaultError(f"{kind} does not apply to {target} (role {node.role}): it applies to "
                         f"nodes of role {' or '.join(sorted(roles))}: {fits}.")
    options = {k: v for k, v in options.items() if v is not None}
    if unknown := sorted(set(options) - allowed):
        raise FaultError(f"{kind} takes no option {', '.join(unknown)}"
                         + (f"; its options: {', '.join(sorted(allowed))}." if allowed else "."))
    networks = ", ".join(sorted(node.addresses))
    if missing := sorted(required - set(options)):
        raise FaultError(f"{kind} needs option {', '.join(missing)}"
                         + (f": one of {target}'s networks ({networks})." if "network" in missing
                            else f": one of {', '.join(STORAGE_MODES)}."))
    if "network" in options and options["network"] not in node.addresses:
        raise FaultError(f"{target} is not on network '{options['network']}': it is on "
                         f"{networks}.")
    if kind == "storage" and options["mode"] not in STORAGE_MODES:
        raise FaultError(f"storage mode '{options['mode']}' is unknown: use gone (the database "
                         "file vanishes) or readonly (reads work, writes fail).")
    if kind == "netem":
        options = _netem_options(options)
    return node, options


def _netem_options(options: dict) -> dict:
    checked = dict(options)
    for key, high in (("delay_ms", 60_000.0), ("loss_pct", 100.0)):
        if key in options:
            try:
                checked[key] = float(options[key])
            except (TypeError, ValueError):
                checked[key] = -1.0
            if not 0 <= checked[key] <= high:
                raise FaultError(f"netem {key} must be a number from 0 to {high:g}, "
                                 f"not {options[key]!r}.")
    if "rate" in options:
        _bits_per_s(options["rate"])
    if not {"delay_ms", "loss_pct", "rate"} & set(options):
        raise FaultError("netem needs at least one of delay_ms, loss_pct, rate "
                         "(e.g. delay_ms=200, loss_pct=10, rate=1mbit).")
    return checked


def _container(node: Node):
    try:
        return docker_exec.container(node.container_id, docker_exec.client(node.endpoint))
    except docker_exec.ContainerUnavailable:
        raise FaultError(f"container {node.container} of {node.name} is gone: "
                         "bring the stack up again (edge up).") from None


# --- the API -----------------------------------------------------------------------------------

def inject(kind: str, target: str, lab: Lab, options: dict | None = None,
           state_dir: Path | None = None) -> Fault:
    """Do fault `kind` to node `target` of the stack `lab`; returns the Fault
    to later `undo`. Bad input raises FaultError and changes nothing. With `state_dir` the fault
    is recorded there before anything changes (`injecting`), then marked `active` with its
    restore data; a failed injection (its kind's checks refused) forgets the record again."""
    node, options = _checked(kind, target, lab, dict(options or {}))
    container = _container(node)
    if container.status != "running":
        raise FaultError(f"{target} is {container.status}, not running: a fault may be active on "
                         "it already (edge fault list), or start it (edge fault clear / edge up).")
    if state_dir is None:
        return Fault(kind, target, options, KINDS[kind].inject(container, node, lab, options))
    store = StackState(state_dir)
    pending = store.add_fault(Fault(kind, target, options, status=INJECTING))
    try:
        restore = KINDS[kind].inject(container, node, lab, options)
    except Exception:
        store.forget_fault(pending)
        raise
    fault = replace(pending, restore=restore, status=ACTIVE)
    store.replace_fault(pending, fault)
    return fault


def undo(fault: Fault, lab: Lab) -> None:
    """Put back what `inject` changed; safe to repeat."""
    if fault.target not in lab.nodes:
        raise FaultError(f"cannot undo {fault}: stack '{lab.stack}' has no node "
                         f"{fault.target} any more. Forget it by removing it from faults.json.")
    try:
        KINDS[fault.kind].undo(_container(lab.nodes[fault.target]), fault, lab)
    except KeyError as missing:
        if fault.status != INJECTING:
            raise
        raise FaultError(f"cannot undo {fault}: it never became active, so what undoing it needs "
                         f"({missing}) was not recorded. If that process is gone, bring "
                         f"{fault.target} back (`edge up --stack {lab.stack}`), then "
                         "forget the fault by removing it from faults.json.") from None


def active(state_dir: Path) -> list[Fault]:
    """The stack's recorded faults, oldest first (with any still `injecting`)."""
    return StackState(state_dir).faults()


def clear(state_dir: Path, lab: Lab) -> list[Fault]:
    """Undo every recorded fault, newest first, and forget each once undone; returns them. If an
    undo fails, its error is raised and the faults not yet undone stay recorded."""
    store = StackState(state_dir)
    remaining = store.faults()
    undone = []
    while remaining:
        undo(remaining[-1], lab)
        store.forget_fault(remaining[-1])
        undone.append(remaining.pop())
    return undone
