"""The change gate: `edge apply` lets a change reach the live stack only behind a SAFE preview,
and only under a watchdog that rolls it back the moment outside users lose the service.

- Gate: a SAFE preview of the same change digest, made against the revision the live stack still
  runs. Anything else is refused with the reason (no preview, UNSAFE, stale). `force` skips the
  gate (an emergency), never the watchdog, and is recorded as forced.
- Lock: one apply per stack at a time; the second is refused naming the holder.
- Watchdog: the contract's must-work flows are probed continuously (edge/watch.py) from before
  the change until a verification window after it. A flow that was green and goes down (N of M
  probes failed), or a contract flow failing the post-apply verification, rolls the stack back to
  the previous revision, converging only the hosts the change touched.
- Audit: every apply, refusal and rollback is a JSON line in `<state>/stacks/<stack>/audit.jsonl`.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from edge import rollout, stack
from edge.change import Change
from edge.configure import ConvergeResult, Progress, to_stderr
from edge.contract import Contract, Flow, expand
from edge.preview import SAFE, Preview
from edge.probes import run_flows
from edge.revision import Revision, load_live, save_live, stack_dir, timestamp
from edge.timeline import Event, Sample
from edge.watch import Sink, Watcher

# Before the change, how long the live stack may take to show a full window of good probes.
GREEN_WAIT_S = 10.0
# After the change, how long the watchdog keeps watching before the change counts as applied.
VERIFY_S = 4.0
# After a rollback, how long service may take to come back before the rollback counts as failed.
RESTORE_WAIT_S = 30.0



class GateRefused(RuntimeError):
    """The change may not be applied; the message says why and what to do."""


def record_preview(state: Path, preview: Preview, report: Path) -> None:
    """Remember a preview's verdict for the gate: per live stack, per change digest."""
    folder = stack_dir(state, preview.live) / "previews"
    folder.mkdir(exist_ok=True)
    hosts = sorted(h for h, n in preview.static_diffs.items() if n)
    (folder / f"{preview.change.digest}.json").write_text(json.dumps({
        "digest": preview.change.digest, "description": preview.change.description,
        "verdict": preview.verdict, "reasons": preview.reasons,
        "live_revision": preview.live_revision, "hosts": hosts, "when": timestamp(),
        "report": str(report)}, indent=1) + "\n")


def audit(state: Path, stack_name: str, entry: dict) -> None:
    """Append one line to the stack's audit log."""
    line = json.dumps({"when": timestamp(), "stack": stack_name, "user": getpass.getuser(),
                       **entry})
    with open(stack_dir(state, stack_name) / "audit.jsonl", "a", encoding="utf-8") as log:
        log.write(line + "\n")


def check_gate(state: Path, live: str, change: Change, current: Revision) -> dict:
    """The SAFE preview this apply relies on, or GateRefused saying what is missing."""
    path = stack_dir(state, live) / "previews" / f"{change.digest}.json"
    if not path.exists():
        raise GateRefused(f"no preview of change {change.digest} ({change.description}) for "
                          f"stack '{live}': run `edge preview {change.path}` first")
    record = json.loads(path.read_text())
    if record["verdict"] != SAFE:
        raise GateRefused(f"the preview of change {change.digest} ({record['when']}) said "
                          f"{record['verdict']}: " + "; ".join(record["reasons"][:3]))
    if record["live_revision"] != current.id:
        raise GateRefused(f"stale preview: change {change.digest} was previewed against live "
                          f"revision {record['live_revision']} ({record['when']}), but '{live}' "
                          f"runs revision {current.id} now: preview it again")
    return record


@contextmanager
def stack_lock(state: Path, stack_name: str, what: str) -> Iterator[None]:
    """Hold the stack's apply lock, or refuse naming who holds it."""
    path = stack_dir(state, stack_name) / "apply.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise GateRefused(f"stack '{stack_name}' is locked by {holder}: wait until it is done "
                          "(a second apply at the same time is refused)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, (f"pid {os.getpid()} ({getpass.getuser()}@{socket.gethostname()}, since "
                   f"{timestamp()}, {what})").encode(), 0)
    try:
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@dataclass
class ApplyResult:
    """What an apply did, with the watchdog's figures (seconds; None when it did not happen)."""

    outcome: str = "refused"            # applied, rolled-back, rollback-failed, refused
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
        return {"applied": 0, "rolled-back": 1}.get(self.outcome, 2)


def _bring(stack_name: str, frm: Revision, to: Revision, backend: stack.Backend,
           hosts: list[str] | None, cancel: threading.Event | None = None) -> ConvergeResult:
    """Move a stack between revisions: Pulumi only when nodes start/stop or the tree changes."""
    if frm.stop != to.stop or frm.tree != to.tree:
        rollout.infrastructure(stack_name, to, backend)
        if frm.tree != to.tree or hosts is None:
            hosts = None                                  # every host
        else:
            hosts = sorted(set(hosts) | set(frm.stop))    # and the nodes that start again
    return rollout.configuration(stack_name, to, backend, hosts=hosts, cancel=cancel)


def run_apply(change: Change, live: str, contract: Contract,
              backend: stack.Backend = stack.Backend(), force: bool = False,
              sinks: list[Sink] | None = None, progress: Progress = to_stderr) -> ApplyResult:
    """Apply `change` to the live stack behind the gate, under the watchdog."""
    result = ApplyResult(forced=force)
    current = load_live(backend.state, live)
    entry = {"action": "apply", "change": change.digest, "description": change.description,
             "forced": force}
    try:
        if current is None:
            raise GateRefused(f"stack '{live}' has no recorded revision: bring it up with "
                              f"`edge up --stack {live}` first")
        record = {} if force else check_gate(backend.state, live, change, current)
        with stack_lock(backend.state, live, f"applying change {change.digest}"):
            _apply(change, live, contract, backend, current, record, result, sinks or [],
                   progress)
    except GateRefused as err:
        result.reasons = [str(err)]
        audit(backend.state, live, entry | {"outcome": "refused", "reason": str(err)})
        return result
    audit(backend.state, live, entry | {
        "preview": "forced" if force else SAFE, "outcome": result.outcome,
        "from": current.id, "to": result.revision, "reasons": result.reasons,
        "detect_s": result.detect_s, "restore_s": result.restore_s,
        "verified_s": result.verified_s})
    return result


def _apply(change: Change, live: str, contract: Contract, backend: stack.Backend,
           current: Revision, record: dict, result: ApplyResult, sinks: list[Sink],
           progress: Progress) -> None:
    target = change.on(current)
    outputs = stack.outputs(live, backend)
    flows = expand(contract, outputs)
    hosts = record.get("hosts")             # what the preview's static stage saw change
    watcher = Watcher(flows, contract, sinks=sinks).start()
    try:
        progress(f"apply: watching {len(watcher.flows)} must-work flows of '{live}'")
        if not watcher.wait_green(GREEN_WAIT_S) and not result.forced:
            raise GateRefused(f"stack '{live}' is not green before the change (down: "
                              f"{', '.join(watcher.down()) or 'no full window yet'}): fix it "
                              "first (`edge verify`), or --force in an emergency")
        watched = {name for name, state in watcher.states().items() if state == "ok"}
        start = watcher.mark("apply", f"apply change {change.digest}: {change.description}").t
        cancel = threading.Event()
        done: list[ConvergeResult] = []
        worker = threading.Thread(target=lambda: done.append(
            _bring(live, current, target, backend, hosts, cancel)), daemon=True)
        progress(f"apply: converging '{live}' to revision {target.id}"
                 + (f" (hosts {', '.join(hosts)})" if hosts else ""))
        worker.start()
        broken = _watch_until(watcher, watched, worker, done, result, start, flows)
        if broken:
            cancel.set()
            worker.join()
            touched = sorted(done[0].touched) if done else hosts
            _rollback(live, current, target, backend, touched, watcher, broken, result, progress)
            return
        save_live(backend.state, live, target, f"apply {change.digest}")
        result.outcome, result.revision = "applied", target.id
        watcher.mark("verified", "change applied and verified")
        progress(f"apply: revision {target.id} applied and verified in {result.verified_s:.1f}s")
    finally:
        watcher.stop()
        result.events, result.samples = watcher.events, watcher.samples


def _watch_until(watcher: Watcher, watched: set[str], worker: threading.Thread,
                 done: list[ConvergeResult], result: ApplyResult, start: float,
                 flows: list[Flow]) -> str:
    """Watch while the change converges and for VERIFY_S after; the reason to roll back, or ""."""
    verify_from = None
    while True:
        down = [name for name in watcher.down() if name in watched]
        if down:
            result.broken = down
            return f"must-work flows down: {', '.join(down)}"
        if worker.is_alive():
            time.sleep(0.05)
            continue
        if verify_from is None:
            verify_from = time.monotonic()
            result.apply_s = round(watcher.now() - start, 2)
            if not done or not done[0].ok:
                errors = done[0].errors[:3] if done else ["the converge did not finish"]
                return "the change failed to converge: " + "; ".join(errors)
            failing = [r.flow.name for r in run_flows(flows) if not r.ok]
            if failing:
                return f"post-apply verification failed: {', '.join(failing)}"
        if time.monotonic() - verify_from >= VERIFY_S:
            result.verified_s = round(watcher.now() - start, 2)
            return ""
        time.sleep(0.05)


def _rollback(live: str, current: Revision, target: Revision, backend: stack.Backend,
              hosts: list[str] | None, watcher: Watcher, reason: str, result: ApplyResult,
              progress: Progress) -> None:
    """Back to `current`; time-to-detect and time-to-restore count from the first failed probe
    of the flows that went down (or from the decision, when only the verification failed)."""
    decided = watcher.mark("rollback", f"rolling back: {reason}").t
    first_failed = watcher.failing_since(result.broken)
    first_failed = decided if first_failed is None else first_failed
    result.detect_s = round(decided - first_failed, 2)
    result.reasons.append(reason)
    progress(f"apply: {reason}; rolling back to revision {current.id}")
    undo = _bring(live, target, current, backend, hosts)
    green = watcher.wait_event("green", decided, RESTORE_WAIT_S)
    if green and undo.ok:
        result.restore_s = round(green.t - first_failed, 2)
        result.outcome, result.revision = "rolled-back", current.id
        progress(f"apply: rolled back; service restored {result.restore_s:.1f}s after the "
                 "first failed probe")
    else:
        result.outcome, result.revision = "rollback-failed", current.id
        result.reasons.append("service did not come back after the rollback: "
                              + "; ".join(undo.errors[:3] or watcher.down()))
    save_live(backend.state, live, current, f"rollback of {target.id}")
