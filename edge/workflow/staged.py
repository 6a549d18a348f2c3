"""Staged change previews: try a change on a staged copy of the edge and judge it by the contract.

1. Static: `pulumi preview --diff` (infrastructure) and `ansible-playbook --check --diff`
   (configuration, per host) of the change against the live stack; nothing is written there.
2. Staged: meanwhile the staging stack (same topology, its own slot) is brought to the live
   revision; the contract is measured (baseline); the change is applied to staging on every host
   of its scope (edge/workflow/scope.py), not only where check mode saw a difference: check mode skips
   tasks and runs no `validate:`, so it cannot see everything a converge does; the contract is
   measured again, and the staged firewall's loaded ruleset is read for must-block flows it
   would accept (edge/workflow/policy.py). "Again" lasts a settle window, the longest timer of
   the roles the change touches (edge/model/timers.py: health checks, BGP hold time, a zone's
   refresh, a TTL; those staging can hasten, such as the resolvers' cache, it hastens instead),
   in rounds (edge/workflow/rounds.py): a flow broken in the last round or in any round once the
   change had time to settle counts, so an effect that shows only once a timer ran out is seen,
   and the report says how long it watched and why.
3. Differential: every flow whose verdict changed, classed by what users see. A must-work flow
   that broke at every address is an outage. Broken at some addresses while others still serve:
   a partial outage when those answer errors or refuse (the users whose resolver returned that
   address get errors: clients do not retry another address after a 503), lost redundancy when
   they are silent (timeout, no route: clients move on) or when a name is published at fewer
   addresses than before. A must-block flow that opened is a security regression. Besides the
   flows, what the roles declare (edge/workflow/invariants.py): redundant sets no flow sees (a
   load balancer's backend servers, BGP sessions and prefixes, the resolver's upstream servers,
   supervised programs) and name servers that must agree (serial, records, transfers). A
   must-work flow that still answers but much slower than before (its latency percentiles from
   the rounds, edge/workflow/rounds.slower) is DEGRADED.
4. Verdict: SAFE, UNSAFE (with the reasons; DEGRADED is one unless the change file says
   `accept: [degraded]`, when it is a note of a SAFE verdict), NO-OP (nothing at all changes: no
   Pulumi step, no check-mode difference, no task changed on staging, no flow changed: the gate
   has nothing to apply) or ERROR (the preview itself could not be made).

The live stack is only read (check mode); every write goes to the staging stack. The record of
the preview (edge/workflow/apply.py) keeps what the verdict holds for: the contract's digest, the staging
stack, the scope and the revision pair, so that an apply of anything else is refused.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from edge.engines import docker_exec, stack
from edge.engines.configure import ConvergeResult, Progress, to_stderr
from edge.lab import drift_watch
from edge.lab.diagnose import where_it_dies
from edge.lab.probes import Result, settle
from edge.model import scope, timers
from edge.model.change import Change, inventory_host_vars
from edge.model.contract import Contract, ContractError, Flow, expand, load_contract
from edge.model.lab import Lab
from edge.model.plan import PROJECT
from edge.model.revision import Revision, changed_paths, load_live, materialize
from edge.model.state import StackState, StagingRecord
from edge.workflow import invariants, policy, rollout
from edge.workflow.rounds import (
    MIN_SAMPLES,
    Rounds,
    Slowdown,
    counted,
    settled,
    slower,
    verdicts,
)
from edge.workflow.rounds import measure as measure_rounds

SAFE, UNSAFE, ERROR, NOOP = "SAFE", "UNSAFE", "ERROR", "NO-OP"
# After the change: a moment for daemons to act on it (reloads, route withdrawals); then the
# flows are measured in rounds for the settle window (edge/model/timers.py), and the roles'
# redundant sets read once it has passed, until nothing is lost or AFTER_SETTLE_S more.
AFTER_GRACE_S = 2.0
AFTER_SETTLE_S = 10.0
BASELINE_SETTLE_S = 20.0
# Nodes whose configuration is read at once for the live digest (each a `docker exec`).
DIGEST_READERS = 4


def config_digest(lab: Lab) -> str:
    """One digest over every node's configuration as it is live (read-only), for "the live lab
    is untouched": what `edge watch` reads for drift (edge/lab/drift_watch.py: config files,
    ruleset, routes, supervised programs; a node that is not running counts as its state), every
    node read at the same time (one after the other took 5 s for 13 nodes, four times a preview
    in the tests)."""
    with ThreadPoolExecutor(max_workers=DIGEST_READERS) as pool:
        nodes = drift_watch.read_digests(lab, pool)
    digest = hashlib.sha256()
    for name, node in sorted(nodes.items()):
        digest.update(name.encode() + b"\0" + drift_watch.canonical(node).encode())
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (the contract's): what the gate compares, so that a preview made
    with one contract cannot open the gate for an apply watched by another."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# Outcomes of a node that says nothing: clients time out and move on to another address, so while
# other addresses serve, users are still served (lost redundancy). Any other failure (an error
# status, a refused connection, a wrong answer) reaches the users sent to that address.
SILENT = ("timeout", "unreachable")
# A role's nodes in words, for "1 of 2 load balancer addresses".
ROLE_WORDS = {"loadbalancer": "load balancer", "dns": "name server", "dea": "app node"}
BROKE = ("outage", "partial-outage", "redundancy-lost")
HEADS = {"outage": "OUTAGE", "partial-outage": "PARTIAL OUTAGE",
         "redundancy-lost": "REDUNDANCY LOST", "security-regression": "SECURITY REGRESSION",
         "degraded": "DEGRADED"}
# Delta kinds a change file may accept (`accept:` in edge/model/change.py): reported as notes of
# a SAFE verdict instead of reasons for UNSAFE.
ACCEPTABLE_KINDS = {"degraded": "degraded"}


@dataclass(frozen=True)
class FlowDelta:
    """A flow whose result differs between baseline and after the change."""

    flow: str
    rule: str
    vantage: str
    target: str               # the node the flow is about
    must: str
    kind: str                 # outage, partial-outage, redundancy-lost, security-regression,
                              # fixed, answers-changed
    before: str               # the probe's outcome, e.g. "answered 200" / "timeout"
    after: str
    reason: str
    where: str = ""           # where the flow dies, when the lab can tell
    was: str = ""             # the outcome in words: "answers 200", "answers lb1, lb2"...
    now: str = ""             # ..."answers 503 (no healthy backend)", "publishes only lb1"
    share: str = ""           # of the entry's addresses, how many fail: "1 of 2 load balancer
                              # addresses"
    lost: str = ""            # what a name no longer publishes: "api.paas.test: 198.18.2.11
                              # (lb2)"
    when: str = ""            # broken in some rounds of the window only: "in 3 of 6 rounds,
                              # first 8.1 s after the change"

    def describe(self) -> str:
        """The delta in words, as the verdict's reasons say it."""
        text = f"{self.flow} {self.now or self.after} (before: {self.was or self.before})"
        if self.kind == "partial-outage":
            text += (f"; users sent to {self.share} get errors (clients do not retry another "
                     "address)")
        elif self.kind == "outage":
            text += f"; outside users lose it: {self.share} fail"
        elif self.kind == "redundancy-lost" and self.lost:
            text += f"; {self.lost} no longer published"
        elif self.kind == "redundancy-lost":
            text += f"; {self.share} silent, the others serve"
        elif self.kind == "degraded":
            text += f"; {self.share}"
        text += f" ({self.when})" if self.when else ""
        return text + (f": {self.where}" if self.where else "")


@dataclass
class Preview:
    """Everything a preview found, for the terminal, JSON, JUnit and (later) HTML."""

    change: Change
    live: str
    staging: str
    verdict: str = ERROR
    reasons: list[str] = field(default_factory=list)
    static_diffs: dict[str, int] = field(default_factory=dict)   # host -> files/tasks changed
    infra_steps: list[str] = field(default_factory=list)          # pulumi preview: op resource
    scope: list[str] | None = None      # the hosts the change can touch (None: every host)
    policy: list[str] = field(default_factory=list)   # must-block flows the firewall would accept
    live_revision: str = ""
    target_revision: str = ""           # the revision the live stack runs once it is applied
    target_tree: str = ""               # its desired-state tree (Git), what an apply converges
    contract: str = ""                  # the contract file the flows come from...
    contract_digest: str = ""           # ...and the sha256 of its bytes
    staged_changed: int | None = None   # tasks the change changed on staging (None: not staged)
    live_digest: str = ""               # the live configuration before the preview...
    live_digest_after: str = ""         # ...and after it: equal, or the verdict is ERROR
    topology: Lab | None = None         # the staging stack as it stood, for drawing
    deltas: list[FlowDelta] = field(default_factory=list)
    # What the roles declare and no flow asks (edge/workflow/invariants.py): what the change
    # broke, and the sets that could not be read on staging (not compared).
    invariants: list[invariants.Finding] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    baseline: list[Result] = field(default_factory=list)
    after: list[Result] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    # How long the "after" measurement watched and why (edge/model/timers.py), in how many
    # rounds; each must-work flow's latency percentiles before and after, from the rounds.
    window: timers.Window | None = None
    watched_s: float = 0.0
    rounds: int = 0
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)    # what the change accepted (`accept:`)

    def watched(self) -> str:
        """"watched 6.2 s after the change in 5 probe rounds: haproxy fall 3 × inter 2 s on lb1"
        ("" before the change was measured)."""
        if self.window is None or not self.rounds:
            return ""
        return (f"watched {self.watched_s + AFTER_GRACE_S:.1f} s after the change in "
                f"{self.rounds} probe rounds: {self.window.words()}")

    @property
    def exit_code(self) -> int:
        return {SAFE: 0, NOOP: 0, UNSAFE: 1}.get(self.verdict, 2)

    @property
    def noop(self) -> bool:
        """Nothing at all changes: no Pulumi step, no check-mode difference, no task changed
        when the change was converged on staging, no flow changed, no policy finding."""
        return (not self.infra_steps and not any(self.static_diffs.values())
                and self.staged_changed == 0 and not self.deltas and not self.policy
                and not self.invariants)


def _outcome(result: Result) -> str:
    status = result.detail.get("status")
    return f"{result.outcome} {status}" if status else result.outcome


def address_names(lab: Lab | None) -> dict[str, str]:
    """address -> the node holding it, to name load balancers rather than addresses."""
    return {address: node.name for node in (lab.nodes.values() if lab else ())
            for address in node.addresses.values()}


def said(result: Result, names: dict[str, str] | None = None) -> str:
    """What a probe found, in words: "answers 200", "answers 503 (no healthy backend)",
    "answers lb1, lb2", "refuses connections", "is silent (timeout)"."""
    detail, names = result.detail, names or {}
    if result.outcome == "answered" and "status" in detail:
        # A load balancer's own error page carries no X-Edge-Server: no backend answered.
        own = detail["status"] >= 500 and not detail.get("server")
        return f"answers {detail['status']}" + (" (no healthy backend)" if own else "")
    if result.outcome == "answered":
        if detail.get("rcode", "NOERROR") != "NOERROR":
            return f"answers {detail['rcode']}"
        if "bytes" in detail:       # a big answer (`transport: fallback`): counted, not listed
            return (f"answers {detail.get('records', 0)} records in {detail['bytes']} bytes"
                    + (" over TCP after a truncated UDP answer" if detail.get("truncated")
                       else ""))
        answers = [names.get(a, a) for a in detail.get("answers") or []]
        return "answers " + (", ".join(answers) or "no address")
    return {"timeout": "is silent (timeout)", "unreachable": "has no route",
            "refused": "refuses connections", "open": "accepts connections"}.get(
        result.outcome, f"fails ({detail.get('error') or result.outcome})")


def _fewer_answers(was: Result, now: Result) -> list[str]:
    """The addresses a DNS answer no longer holds when it still holds some of them: the name
    is published at fewer addresses ([] otherwise)."""
    if now.flow.kind != "dns" or now.outcome != "answered" or \
            now.detail.get("rcode") != "NOERROR" or was.detail.get("rcode") != "NOERROR":
        return []
    old, new = set(was.detail.get("answers") or []), set(now.detail.get("answers") or [])
    return sorted(old - new) if new and new < old else []


def _share(count: int, members: list[str], names: dict[str, str], lab: Lab | None) -> str:
    """"1 of 2 load balancer addresses": `count` of the `members` (nodes, or addresses that
    `names` maps to nodes), in the words of their role when they share one."""
    roles = {lab.nodes[names.get(m, m)].role for m in members
             if lab and names.get(m, m) in lab.nodes}
    role = roles.pop() if len(roles) == 1 else ""
    return " ".join(w for w in (f"{count} of {len(members)}", ROLE_WORDS.get(role, role),
                                "addresses") if w)


def compare(baseline: list[Result], after: list[Result], lab: Lab | None = None
            ) -> list[FlowDelta]:
    """Classify every flow whose verdict or DNS answers changed (pure; `lab`, when given, names
    the nodes behind addresses and the role of the targets)."""
    names = address_names(lab)
    before = {r.flow.name: r for r in baseline}
    after_by_rule: dict[str, list[Result]] = {}
    for r in after:
        after_by_rule.setdefault(r.flow.rule, []).append(r)
    deltas = []
    for now in after:
        was = before.get(now.flow.name)
        if was is None:
            continue
        kind, lost, peers, words = "", "", after_by_rule[now.flow.rule], said(now, names)
        if was.ok and not now.ok:
            left = _fewer_answers(was, now)
            if now.flow.must == "block":
                kind = "security-regression"
            elif left:
                kind = "redundancy-lost"
                lost = f"{now.flow.params.get('name', now.flow.target)}: " + ", ".join(
                    f"{a} ({names[a]})" if a in names else a for a in left)
                words = words.replace("answers", "publishes only", 1)
            elif not any(o.ok for o in peers):
                kind = "outage"
            else:
                kind = "redundancy-lost" if now.outcome in SILENT else "partial-outage"
        elif not was.ok and now.ok:
            kind = "fixed"
        elif now.flow.kind == "dns" and was.detail.get("answers") != now.detail.get("answers"):
            kind = "answers-changed"
        if kind:
            share = (_share(len(left), was.detail.get("answers") or [], names, lab) if lost
                     else _share(sum(not o.ok for o in peers),
                                 [o.flow.target for o in peers], {}, lab))
            deltas.append(FlowDelta(now.flow.name, now.flow.rule, now.flow.vantage,
                                    now.flow.target, now.flow.must, kind, _outcome(was),
                                    _outcome(now), now.reason, "", said(was, names),
                                    words, share, lost))
    return deltas


def accepted(delta: FlowDelta, accept: tuple[str, ...]) -> bool:
    """Whether the change file accepts this delta (`accept:`): then it is a note, not a reason."""
    return ACCEPTABLE_KINDS.get(delta.kind) in accept


def _head(d: FlowDelta) -> str:
    return f"{HEADS[d.kind]}: {'now open: ' if d.must == 'block' else ''}{d.describe()}"


def judge(deltas: list[FlowDelta], converge_errors: list[str], findings: list[str] = (),
          held: list[invariants.Finding] = (), accept: tuple[str, ...] = ()
          ) -> tuple[str, list[str]]:
    """SAFE or UNSAFE, and why (pure). `findings`: must-block flows the staged firewall's
    ruleset accepts (edge/workflow/policy.py); `held`: what the change broke of the roles'
    declared redundancy and agreement (edge/workflow/invariants.py); `accept`: the classes the
    change file accepts, whose deltas are no reason (see `notes`)."""
    reasons = [f"the change does not apply: {e}" for e in converge_errors]
    reasons += [f"SECURITY REGRESSION (firewall ruleset): {p}" for p in findings]
    reasons += [_head(d) for d in deltas if d.kind in HEADS and not accepted(d, accept)]
    reasons += [f.reason for f in held]
    return (UNSAFE if reasons else SAFE), reasons


def notes(deltas: list[FlowDelta], accept: tuple[str, ...]) -> list[str]:
    """The deltas the change file accepts, in the words of a reason and saying so (pure)."""
    return [f"{_head(d)} (accepted: the change says `accept: [{ACCEPTABLE_KINDS[d.kind]}]`)"
            for d in deltas if accepted(d, accept)]


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def degraded(flows: list[Flow], before: Rounds, after: Rounds
             ) -> tuple[list[FlowDelta], dict[str, dict[str, float]]]:
    """Must-work flows that met the contract in every round before and in every round that
    counts after (edge/workflow/rounds.counted), and answer much slower in the last rounds after
    (edge/workflow/rounds.settled, .slower), as DEGRADED deltas; and every such flow's latency
    percentiles, for the report (pure)."""
    found, figures = [], {}
    for flow in flows:
        was, now = before.latencies(flow.name), settled(after, flow.name)
        if flow.must != "work" or before.broken(flow.name) or counted(after, flow.name) \
                or not was or not now:
            continue
        summary = Slowdown.of(was, now)
        figures[flow.name] = summary.figures()
        slow = slower(was, now)
        if slow is None:
            continue
        result = after.seen[flow.name][-1][1]
        found.append(FlowDelta(
            flow.name, flow.rule, flow.vantage, flow.target, flow.must, "degraded",
            _outcome(result), _outcome(result), "", "",
            f"answers in {_ms(slow.p50_before)} (p95 {_ms(slow.p95_before)})",
            f"answers in {_ms(slow.p50_after)} at the median (p95 {_ms(slow.p95_after)})",
            f"{slow.factor:.0f}× slower at the median ({slow.samples_before} samples before, "
            f"{slow.samples_after} after)"))
    return found, figures


def _rounds_said(deltas: list[FlowDelta], after: Rounds) -> list[FlowDelta]:
    """A broken flow that failed in some rounds only says when: a timer ran out (first seen late)
    or it broke for a while."""
    said_when = []
    for d in deltas:
        broken = counted(after, d.flow) if d.kind in HEADS and d.kind != "degraded" else []
        seen = len(after.seen.get(d.flow, []))
        if broken and len(broken) < seen:
            d = replace(d, when=f"in {len(broken)} of {seen} rounds, first "
                                f"{broken[0] + AFTER_GRACE_S:.1f} s after the change")
        said_when.append(d)
    return said_when


def infra_preview(live: str, target: Revision, backend: stack.Backend) -> list[str]:
    """`pulumi preview --diff` of the live stack at the target revision's topology and stopped
    nodes, through a copy of its config file (the live stack's own config is not touched)."""
    tree = materialize(target.tree, backend.state)
    current = stack.stack_config(live)
    config = {"encryptionsalt": stack.salt(live),
              "config": {f"{PROJECT}:{k}": v for k, v in (current | {
                  "topology": rollout.topology_path(tree, current.get("topology")),
                  "stopped": sorted(target.stop)}).items()}}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(config, file)
        file.flush()
        out = stack.pulumi(["preview", "--diff", "--json", "--stack", live,
                            "--config-file", file.name], backend).stdout
    steps = json.loads(out).get("steps") or []
    return [f"{step['op']} {step['urn'].split('::')[-1]}" for step in steps
            if step.get("op") != "same"]


def static_stage(live: str, target: Revision, backend: stack.Backend,
                 hosts: list[str] | None = None) -> tuple[list[str], ConvergeResult]:
    """What the target revision would change on the live stack, written nowhere: Pulumi's
    resource steps and Ansible's check-mode result on `hosts` (None: all), both at once."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        infra = pool.submit(infra_preview, live, target, backend)
        check = rollout.configuration(live, target, backend, hosts=hosts, check=True)
        return infra.result(), check


def change_scope(change: Change, live: Revision, lab: Lab, backend: stack.Backend
                 ) -> list[str] | None:
    """The live stack's hosts the change can touch (edge/model/scope.py); None: all of them."""
    target = change.on(live)
    return scope.hosts(change, changed_paths(live.tree, target.tree), lab,
                       materialize(target.tree, backend.state) / "roles")


def declared_for(target: Revision, backend: stack.Backend) -> invariants.Declared:
    """What the roles declare beyond the flows (redundant sets, zone agreement), as the
    previewed revision's roles hold them: a role the change brings brings its own."""
    return invariants.load_declared(materialize(target.tree, backend.state) / "roles")


def settle_window(change: Change, live: Revision, target: Revision, lab: Lab,
                  hosts: list[str] | None, backend: stack.Backend,
                  failed: dict[str, str] | None = None) -> timers.Window:
    """How long to watch after the change, and why: the longest timer the previewed revision's
    roles declare (edge/model/timers.py), among the roles the change touches on the hosts of its
    scope (and every role of a node it stops or starts), with the values it leaves there; a
    timer staging hastens counts only when `failed` says its hastening failed."""
    tree = materialize(target.tree, backend.state)
    roles = tree / "roles"
    declared = timers.load_timers(roles)
    closure = scope.role_closure(roles)
    everyone = set().union(*(closure.get(e, {e}) for e in scope.EVERYONE))
    runs = {role: members | everyone for role, members in closure.items()}
    watched = timers.watched_roles(
        {name: node.ansible_role for name, node in lab.nodes.items()},
        lab.nodes if hosts is None else hosts,
        scope.changed_roles(change, changed_paths(live.tree, target.tree), roles), runs,
        set(target.stop) ^ set(live.stop))
    defaults = {k: v for role in closure for k, v in scope.role_defaults(roles, role).items()}
    values = timers.host_values(declared, defaults, inventory_host_vars(lab.outputs, tree),
                                target.vars)
    return timers.window(declared, watched, values, failed=failed)


def hasten(commands: Iterable[tuple[str, str, tuple[str, ...]]], lab: Lab) -> dict[str, str]:
    """Make hastened timers (timers.Window.commands: timer name, node role, argv) run out on
    staging now, e.g. flush the resolvers' cache instead of waiting out the TTL: each command
    once on every node of its role. Returns timer name -> why its hastening failed, for the
    timers the window must then wait for."""
    done: dict[tuple[str, tuple[str, ...]], str] = {}
    failed = {}
    for name, role, argv in commands:
        if (role, argv) not in done:
            done[(role, argv)] = ""
            for node in lab.with_role(role):
                try:
                    said = docker_exec.run(node, argv, timeout=30, check=False)
                except docker_exec.ContainerUnavailable as gone:
                    said = docker_exec.ExecResult(-1, "", f"container {gone.state}")
                if said.exit_code != 0:
                    done[(role, argv)] = (f"`{docker_exec.shown(argv)}` on {node.name}: "
                                          f"{(said.stderr or said.stdout).strip()[-200:]}")
                    break
        if done[(role, argv)]:
            failed[name] = done[(role, argv)]
    return failed


def _staging_baseline(staging: str, live: Revision, backend: stack.Backend) -> ConvergeResult:
    """Bring staging to the live revision. Staging's record says which revision it runs and
    which hosts the last preview changed on top of which base: when it already runs the live
    revision (that change was applied since) nothing is converged; when the last preview was of
    this same live revision, only the hosts it changed are converged back. Then what staging
    hastens is hastened (the resolvers' cache flushed: edge/model/timers.py) and every node
    forgets the path MTUs it learnt (forget_path_mtus)."""
    store = StackState.of(backend.state, staging)
    last = store.staging() or StagingRecord()
    rollout.infrastructure(staging, live, backend)
    if last.at == live.id:
        hosts: list[str] | None = []
    else:
        hosts = last.hosts if last.base == live.id else None
    result = rollout.configuration(staging, live, backend, hosts=hosts)
    if result.ok:
        # What the last preview left in caches goes too: the zone it changed, cached by the
        # resolver after its flush, would outlive the converge back by the TTL.
        lab = stack.lab(staging, backend)
        declared = timers.load_timers(materialize(live.tree, backend.state) / "roles")
        left = [f"{name}: {why}" for name, why in hasten(
            [(t.name, t.hastened.role, t.hastened.run) for t in declared
             if t.hastened and t.hastened.run], lab).items()]
        left += [f"learnt path MTUs could not be forgotten on {node}"
                 for node in forget_path_mtus(lab)]
        if left:
            result = replace(result, status="failed", errors=left)
    # Failed (or interrupted), staging runs an unknown mix: the next baseline converges every
    # host. A record keeping the base would make it converge only the last preview's hosts, and
    # a host this converge never reached would stay unconfigured for good.
    store.save_staging(StagingRecord(live.id, live.id) if result.ok else StagingRecord())
    return result


# What a node learnt of path MTUs (ICMP fragmentation-needed: kept 10 minutes), forgotten: the
# kernel raises every learnt path MTU to the interface's when the interface's MTU goes up, so each
# interface goes down to the least MTU and back. `ip route flush cache` would do it, but writes
# /proc/sys, read-only in a container.
FORGET_PATH_MTUS = (
    "for d in /sys/class/net/*; do n=${d##*/}; [ \"$n\" = lo ] && continue;"
    " m=$(cat \"$d/mtu\") && ip link set dev \"$n\" mtu 552 && ip link set dev \"$n\" mtu \"$m\""
    " || exit 1; done"
)


def forget_path_mtus(lab: Lab) -> list[str]:
    """Make every staging node forget the path MTUs it learnt, so that a benign preview's
    learnt smaller MTU (a narrower link with its ICMP passing) cannot hide a later preview's
    narrower link whose ICMP is dropped. Returns the nodes where it failed, with why."""
    def forget(node: str) -> str:
        try:
            said = docker_exec.run(lab.nodes[node], FORGET_PATH_MTUS, timeout=30,
                                   check=False)
        except docker_exec.ContainerUnavailable as gone:
            return f"{node}: the container is {gone.state}"
        return f"{node}: {said.stderr.strip()[-200:]}" if said.exit_code else ""

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [said for said in pool.map(forget, sorted(lab.nodes)) if said]


def _staging_change(staging: str, live: Revision, target: Revision, backend: stack.Backend,
                    hosts: list[str] | None) -> ConvergeResult:
    """Apply the change on staging, converging every host of its scope (None: every host).
    Staging's record says which hosts to converge back next time; a base of "" means all."""
    store = StackState.of(backend.state, staging)
    base, touched = (live.id, sorted(set(hosts) | set(target.stop) | set(live.stop))) \
        if hosts is not None else ("", [])
    store.save_staging(StagingRecord("", base, touched))
    result = rollout.transition(staging, live, target, backend, hosts)
    if result.ok:
        store.save_staging(StagingRecord(target.id, base, touched))
    return result


def load_pinned_contract(path: Path) -> tuple[Contract, str]:
    """The contract, and the sha256 of the very bytes it was loaded from. ContractError for a
    file that cannot be used, or that changed while it was read."""
    def digest() -> str:
        try:
            return file_digest(path)
        except OSError:
            return ""       # load_contract says why it cannot be read

    before = digest()
    loaded = load_contract(path)
    if digest() != before:
        raise ContractError(f"{path}: the file changed while edge read it: try again once the "
                            "edit is saved")
    return loaded, before


def run_preview(change: Change, live: str, staging: str, contract: Path,
                backend: stack.Backend = stack.Backend(),
                staging_config: dict[str, str] | None = None,
                progress: Progress = to_stderr) -> Preview:
    """Preview `change` for the `live` stack on the `staging` stack; never writes to `live`."""
    preview = Preview(change, live, staging)
    the_contract, preview.contract_digest = load_pinned_contract(contract)
    preview.contract = str(Path(contract).resolve())
    current = load_live(backend.state, live)
    if current is None:
        preview.reasons = [f"stack '{live}' has no recorded revision: bring it up with "
                           f"`edge up --stack {live}` first"]
        return preview
    preview.live_revision = current.id
    target = change.on(current)
    preview.target_revision, preview.target_tree = target.id, target.tree
    try:
        declared = declared_for(target, backend)
    except invariants.InvariantError as err:
        preview.reasons = [str(err)]
        return preview
    live_lab = stack.lab(live, backend)
    preview.live_digest = config_digest(live_lab)
    timer = time.monotonic()

    def lap(name: str) -> None:
        nonlocal timer
        preview.seconds[name] = round(time.monotonic() - timer, 2)
        timer = time.monotonic()

    progress(f"preview: [1/3] static: pulumi preview --diff and check mode against '{live}'; "
             f"meanwhile '{staging}' is brought to the live revision {current.id}")
    stack.select_stack(staging, backend, staging_config or {})
    preview.scope = change_scope(change, current, live_lab, backend)
    with ThreadPoolExecutor(max_workers=1) as pool:
        base = pool.submit(_staging_baseline, staging, current, backend)
        preview.infra_steps, static_result = static_stage(live, target, backend, preview.scope)
        base_result = base.result()
    # Per host, the diffs check mode showed or the tasks it counted as changed (a task without
    # diff support changes something too).
    counted = {h: max(len(static_result.diffs.get(h, [])), r.changed)
               for h, r in static_result.hosts.items()}
    preview.static_diffs = {h: n for h, n in (counted | {
        h: len(d) for h, d in static_result.diffs.items() if h not in counted}).items() if n}
    lap("static+baseline")
    if not static_result.ok:
        preview.verdict, preview.reasons = UNSAFE, [f"static check failed: {e}"
                                                    for e in static_result.errors]
        return preview

    progress(f"preview: [2/3] staged: baseline of the contract on '{staging}'")
    lab = preview.topology = stack.lab(staging, backend)
    flows = expand(the_contract, lab)
    # The roles' redundant sets and the zone are read while the flows are measured: each
    # reading is a `docker exec` per node, seconds on a loaded machine.
    work = [f for f in flows if f.must == "work"]
    before = Rounds()
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(invariants.read, lab, declared)
        preview.baseline = settle(flows, BASELINE_SETTLE_S)
        if all(r.ok for r in preview.baseline):
            # Latency samples of every must-work flow, to compare with those after the change.
            before = measure_rounds(work, 0.0, MIN_SAMPLES)
        held = reading.result()
    failing = [r.flow.name for r in preview.baseline if not r.ok]
    failing += sorted({f.name for f in work if before.broken(f.name)})
    if not base_result.ok or failing:
        preview.reasons = [f"staging is not green before the change: "
                           f"{base_result.errors or failing}"]
        lap("baseline")
        return preview
    preview.unread = invariants.unread(held)
    lap("baseline")

    progress(f"preview: [3/3] staged: applying change {change.digest} to '{staging}' on "
             + (", ".join(preview.scope) if preview.scope is not None else "every host"))
    applied = _staging_change(staging, current, target, backend, preview.scope)
    preview.staged_changed = applied.changed
    rulesets, unreadable = policy.read_rulesets(lab)
    try:
        preview.policy = policy.opened(flows, rulesets, lab, the_contract.inside)
    except policy.PolicyError as err:
        unreadable.append(str(err))
    lap("change")

    window = settle_window(change, current, target, lab, preview.scope, backend)
    time.sleep(AFTER_GRACE_S)
    # Once the daemons acted on the change (a primary's NOTIFY, its secondaries' transfer):
    # a cache flushed earlier could take the old answer again.
    if failed := hasten(window.commands, lab):
        window = settle_window(change, current, target, lab, preview.scope, backend, failed)
    preview.window = window
    progress(f"preview: watching '{staging}' for {window.seconds:g} s after the change: "
             f"{window.words()}")

    def read_after_window() -> list[invariants.Finding]:
        time.sleep(window.seconds)
        return invariants.settle(lab, declared, held, AFTER_SETTLE_S)[1]

    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(read_after_window)
        after = measure_rounds(flows, window.seconds, MIN_SAMPLES, before=before)
        preview.invariants = reading.result()
    preview.after, preview.rounds, preview.watched_s = (verdicts(flows, after), after.count,
                                                        round(after.seconds, 2))
    lap("watch")
    by_name = {r.flow.name: r.flow for r in preview.after}
    slow, preview.latency = degraded(flows, before, after)
    preview.deltas = _rounds_said([
        replace(d, where=where_it_dies(by_name[d.flow], d.before, d.after, lab))
        if d.kind in BROKE and not d.lost else d
        for d in compare(preview.baseline, preview.after, lab)], after) + slow
    preview.verdict, preview.reasons = judge(preview.deltas, applied.errors, preview.policy,
                                             preview.invariants, change.accept)
    preview.notes = notes(preview.deltas, change.accept)
    if preview.verdict == SAFE and preview.noop:
        preview.verdict = NOOP
        preview.reasons = ["nothing changes: no Pulumi step, no check-mode difference, no task "
                           f"changed on '{staging}', no contract flow changed"]
    lap("verdict")
    preview.live_digest_after = config_digest(live_lab)
    errors = [f"the firewall's ruleset on '{staging}' could not be read, so the must-block flows "
              f"it accepts are unknown: {problem}" for problem in unreadable]
    if preview.live_digest_after != preview.live_digest:
        errors.append(f"the live stack '{live}' changed while the preview ran (someone else is "
                      "at work on it): preview again")
    if not Path(contract).is_file() or file_digest(contract) != preview.contract_digest:
        errors.append(f"the contract {contract} was edited while the preview ran: preview "
                      "again once it is saved")
    if errors:
        preview.verdict = ERROR
        preview.reasons += errors
    return preview
