"""Every incident of the catalog (replays.yaml) replayed on the session's lab: the watcher raises
the expected alarm class on the expected service while the fault holds, stays quiet on the
services the incident spares, and the lab is green again afterwards. A quiet run raises nothing.

Order and kind only, no stop-watch: how many seconds detection takes on this machine (each
incident's `within_s`, the product's promise) is bench/watch.py's to measure, over several runs,
and it fails when run_replay reports a bound exceeded. One run on a shared, busy machine cannot
tell a slow watcher from a slow moment.
"""

from __future__ import annotations

import time

import pytest

from edge.engines import stack
from edge.lab.events import Event
from edge.lab.watch import Watcher
from edge.model.contract import expand, load_contract
from edge.workflow.replay import load_catalog, run_replay
from tests.lab_fixtures import ROOT, Lab

CONTRACT = load_contract(ROOT / "contract.yaml")
CATALOG = load_catalog(ROOT / "replays.yaml")
QUIET_ROUNDS = 100          # probes of every flow the quiet lab must pass without an alarm
QUIET_WAIT_S = 120.0        # ...at most this long (100 rounds take about 20 s at 0.2 s)


def first(events: list[Event], kind: str, after: float = float("-inf")) -> Event:
    found = next((e for e in events if e.kind == kind and e.t >= after), None)
    assert found, f"no {kind} event after {after}: {events}"
    return found


def service_of(alarm: Event) -> str:
    """The service an alarm is raised for: its label reads 'CLASS (service): flows'."""
    return alarm.label.split(":")[0].rsplit("(", 1)[1].rstrip(")")


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_incident_is_detected_and_the_lab_recovers(lab: Lab, name: str) -> None:
    incident = CATALOG[name]
    result = run_replay(incident, lab.view, CONTRACT, progress=lambda _: None,
                        backend=stack.Backend(state=lab.state))
    assert result.detected.startswith(f"{incident.expect_class} ({incident.expect_service})"), \
        result.problems
    assert result.green_after, result.problems
    # An incident typed by hand is named too: a DRIFT alarm naming every node it touched.
    assert result.drift or not incident.drift, result.problems
    fault = first(result.events, "fault")
    alarm = next(e for e in result.events
                 if e.kind == "alarm" and e.t >= fault.t and e.label == result.detected)
    restore = first(result.events, "restore", fault.t)
    green = first(result.events, "green", restore.t)
    # The expected alarm came after the fault and while it held; green came back after the undo.
    assert fault.t <= alarm.t < restore.t <= green.t, result.events
    noisy = [e.label for e in result.events if e.kind == "alarm" and fault.t <= e.t < restore.t
             and service_of(e) in incident.quiet]
    assert noisy == [], "alarms on services the incident spares"


def test_a_quiet_lab_raises_no_alarm(lab: Lab) -> None:
    """As long as every flow takes QUIET_ROUNDS probes (counted, not timed)."""
    with Watcher(expand(CONTRACT, lab.view), CONTRACT) as watcher:
        assert watcher.wait_green(15.0), watcher.down()
        since = watcher.now()
        deadline = time.monotonic() + QUIET_WAIT_S
        while True:
            rounds = {flow.name: 0 for flow in watcher.flows}
            for sample in list(watcher.samples):
                if sample.t >= since:
                    rounds[sample.flow] += 1
            if min(rounds.values()) >= QUIET_ROUNDS or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert min(rounds.values()) >= QUIET_ROUNDS, f"too few probes in {QUIET_WAIT_S:g}s: {rounds}"
    alarms = [e.label for e in watcher.events if e.kind == "alarm"]
    assert alarms == []
