"""The change gate: `edge apply` lets a change reach the live stack only behind a SAFE preview,
and only under a watchdog that rolls it back the moment outside users lose the service.

- Gate: a SAFE preview of the same change digest, made under exactly what this apply is about
  to do: from the revision the live stack still runs to the same target revision (and its tree),
  staged on the expected staging stack, judged by the same contract (the sha256 of its bytes),
  over the same scope of hosts. Anything else is refused, one reason at a time, each saying
  what differs and what to do. After a NO-OP preview (made under the same) there is nothing to
  apply: nothing is converged, and the audit log says so. `force` skips the gate (an emergency), never the watchdog, and is recorded
  as forced.
- Lock: one writer per stack at a time (edge/model/state.py's `stack_lock`); a second apply is refused
  naming the holder. The gate reads the live revision under the lock, so no other writer can
  move the stack between the check and the converge.
- What is applied is what was previewed: the converge works from the target's desired-state
  tree as Git has it (edge/model/revision.py's materialize), never from the checkout, which may be
  edited meanwhile; it converges exactly the previewed scope.
- Watchdog: the must-work flows of the preview's contract (its own file, refused if its bytes
  changed since) are probed continuously (edge/lab/watch.py) from before the change until a
  verification window after it. A flow that was green and goes down (N of M probes failed), or
  a contract flow failing the post-apply verification, rolls the stack back to the previous
  revision, converging only the hosts the change touched.
- Audit: every apply, refusal and rollback is a JSON line in `<state>/stacks/<stack>/audit.jsonl`
  (edge/model/state.py).

`Apply` runs one apply phase by phase. What it does to the lab (probe, watch, converge, verify,
record the live revision) goes through a `LiveStack`, so that its decisions can be tried with a
stand-in; the gate, the lock and the audit log are its own, on the state folder.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edge.engines import stack
from edge.engines.configure import ConvergeResult, Progress, to_stderr
from edge.lab.events import Alarm, Event, Sample
from edge.lab.probes import run_flows
from edge.lab.watch import SECURITY, Sink, Watcher
from edge.model.change import Change
from edge.model.contract import Contract, ContractError, Flow, expand
from edge.model.revision import Revision, load_live, save_live
from edge.model.state import (
    AuditEvent,
    InterruptedRecord,
    PreviewRecord,
    StackLocked,
    StackState,
    stack_lock,
)
from edge.workflow import rollout
from edge.workflow.staged import (
    NOOP,
    SAFE,
    Preview,
    change_scope,
    file_digest,
    load_pinned_contract,
)

# Before the change, how long the live stack may take to show a full window of good probes.
GREEN_WAIT_S = 10.0
# After the change, how long the watchdog keeps watching before the change counts as applied.
VERIFY_S = 4.0
# After a rollback, how long service may take to come back before the rollback counts as failed.
RESTORE_WAIT_S = 30.0
# How often the watchdog looks at the flows while it waits.
POLL_S = 0.05
# The staging stack a preview must have been made on, unless the apply names another.
STAGING = "staging"


class GateRefused(RuntimeError):
    """The change may not be applied; the message says why and what to do."""


def record_preview(state: Path, preview: Preview, report: Path) -> None:
    """Remember a preview's verdict for the gate (per live stack, per change digest), with what
    it was made under: contract, staging stack, scope, revision pair."""
    StackState.of(state, preview.live).save_preview(PreviewRecord(
        preview.change.digest, preview.verdict, preview.live_revision, preview.change.description,
        preview.reasons, sorted(h for h, n in preview.static_diffs.items() if n),
        report=str(report), contract=preview.contract, contract_digest=preview.contract_digest,
        staging=preview.staging, scope=list(preview.scope or []),
        every_host=preview.scope is None, target_revision=preview.target_revision,
        target_tree=preview.target_tree))


def audit(state: Path, stack_name: str, action: str, details: dict) -> None:
    """Append one line to the stack's audit log."""
    StackState.of(state, stack_name).append_audit(AuditEvent(stack_name, action, details))


@dataclass(frozen=True)
class Intent:
    """What an apply is about to do, to hold against what its preview was made under."""

    target: Revision                 # the revision the live stack will run
    staging: str                     # the staging stack (or pool a,b) its preview was made on
    contract: Path                   # the contract the apply was given...
    contract_digest: str             # ...and the sha256 of its bytes
    scope: list[str] | None          # the hosts it will converge (None: every host)


def _hosts(scope: list[str] | None) -> str:
    return "every host" if scope is None else ", ".join(scope) or "no host"


def _short(digest: str) -> str:
    return digest[:12] or "none"


def mismatch(record: PreviewRecord, change: Change, intent: Intent) -> str | None:
    """Why the preview `record` does not cover the apply `intent` (None: it does), as one
    sentence saying what differs and what to do (pure)."""
    what = f"the preview of change {change.digest} ({record.when})"
    again = f"preview it again (`edge preview {change.path}`)"
    if not record.contract_digest or not record.target_tree:
        return (f"{what} was made by an older edge that did not record its contract, staging "
                f"stack, scope and target revision: {again}")
    target = intent.target
    if (record.target_revision, record.target_tree) != (target.id, target.tree):
        return (f"{what} was of revision {record.target_revision} (tree "
                f"{record.target_tree[:12]}); this apply would bring revision {target.id} "
                f"(tree {target.tree[:12]}): {again}")
    if record.staging not in intent.staging.split(","):
        return (f"{what} was staged on '{record.staging}'; this apply expects a preview staged "
                f"on '{intent.staging}': {again} with --staging {intent.staging}, or apply with "
                f"--staging {record.staging}")
    if record.contract_digest != intent.contract_digest:
        return (f"{what} was made against contract {_short(record.contract_digest)} "
                f"({record.contract}); this apply uses {_short(intent.contract_digest)} "
                f"({intent.contract}): {again} with the same contract")
    recorded = None if record.every_host else sorted(record.scope)
    wanted = None if intent.scope is None else sorted(intent.scope)
    if recorded != wanted:
        return (f"{what} staged the change on {_hosts(recorded)}; its scope on the live stack "
                f"is now {_hosts(wanted)} (the stack's nodes or roles changed): {again}")
    return None


def check_gate(state: Path, live: str, change: Change, current: Revision,
               intent: Intent | None = None) -> PreviewRecord:
    """The SAFE (or NO-OP) preview this apply relies on, made under what the apply is about to
    do (`intent`, when given); GateRefused saying what is missing or differs otherwise."""
    record = StackState.of(state, live).preview(change.digest)
    if record is None:
        raise GateRefused(f"no preview of change {change.digest} ({change.description}) for "
                          f"stack '{live}': run `edge preview {change.path}` first")
    if record.verdict not in (SAFE, NOOP):
        raise GateRefused(f"the preview of change {change.digest} ({record.when}) said "
                          f"{record.verdict}: " + "; ".join(record.reasons[:3]))
    if record.live_revision != current.id:
        raise GateRefused(f"stale preview: change {change.digest} was previewed against live "
                          f"revision {record.live_revision} ({record.when}), but '{live}' "
                          f"runs revision {current.id} now: preview it again")
    if intent is not None and (why := mismatch(record, change, intent)):
        raise GateRefused(why)
    return record


def _digest_of(path: Path) -> str:
    """The apply's contract file's sha256; GateRefused when it cannot be read."""
    try:
        return file_digest(path)
    except OSError as err:
        raise GateRefused(f"{path}: the contract of this apply cannot be read ({err.strerror}): "
                          "give the contract file with --contract") from None


def _watched_contract(record: PreviewRecord) -> tuple[Contract, str]:
    """The contract the preview measured, loaded from its own file, whose bytes must still be
    the ones the preview digested (checked around the load, so an edit meanwhile is seen)."""
    path = Path(record.contract)
    try:
        loaded, digest = load_pinned_contract(path)
    except ContractError as err:
        raise GateRefused(f"the contract of the preview cannot be used now: {err}") from None
    if digest != record.contract_digest:
        raise GateRefused(f"the contract {path} was edited since the preview of change "
                          f"{record.digest} ({record.when}) (sha256 "
                          f"{_short(record.contract_digest)} then, {_short(digest)} now), and "
                          "the watchdog watches the contract of the preview: preview it again")
    return loaded, digest


@dataclass
class ApplyResult:
    """What an apply did, with the watchdog's figures (seconds; None when it did not happen)."""

    outcome: str = "refused"            # applied, no-op, rolled-back, rollback-failed, refused
    reasons: list[str] = field(default_factory=list)
    forced: bool = False
    broken: list[str] = field(default_factory=list)   # the must-work flows that went down
    revision: str = ""                  # the revision the stack runs afterwards
    apply_s: float | None = None        # converge of the change
    verified_s: float | None = None     # change start to verified (apply + verification)
    detect_s: float | None = None       # first failed probe to the watchdog's decision
    restore_s: float | None = None      # first failed probe to every flow green again
    events: list[Event] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"applied": 0, "no-op": 0, "rolled-back": 1}.get(self.outcome, 2)


class Clock(Protocol):
    """The verification window's time: the `time` module, or a test's that never waits."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float, /) -> None: ...


class Watchdog(Protocol):
    """What an apply asks of the watcher over the must-work flows (edge/lab/watch.py's Watcher)."""

    flows: list[Flow]

    def wait_green(self, timeout_s: float) -> bool: ...

    def states(self) -> dict[str, str]: ...

    def down(self) -> list[str]: ...

    def active(self) -> list[Alarm]: ...

    def now(self) -> float: ...

    def mark(self, kind: str, note: str) -> Event: ...

    def failing_since(self, names: list[str]) -> float | None: ...

    def wait_event(self, kind: str, after: float, timeout_s: float) -> Event | None: ...

    def recorded(self) -> tuple[list[Event], list[Sample]]: ...

    def stop(self) -> None: ...


class LiveStack(Protocol):
    """What an apply does to the live stack itself (LabStack: the real one)."""

    def flows(self, contract: Contract) -> list[Flow]:
        """The contract's flows, bound to the stack's nodes."""

    def watch(self, flows: list[Flow], contract: Contract) -> Watchdog:
        """A started watchdog over the must-work ones of `flows`."""

    def scope(self, change: Change, current: Revision) -> list[str] | None:
        """The stack's hosts the change can touch from `current` (None: every host)."""

    def converge(self, frm: Revision, to: Revision, hosts: list[str] | None,
                 cancel: threading.Event | None = None) -> ConvergeResult:
        """Move the stack from `frm` to `to`, only on `hosts` when given; `cancel` stops it
        early, and the result says which hosts it touched until then."""

    def verify(self, flows: list[Flow]) -> list[str]:
        """Probe every flow once: the names of those that fail."""

    def save(self, revision: Revision, how: str) -> None:
        """Record `revision` as what the stack runs now."""


@dataclass
class LabStack:
    """The live stack in the lab: Pulumi's outputs, probe agents in the vantage containers,
    Pulumi and Ansible to move it between revisions."""

    name: str
    backend: stack.Backend
    sinks: list[Sink] = field(default_factory=list)

    def flows(self, contract: Contract) -> list[Flow]:
        return expand(contract, stack.lab(self.name, self.backend))

    def watch(self, flows: list[Flow], contract: Contract) -> Watchdog:
        return Watcher(flows, contract, sinks=self.sinks).start()

    def scope(self, change: Change, current: Revision) -> list[str] | None:
        """edge/workflow/scope.py's hosts, as the preview computes them (edge/workflow/staged.py)."""
        return change_scope(change, current, stack.lab(self.name, self.backend),
                            self.backend)

    def converge(self, frm: Revision, to: Revision, hosts: list[str] | None,
                 cancel: threading.Event | None = None) -> ConvergeResult:
        """The one transition rule (edge/workflow/rollout.py), on the live stack."""
        return rollout.transition(self.name, frm, to, self.backend, hosts, cancel)

    def verify(self, flows: list[Flow]) -> list[str]:
        return [r.flow.name for r in run_flows(flows) if not r.ok]

    def save(self, revision: Revision, how: str) -> None:
        save_live(self.backend.state, self.name, revision, how)


class Apply:
    """One apply of `change` to stack `live`, phase by phase: (under the stack's lock) gate,
    start_watch, converge, verify_after, decide (keep it, or rollback), record. Each phase
    leaves on the instance what the next one needs; the figures go to `result`.

    `contract` is the one the apply was given: the gate holds it against the preview's, and
    the watchdog then watches the preview's own file (a forced apply watches this one)."""

    current: Revision           # what the stack runs before the change (set by gate)
    target: Revision            # what it runs with the change in (set by gate)
    watcher: Watchdog           # set by start_watch

    def __init__(self, change: Change, live: str, state: Path, lab: LiveStack,
                 contract: Contract, force: bool = False, progress: Progress = to_stderr,
                 clock: Clock = time, staging: str = STAGING) -> None:
        self.change, self.live, self.state, self.lab = change, live, state, lab
        self.contract, self.staging = contract, staging
        self.force, self.progress, self.clock = force, progress, clock
        self.result = ApplyResult(forced=force)
        self.hosts: list[str] | None = None     # the previewed scope; None: every host
        self.noop = False                       # the preview found nothing to apply
        self.contract_digest = ""               # the sha256 of the watched contract's bytes
        self.flows: list[Flow] = []
        self.watched: set[str] = set()          # the must-work flows green before the change
        self.started = 0.0                      # watch time the change started
        self.cancel = threading.Event()         # asks the converge of the change to stop
        self.converged = threading.Event()      # its thread is done (returned or raised)
        self.converge_result: ConvergeResult | None = None

    def run(self) -> ApplyResult:
        """Every phase in order, the gate included under the stack's lock (what it reads cannot
        change before the converge); a refusal at any point ends the apply as refused."""
        try:
            with stack_lock(self.state, self.live, f"applying change {self.change.digest}"):
                self.gate()
                if self.noop:
                    self.nothing_to_apply()
                    return self._recorded()
                self.start_watch()
                try:
                    self.baseline()
                    # Written ahead, so that a SIGKILL, which runs nothing here, leaves it too.
                    self._interrupted()
                    self.decide(self.converge() or self.verify_after())
                    if self.result.outcome != "rollback-failed":
                        StackState.of(self.state, self.live).clear_interrupted()
                except BaseException:
                    self.cancel.set()
                    self._interrupted()
                    raise
                finally:
                    self.watcher.stop()
                    self.result.events, self.result.samples = self.watcher.recorded()
        except (GateRefused, StackLocked) as err:
            self.result.reasons = [str(err)]
        return self._recorded()

    def _interrupted(self) -> None:
        """Interrupted (Ctrl-C, SIGTERM) during the converge, the watchdog or the rollback: live
        may be half-changed, so say exactly how, and how back, for the next command."""
        hosts = ", ".join(self.hosts) if self.hosts else "every host"
        StackState.of(self.state, self.live).save_interrupted(InterruptedRecord(
            what=f"edge apply of change {self.change.digest} ({self.change.description})",
            state=f"'{self.live}' may run revision {self.target.id} on some of {hosts} and the "
                  f"recorded revision {self.current.id} elsewhere (the apply was interrupted "
                  "during its converge, watchdog or rollback)",
            way_back=f"edge converge --stack {self.live}  (converges every host to the "
                     f"recorded revision {self.current.id}, then `edge verify`)"))

    def _recorded(self) -> ApplyResult:
        self.record()
        return self.result

    def gate(self) -> None:
        """The revision the stack runs (read under the lock), and unless forced the SAFE or
        NO-OP preview of this change made under what this apply is about to do (revision pair,
        staging stack, contract, scope); then the contract to watch. GateRefused otherwise."""
        current = load_live(self.state, self.live)
        if current is None:
            raise GateRefused(f"stack '{self.live}' has no recorded revision: bring it up with "
                              f"`edge up --stack {self.live}` first")
        self.current, self.target = current, self.change.on(current)
        if self.force:
            self.contract_digest = _digest_of(self.contract.path)
            return
        intent = Intent(self.target, self.staging, self.contract.path,
                        _digest_of(self.contract.path),
                        self.lab.scope(self.change, current))
        record = check_gate(self.state, self.live, self.change, current, intent)
        self.hosts, self.noop = intent.scope, record.verdict == NOOP
        self.contract, self.contract_digest = _watched_contract(record)

    def nothing_to_apply(self) -> None:
        """A NO-OP preview: nothing is converged and the stack keeps its revision."""
        self.result.outcome, self.result.revision = "no-op", self.current.id
        self.result.reasons = [f"nothing to apply: the preview of change {self.change.digest} "
                               f"found that it changes nothing on '{self.live}'"]
        self.progress(f"apply: {self.result.reasons[0]}")

    def start_watch(self) -> None:
        """Start probing the stack's must-work flows."""
        self.flows = self.lab.flows(self.contract)
        self.watcher = self.lab.watch(self.flows, self.contract)
        self.progress(f"apply: watching {len(self.watcher.flows)} must-work flows of "
                      f"'{self.live}'")

    def baseline(self) -> None:
        """Wait for the stack to be green (refused if it is not, unless forced), and note which
        flows are: only those going down count against the change."""
        if not self.watcher.wait_green(GREEN_WAIT_S) and not self.force:
            raise GateRefused(f"stack '{self.live}' is not green before the change (down: "
                              f"{', '.join(self.watcher.down()) or 'no full window yet'}): fix "
                              "it first (`edge verify`), or --force in an emergency")
        self.watched = {name for name, s in self.watcher.states().items() if s == "ok"}

    def converge(self) -> str:
        """Converge the change in a thread of its own while watching: the reason to roll back
        (a watched flow down, or the converge failed), or ""."""
        self.started = self.watcher.mark(
            "apply", f"apply change {self.change.digest}: {self.change.description}").t
        self.progress(f"apply: converging '{self.live}' to revision {self.target.id}"
                      + (f" (hosts {', '.join(self.hosts)})" if self.hosts else ""))
        threading.Thread(target=self._converge, daemon=True).start()
        while True:
            if reason := self._broken():
                return reason
            if self.converged.wait(POLL_S):
                break
        self.result.apply_s = round(self.watcher.now() - self.started, 2)
        done = self.converge_result
        if done is None or not done.ok:
            errors = done.errors[:3] if done else ["the converge did not finish"]
            return "the change failed to converge: " + "; ".join(errors)
        return ""

    def _converge(self) -> None:
        try:
            self.converge_result = self.lab.converge(self.current, self.target, self.hosts,
                                                     self.cancel)
        finally:
            self.converged.set()

    def _broken(self) -> str:
        """The reason to roll back: a flow that was green before the change is down, or a
        must-block flow opened (the live stack was green, must-block included, before it)."""
        down = [name for name in self.watcher.down() if name in self.watched]
        if down:
            self.result.broken = down
            return f"must-work flows down: {', '.join(down)}"
        exposed = [f for alarm in self.watcher.active() if alarm.cls == SECURITY
                   for f in alarm.flows]
        if exposed:
            self.result.broken = exposed
            return f"SECURITY EXPOSURE: must-block flows opened: {', '.join(exposed)}"
        return ""

    def verify_after(self) -> str:
        """Probe every contract flow once, then keep watching for VERIFY_S (counted from the
        end of the converge): the reason to roll back, or "" when the change holds."""
        since = self.clock.monotonic()
        failing = self.lab.verify(self.flows)
        if failing:
            return f"post-apply verification failed: {', '.join(failing)}"
        while not (reason := self._broken()):
            if self.clock.monotonic() - since >= VERIFY_S:
                self.result.verified_s = round(self.watcher.now() - self.started, 2)
                return ""
            self.clock.sleep(POLL_S)
        return reason

    def decide(self, reason: str) -> None:
        """Keep the change when nothing speaks against it, else roll it back for `reason`."""
        if reason:
            self.rollback(reason)
            return
        self.lab.save(self.target, f"apply {self.change.digest}")
        self.result.outcome, self.result.revision = "applied", self.target.id
        self.watcher.mark("verified", "change applied and verified")
        self.progress(f"apply: revision {self.target.id} applied and verified in "
                      f"{self.result.verified_s:.1f}s")

    def rollback(self, reason: str) -> None:
        """Stop the converge, then back to the previous revision on the hosts it touched.

        Time-to-detect and time-to-restore count from the first failed probe of the flows that
        went down (or from the decision, when only the converge or the verification failed).
        The decision is marked before the cancelled converge has stopped: an Ansible task that
        takes seconds to give up delays the restore, not the watchdog's detection."""
        self.cancel.set()
        result = self.result
        decided = self.watcher.mark("rollback", f"rolling back: {reason}").t
        self.converged.wait()
        touched = sorted(self.converge_result.touched) if self.converge_result else self.hosts
        first_failed = self.watcher.failing_since(result.broken)
        first_failed = decided if first_failed is None else first_failed
        result.detect_s = round(decided - first_failed, 2)
        result.reasons.append(reason)
        self.progress(f"apply: {reason}; rolling back to revision {self.current.id}")
        undo = self.lab.converge(self.target, self.current, touched)
        green = self.watcher.wait_event("green", decided, RESTORE_WAIT_S)
        result.revision = self.current.id
        if green and undo.ok:
            result.restore_s = round(green.t - first_failed, 2)
            result.outcome = "rolled-back"
            self.progress(f"apply: rolled back; service restored {result.restore_s:.1f}s after "
                          "the first failed probe")
        else:
            result.outcome = "rollback-failed"
            result.reasons.append("service did not come back after the rollback: "
                                  + "; ".join(undo.errors[:3] or self.watcher.down()))
        self.lab.save(self.current, f"rollback of {self.target.id}")

    def record(self) -> None:
        """The audit line: a refusal with its reason, or the outcome with its figures."""
        entry = {"change": self.change.digest, "description": self.change.description,
                 "forced": self.force}
        result = self.result
        if result.outcome == "refused":
            entry |= {"outcome": "refused", "reason": result.reasons[0]}
        else:
            entry |= {"preview": "forced" if self.force else NOOP if self.noop else SAFE,
                      "outcome": result.outcome, "from": self.current.id, "to": result.revision,
                      "reasons": result.reasons, "contract": self.contract_digest,
                      "hosts": self.hosts, "detect_s": result.detect_s,
                      "restore_s": result.restore_s, "verified_s": result.verified_s}
        audit(self.state, self.live, "apply", entry)


def run_apply(change: Change, live: str, contract: Contract,
              backend: stack.Backend = stack.Backend(), force: bool = False,
              sinks: list[Sink] | None = None, progress: Progress = to_stderr,
              staging: str = STAGING) -> ApplyResult:
    """Apply `change` to the live stack behind the gate (a preview staged on `staging` against
    the same `contract`), under the watchdog."""
    lab = LabStack(live, backend, sinks or [])
    return Apply(change, live, backend.state, lab, contract, force, progress,
                 staging=staging).run()
