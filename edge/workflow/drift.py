"""`edge drift`: what differs between every live node and the revision recorded for its stack,
and `edge drift --revert`: bring exactly the drifted nodes back.

In 2011 an operator's keystrokes on live nodes took the edge down; nothing said which node ran
what it should not. Three readings, all read-only, together say it:

1. Configuration files: the recorded revision's playbook in check+diff mode
   (`rollout.configuration(check=True)`): every file a converge would rewrite, as a diff.
2. Running state: check mode skips the tasks that compare what a daemon runs with its files (they
   would change something), so the same comparisons are read here, from the records those tasks
   keep on each node: the nftables table as listed right after its last load, each FRR daemon's
   running configuration right after its last apply, the description of the HAProxy
   configuration file against the one HAProxy reports loaded, the primary's zone serial against
   the one named serves; plus every supervised program that is stopped or failed, and every route
   of the topology that is missing.
3. Infrastructure: `pulumi preview --refresh` of the stack: containers stopped or removed,
   networks and volumes gone.

The revert goes the way a rollback goes: under the stack's writer lock, Pulumi brings back what
the refresh found (the revision's topology), the topology's routes are put back where they went
missing, and `rollout.transition` from the recorded revision to itself converges exactly the
drifted hosts; then the contract is verified and the whole of it is a line of the audit log.
"""

from __future__ import annotations

import difflib
import json
import shlex
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from edge import ROOT
from edge.engines import docker_exec, facts, stack
from edge.engines.configure import ConvergeResult
from edge.lab.probes import Result, settle
from edge.model.contract import Contract, expand
from edge.model.lab import Lab
from edge.model.revision import Revision, load_live
from edge.model.scope import role_defaults
from edge.model.state import AuditEvent, StackState, stack_lock
from edge.workflow import rollout
from edge.workflow.up import SETTLE_S, node_states

NFT = role_defaults(ROOT / "roles", "nftables")
FRR = role_defaults(ROOT / "roles", "frr")
LB = role_defaults(ROOT / "roles", "loadbalancer")
DNS = role_defaults(ROOT / "roles", "dns")
# supervisord states of a program that should run and does not (EXITED is a finished one-shot).
NOT_RUNNING = frozenset({"STOPPED", "STOPPING", "FATAL", "BACKOFF", "ERROR", "UNKNOWN"})


def _running_script() -> str:
    """The read-only script that prints, per piece of running state a role records, what it
    should be (`@@ want NAME`) and what it is (`@@ live NAME`), then the supervised programs
    and the routes. $1 is the lab's zone. Each role's part runs only where its record is."""
    q = shlex.quote
    table = f"inet {NFT['nftables_table']}"
    return f"""
rec={q(NFT['nftables_loaded_record'])}
if [ -f "$rec" ]; then
  echo '@@ want nftables table {table}'; tail -n +2 "$rec"
  echo '@@ live nftables table {table}'; nft -s list table {table} 2>&1
fi
rec={q(FRR['frr_applied_record'])}
if [ -f "$rec" ]; then
  echo '@@ want FRR running configuration'; cat "$rec"
  echo '@@ live FRR running configuration'
  echo "sha256 $(sha256sum < {q(FRR['frr_config'])} | cut -d' ' -f1)"
  for d in $(sed -n 's/^== //p' "$rec"); do
    echo "== $d"; vtysh -d "$d" -c 'show running-config' 2>&1 | sed '1,/^Current configuration:/d'
  done
fi
if [ -f {q(LB['loadbalancer_config'])} ]; then
  echo '@@ want HAProxy loaded configuration'
  sed -n 's/^ *description //p' {q(LB['loadbalancer_config'])}
  echo '@@ live HAProxy loaded configuration'
  echo 'show info' | nc -NU {q(LB['loadbalancer_admin_socket'])} 2>/dev/null \\
    | sed -n 's/^description: //p'
fi
zone={q(DNS['dns_primary_zone_dir'])}/db.$1
if [ -f "$zone" ]; then
  echo '@@ want named zone serial'
  named-checkzone "$1" "$zone" 2>&1 | sed -n 's/.* loaded serial \\([0-9]*\\).*/\\1/p'
  echo '@@ live named zone serial'
  dig +short +norecurse +time=1 +tries=1 SOA "$1" @{DNS['dns_control_address']} | awk '{{print $3}}'
fi
echo '@@ programs'; supervisorctl status 2>/dev/null
echo '@@ routes'; ip route
"""


RUNNING_SCRIPT = _running_script()


@dataclass(frozen=True)
class Drift:
    """One thing on one node that is not what the recorded revision makes it: `what` names it
    (a file, a daemon, a route, the container), `diff` shows it (from live to the revision:
    what a revert does)."""

    node: str
    what: str
    diff: str = ""

    def __str__(self) -> str:
        return f"{self.node}: {self.what}"


@dataclass
class DriftReport:
    """Everything `edge drift` found on a stack, against the revision it runs."""

    stack: str
    revision: str = ""
    drifts: list[Drift] = field(default_factory=list)
    infra: list[str] = field(default_factory=list)     # pulumi steps after a refresh
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def nodes(self) -> list[str]:
        """The drifted nodes, by name."""
        return sorted({d.node for d in self.drifts})

    @property
    def exit_code(self) -> int:
        """0 no drift, 1 drift, 2 the comparison could not be made."""
        return 2 if self.errors else 1 if self.drifts or self.infra else 0

    def render(self) -> str:
        """What differs, node by node, each thing with its diff; then the infrastructure."""
        lines: list[str] = []
        for node in self.nodes:
            lines.append(f"== {node}")
            for drift in (d for d in self.drifts if d.node == node):
                lines.append(f"  {drift.what}")
                lines += [f"    {line}" for line in drift.diff.splitlines()]
        if self.infra:
            lines.append("== infrastructure (pulumi preview --refresh)")
            lines += [f"  {step}" for step in self.infra]
        lines += [f"error: {e}" for e in self.errors]
        verdict = ("could not compare" if self.errors else
                   f"DRIFT on {', '.join(self.nodes) or 'the infrastructure'}"
                   if self.exit_code else "no drift")
        lines.append(f"stack '{self.stack}' against revision {self.revision or '?'}: {verdict} "
                     f"({len(self.drifts)} differences, {self.seconds:.1f}s)")
        return "\n".join(lines)


def unified(live: str, want: str, name: str) -> str:
    """A diff from what runs to what the revision makes it (pure)."""
    return "\n".join(line.rstrip("\n") for line in difflib.unified_diff(
        live.splitlines(), want.splitlines(),
        f"{name} (live)", f"{name} (revision)", n=1)).rstrip("\n")


def sections(text: str) -> dict[str, str]:
    """RUNNING_SCRIPT's output by section (`@@ NAME` lines), each section's text (pure)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@ "):
            current = found.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in found.items()}


def recorded_vs_live(node: str, parts: dict[str, str], down: Collection[str]) -> list[Drift]:
    """Each `want NAME` section whose `live NAME` differs, and each supervised program (the
    `programs` section, `supervisorctl status`) in a state of `down` (pure): what drift and the
    half-configured check (workflow/daemons.py) both read from a node's script output."""
    drifts = [Drift(node, name, unified(parts.get(f"live {name}", ""), parts[f"want {name}"],
                                        name))
              for name in sorted(n[len("want "):] for n in parts if n.startswith("want "))
              if parts[f"want {name}"] != parts.get(f"live {name}", "")]
    try:
        programs = facts.supervisor_status(parts.get("programs", ""))
    except facts.FactError as err:
        return drifts + [Drift(node, "supervised programs unreadable", str(err))]
    return drifts + [Drift(node, f"program {name} {p.state}",
                           f"-{name} {p.state} {p.detail}".rstrip() + f"\n+{name} RUNNING")
                     for name, p in sorted(programs.items()) if p.state in down]


def running_drifts(node: str, text: str, routes: tuple[str, ...]) -> list[Drift]:
    """What runs on `node` unlike its records, from RUNNING_SCRIPT's output, and which of the
    topology's `routes` it lacks (pure)."""
    parts = sections(text)
    drifts = recorded_vs_live(node, parts, NOT_RUNNING)
    present = {" ".join(line.split()) for line in parts.get("routes", "").splitlines()}
    drifts += [Drift(node, f"route {route} missing", f"+{route}") for route in routes
               if not any(line == route or line.startswith(route + " ") for line in present)]
    return drifts


def file_drifts(result: ConvergeResult, said: list[str]) -> list[Drift]:
    """Check mode's differences: each diff a task showed, and each task it counted as changed
    without a diff (from its progress lines, `  host: task: changed`) (pure)."""
    drifts = []
    shown: set[tuple[str, str]] = set()
    for host, diffs in sorted(result.diffs.items()):
        for d in diffs:
            shown.add((host, d.get("task", "")))
            path = d.get("before_header") or d.get("after_header") or d.get("task", "")
            if isinstance(d.get("before"), str) and isinstance(d.get("after"), str):
                body = unified(d["before"], d["after"], path)
            else:
                body = str(d.get("prepared") or "")
            drifts.append(Drift(host, f"file {path}" if path.startswith("/") else path, body))
    for line in said:
        host, _, rest = line.strip().partition(": ")
        task, _, word = rest.rpartition(": ")
        if word == "changed" and (host, task) not in shown:
            drifts.append(Drift(host, f"task would change: {task}"))
    return drifts


def _infra(stack_name: str, backend: stack.Backend) -> list[str]:
    """`pulumi preview --refresh` of the stack: what Pulumi would do to bring back what it
    records (a container stopped or removed by hand, a network or volume gone)."""
    out = stack.pulumi(["preview", "--refresh", "--json", "--stack", stack_name], backend).stdout
    steps = json.loads(out).get("steps") or []
    return [f"{step['op']} {step['urn'].split('::')[-1]}" for step in steps
            if step.get("op") not in ("same", "refresh")]


def _read_running(lab: Lab, node: str) -> list[Drift]:
    said = docker_exec.run(lab.node(node), ["sh", "-c", RUNNING_SCRIPT, "drift",
                                                      lab.zone], check=False,
                           timeout=facts.FACT_TIMEOUT_S, what="reading what runs")
    return running_drifts(node, said.stdout, lab.node(node).routes)


def check(stack_name: str, backend: stack.Backend = stack.Backend()) -> DriftReport:
    """Compare every node of the stack with its recorded revision (read-only; see the module
    docstring)."""
    started = time.monotonic()
    report = DriftReport(stack_name)
    recorded = load_live(backend.state, stack_name)
    if recorded is None:
        report.errors.append(f"stack '{stack_name}' has no recorded revision to compare with: "
                             f"bring it up with `edge up --stack {stack_name}` first")
        return report
    report.revision = recorded.id
    lab = stack.lab(stack_name, backend)
    states = node_states(lab)
    wanted = [n for n in lab.nodes if n not in recorded.stop]
    running = [n for n in wanted if states[n] == "running"]
    report.drifts += [Drift(n, f"container {states[n]}", f"-{states[n]}\n+running")
                      for n in wanted if states[n] != "running"]
    # One reading after the other: on a busy machine, a playbook's connections started while
    # Pulumi and the nodes' reads compete for the CPU time out.
    with ThreadPoolExecutor(max_workers=4) as pool:
        live = [pool.submit(_read_running, lab, n) for n in running]
        for future in live:
            try:
                report.drifts += future.result()
            except docker_exec.ExecError as err:
                report.errors.append(str(err))
    try:
        report.infra = _infra(stack_name, backend)
    except stack.PulumiError as err:
        report.errors.append(str(err))
    said: list[str] = []
    files = rollout.configuration(stack_name, recorded, backend, hosts=running, check=True,
                                  progress=said.append)
    report.errors += files.errors
    report.drifts += file_drifts(files, said)
    report.drifts.sort(key=lambda d: (d.node, d.what))
    report.seconds = round(time.monotonic() - started, 1)
    return report


@dataclass
class RevertResult:
    """What `edge drift --revert` did: the drift it found, the hosts it converged back, and the
    contract measured after it."""

    found: DriftReport
    converge: ConvergeResult | None = None
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failing(self) -> list[str]:
        return [f"{r.flow.name}: {r.reason}" for r in self.results if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.found.errors and (self.converge is None or self.converge.ok) \
            and not self.failing

    @property
    def exit_code(self) -> int:
        """0 reverted (or nothing to revert) and green, 1 not green, 2 could not revert."""
        if self.found.errors or (self.converge is not None and not self.converge.ok):
            return 2
        return 1 if self.failing else 0


def _put_routes_back(lab: Lab, drifts: list[Drift]) -> None:
    """The topology's routes, on the nodes that lack some (no role manages them: edge-init
    installs them when the container starts)."""
    for node in sorted({d.node for d in drifts if d.what.startswith("route ")}):
        docker_exec.run(lab.node(node),
                        " && ".join(f"ip route replace {r}" for r in lab.node(node).routes),
                        what="putting the topology's routes back")


def revert(stack_name: str, contract: Contract, backend: stack.Backend = stack.Backend(),
           hold_lock: bool = True) -> RevertResult:
    """Bring the drifted nodes back to the recorded revision, verify the contract (as `edge
    verify` does, settling as after any converge), and record it in the audit log. `hold_lock`:
    take the stack's writer lock (False only for a caller that holds it already, as `edge
    replay` does)."""
    started = time.monotonic()
    lock = stack_lock(backend.state, stack_name, "edge drift --revert") if hold_lock \
        else nullcontext()
    with lock:
        found = check(stack_name, backend)
        result = RevertResult(found)
        if found.errors or found.exit_code == 0:
            return result
        recorded: Revision = load_live(backend.state, stack_name)   # checked by `check`
        if found.infra or any(d.what.startswith("container ") for d in found.drifts):
            stack.pulumi(["refresh", "--yes", "--skip-preview", "--stack", stack_name], backend)
            rollout.infrastructure(stack_name, recorded, backend)
        lab = stack.lab(stack_name, backend)
        _put_routes_back(lab, found.drifts)
        result.converge = rollout.transition(stack_name, recorded, recorded, backend,
                                             hosts=found.nodes, progress=None)
        result.results = settle(expand(contract, lab), SETTLE_S)
        result.seconds = round(time.monotonic() - started, 1)
        StackState.of(backend.state, stack_name).append_audit(AuditEvent(
            stack_name, "drift-revert", _audit_details(result, recorded)))
    return result


def _audit_details(result: RevertResult, recorded: Revision) -> dict[str, Any]:
    return {"revision": recorded.id, "hosts": result.found.nodes,
            "drift": [str(d) for d in result.found.drifts], "infra": result.found.infra,
            "outcome": "reverted" if result.ok else "failed",
            "converge_errors": result.converge.errors if result.converge else [],
            "failing": result.failing, "seconds": result.seconds}
