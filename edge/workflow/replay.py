"""Replay real incidents against the lab (replays.yaml) and measure how fast the watcher tells.

A replay: watcher started, green baseline, faults injected (edge/lab/faults.py, or the traffic shift
of edge/lab/paths.py), the expected alarm awaited, the fault held, everything undone in reverse, the
lab awaited back to green (every must-work flow through the watcher, then the whole contract,
must-block flows included). Time-to-detect counts from the first fault to the first alarm of the
expected class on the expected service; time-to-recover from the restore to green. After green,
every alarm must clear too (the watcher clears a recovering service a settle period or two after
its flows are back, an exposed must-block flow after a few blocked probes); how many alarm,
recovering and clear events the replay raised tells how much a person on call was paged.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.engines import stack
from edge.engines.configure import Progress, to_stderr
from edge.lab import faults
from edge.lab.drift_watch import DRIFT, DriftWatch
from edge.lab.events import Event, Sample
from edge.lab.probes import settle
from edge.lab.watch import DEGRADED, EXTERNAL, INTERNAL, Watcher
from edge.model.contract import Contract, expand
from edge.model.datafile import load_checked
from edge.model.lab import Lab
from edge.model.state import StackState
from edge.workflow import drift

CLASSES = (EXTERNAL, DEGRADED, INTERNAL)
BASELINE_WAIT_S = 15.0
RECOVER_WAIT_S = 90.0
# After green, how long the alarms may take to clear: two settle periods for a service, and for
# an exposure `recover` blocked probes at the must-block rate (15 s by default), with room.
CLEAR_WAIT_S = 30.0
# How the faults go away: each fault's own undo, or `edge drift --revert` (what an operator does
# after keystrokes nobody recorded: the nodes are brought back to the stack's revision).
UNDO, REVERT = "undo", "drift-revert"
# How often the watcher reads the nodes' digests in a replay that expects a DRIFT alarm.
DRIFT_INTERVAL_S = 1.0


class ReplayError(ValueError):
    """A catalog that cannot be used, or a replay that could not run; the message says why."""


@dataclass(frozen=True)
class Step:
    """One fault of a replay."""

    fault: str
    node: str
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.fault} {self.node}" + (f" ({extra})" if extra else "")


@dataclass(frozen=True)
class Incident:
    """A catalog entry."""

    name: str
    description: str
    steps: tuple[Step, ...]
    expect_class: str
    expect_service: str
    within_s: float
    quiet: tuple[str, ...] = ()
    hold_s: float = 2.0
    drift: tuple[str, ...] = ()       # nodes a DRIFT alarm must name...
    drift_within_s: float = 5.0       # ...within this long of the first fault
    restore: str = UNDO


def load_catalog(path: Path | str) -> dict[str, Incident]:
    """Load and validate replays.yaml; ReplayError names file, line and fix."""
    path = Path(path)
    doc, r = load_checked(path, "replay catalog", "--catalog", ReplayError)
    entries = r.mapping(doc, "replays", "replays")
    catalog = {}
    for name in entries:
        spec = r.entry(entries, name, f"replays.{name}", "(description, inject, expect)")
        where = f"replays.{name}"
        steps = spec.get("inject")
        if not isinstance(steps, list) or not steps:
            r.fail(spec, f"{where}.inject", "expected a list of faults",
                   "Write e.g. `inject: [{fault: stop, node: ns1}]`.", "inject")
        for i, step in enumerate(steps):
            if not isinstance(step, dict) or not isinstance(step.get("fault"), str) \
                    or not isinstance(step.get("node"), str):
                r.fail(spec, f"{where}.inject[{i}]", "a fault needs `fault:` and `node:`",
                       "Write e.g. `{fault: kill, node: lb1}`.", "inject")
            if step["fault"] not in faults.KINDS:
                r.fail(step, f"{where}.inject[{i}].fault", f"unknown fault '{step['fault']}'",
                       f"Use one of: {', '.join(faults.KINDS)}.", "fault")
        expect = r.mapping(spec, "expect", f"{where}.expect")
        if expect.get("class") not in CLASSES:
            r.fail(expect, f"{where}.expect.class", f"'{expect.get('class')}' is no alarm class",
                   f"Use one of: {', '.join(CLASSES)}.", "class")
        if not isinstance(expect.get("service"), str) or \
                not isinstance(expect.get("within_s"), (int, float)):
            r.fail(expect, f"{where}.expect", "needs `service:` and a number `within_s:`",
                   "Write e.g. `expect: {class: DEGRADED, service: dns, within_s: 2}`.", "class")
        drifted = expect.get("drift", [])
        if not isinstance(drifted, list) or not all(isinstance(n, str) for n in drifted) \
                or not isinstance(expect.get("drift_within_s", 5.0), (int, float)):
            r.fail(expect, f"{where}.expect.drift", "needs a list of node names (and a number "
                   "`drift_within_s:`)", "Write e.g. `drift: [firewall, lb1], drift_within_s: 5`.",
                   "drift")
        if spec.get("restore", UNDO) not in (UNDO, REVERT):
            r.fail(spec, f"{where}.restore", f"'{spec.get('restore')}' is no way to restore",
                   f"Use {UNDO} (each fault's undo) or {REVERT} (edge drift --revert).",
                   "restore")
        catalog[name] = Incident(
            name, str(spec.get("description", "")).strip(),
            tuple(Step(s["fault"], s["node"], dict(s.get("options") or {})) for s in steps),
            expect["class"], expect["service"], float(expect["within_s"]),
            tuple(expect.get("quiet") or ()), float(spec.get("hold_s", 2.0)),
            tuple(drifted), float(expect.get("drift_within_s", 5.0)), spec.get("restore", UNDO))
    return catalog


@dataclass
class ReplayResult:
    """What a replay measured; `ok` when the expected alarm came in time, the quiet services
    stayed quiet and the lab came back green."""

    incident: Incident
    detected: str = ""                 # the alarm that matched, as the watcher said it
    detect_s: float | None = None
    drift: str = ""                    # the DRIFT alarm naming the expected nodes...
    drift_s: float | None = None       # ...and when, after the first fault
    recover_s: float | None = None
    green_after: bool = False
    problems: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def run_replay(incident: Incident, lab: Lab, contract: Contract, restore: bool = True,
               state_dir: Path | None = None, progress: Progress = to_stderr,
               backend: stack.Backend = stack.Backend()) -> ReplayResult:
    """Replay `incident` on the stack `lab` (see the module docstring).
    Without `restore`, the faults stay and are recorded in `state_dir` for `edge fault clear`.
    An incident restored by `edge drift --revert` reverts through `backend` (the stack's state),
    under the writer lock its caller holds."""
    result = ReplayResult(incident)
    flows = expand(contract, lab)
    for step in incident.steps:   # bad input stops here, before anything is touched
        if step.node not in lab.nodes:
            raise ReplayError(f"replay {incident.name}: no node '{step.node}' in stack "
                              f"'{lab.stack}'")
    injected: list[faults.Fault] = []
    watcher = Watcher(flows, contract, drift=DriftWatch(lab, DRIFT_INTERVAL_S)
                      if incident.drift else None).start()
    try:
        if not watcher.wait_green(BASELINE_WAIT_S):
            raise ReplayError(f"the lab is not green before the replay (down: "
                              f"{', '.join(watcher.down())}): fix it first (edge fault clear)")
        watcher.mark("baseline", "baseline green")
        progress(f"replay {incident.name}: injecting {', '.join(map(str, incident.steps))}")
        fault_t = watcher.mark("fault", "inject: " + ", ".join(map(str, incident.steps))).t
        # All at once, as the incidents happened (one keystroke took everything out).
        with ThreadPoolExecutor(max_workers=len(incident.steps)) as pool:
            # Recorded before injected (with `state_dir`): a kill of the replay never leaves an
            # unrecorded fault; each record is forgotten once its fault is undone.
            started = [pool.submit(faults.inject, step.fault, step.node, lab, step.options,
                                   state_dir) for step in incident.steps]
        injected += [f.result() for f in started if not f.exception()]
        failed = [f.exception() for f in started if f.exception()]
        if failed:          # undone in `finally`, whatever did go in
            raise failed[0]
        expected = f"{incident.expect_class} ({incident.expect_service})"
        wait_s = max(10.0, 3 * incident.within_s)
        match = watcher.wait_event("alarm", fault_t, wait_s, cls=incident.expect_class,
                                   service=incident.expect_service)
        if match is None:
            result.problems.append(f"no {expected} alarm within {wait_s:.0f}s")
        else:
            result.detected, result.detect_s = match.label, round(match.t - fault_t, 2)
            if result.detect_s > incident.within_s:
                result.problems.append(f"detected in {result.detect_s:.2f}s, more than the "
                                       f"bound {incident.within_s:g}s")
        if incident.drift:
            _expect_drift(watcher, incident, fault_t, result)
        time.sleep(incident.hold_s)
        noisy = [e.label for e in watcher.recorded()[0] if e.kind == "alarm" and e.t >= fault_t
                 and e.alarm is not None and e.alarm.service in incident.quiet]
        if noisy:
            result.problems.append(f"alarms on services that should stay quiet: {noisy}")
        if restore and incident.restore == REVERT:
            restore_t = watcher.mark("restore", "restore: edge drift --revert").t
            progress("replay: edge drift --revert")
            reverted = drift.revert(lab.stack, contract, backend, hold_lock=False)
            _forget(injected, state_dir)
            injected = []
            if not reverted.ok:
                result.problems.append(f"edge drift --revert failed: "
                                       f"{reverted.found.errors or reverted.failing}")
        elif restore:
            restore_t = _restore(watcher, injected, lab, progress, state_dir)
        if restore:
            green = watcher.wait_event("green", restore_t, RECOVER_WAIT_S)
            if green:
                result.recover_s = round(green.t - restore_t, 2)
            quiet = green is not None and watcher.wait_quiet(CLEAR_WAIT_S)
            result.green_after = quiet and all(r.ok for r in settle(flows, 20.0))
            if green and not quiet:
                result.problems.append("alarms still raised after the restore: "
                                       + "; ".join(map(str, watcher.active())))
            elif not result.green_after:
                result.problems.append(f"the lab is not green after the restore (down: "
                                       f"{', '.join(watcher.down()) or 'a must-block flow'})")
        else:               # left in place on purpose: recorded for `edge fault clear`
            injected = []
    finally:
        if injected:        # an error halfway: never leave the lab broken
            _restore(watcher, injected, lab, progress, state_dir)
        watcher.stop()
        result.events, result.samples = watcher.recorded()
    return result


def _expect_drift(watcher: Watcher, incident: Incident, fault_t: float,
                  result: ReplayResult) -> None:
    """Wait for a DRIFT alarm naming every node the incident expects (the alarm is raised
    again, longer, as the digests show more of what was done)."""
    deadline = time.monotonic() + max(10.0, 3 * incident.drift_within_s)
    while time.monotonic() < deadline:
        named = [e for e in watcher.recorded()[0] if e.kind == "alarm" and e.t >= fault_t
                 and e.alarm is not None and e.alarm.cls == DRIFT
                 and all(any(f.startswith(f"{node}: ") for f in e.alarm.flows)
                         for node in incident.drift)]
        if named:
            result.drift, result.drift_s = named[0].label, round(named[0].t - fault_t, 2)
            if result.drift_s > incident.drift_within_s:
                result.problems.append(f"drift named in {result.drift_s:.2f}s, more than the "
                                       f"bound {incident.drift_within_s:g}s")
            return
        time.sleep(0.1)
    result.problems.append(f"no DRIFT alarm naming {', '.join(incident.drift)}")


def _forget(undone: list[faults.Fault], state_dir: Path | None) -> None:
    """The records of faults that are no longer in place."""
    if state_dir is not None:
        store = StackState(state_dir)
        for fault in undone:
            store.forget_fault(fault)


def _restore(watcher: Watcher, injected: list[faults.Fault], lab: Lab,
             progress: Progress, state_dir: Path | None = None) -> float:
    """Undo the injected faults, last first, forgetting each record; returns the restore's
    watch time."""
    t = watcher.mark("restore", "restore: undo every fault").t
    progress("replay: restoring")
    while injected:
        fault = injected.pop()
        faults.undo(fault, lab)
        _forget([fault], state_dir)
    return t
