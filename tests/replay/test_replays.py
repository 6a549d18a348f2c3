"""Every incident of the catalog (replays.yaml) replayed on the session's lab: the watcher raises
the expected alarm class within the incident's bound, stays quiet on the services the incident
spares, and the lab is green again afterwards. A quiet run raises nothing.
"""

from __future__ import annotations

import time

import pytest

from edge.contract import expand, load_contract
from edge.replay import load_catalog, run_replay
from edge.watch import Watcher
from tests.conftest import ROOT, Lab

CONTRACT = load_contract(ROOT / "contract.yaml")
CATALOG = load_catalog(ROOT / "replays.yaml")
QUIET_S = 20.0


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_incident_is_detected_and_the_lab_recovers(lab: Lab, name: str) -> None:
    incident = CATALOG[name]
    result = run_replay(incident, lab.outputs, CONTRACT, progress=lambda _: None)
    assert result.detected.startswith(f"{incident.expect_class} ({incident.expect_service})"), \
        result.problems
    assert result.detect_s is not None and result.detect_s <= incident.within_s
    assert result.green_after and result.recover_s is not None
    assert result.ok, result.problems


def test_a_quiet_lab_raises_no_alarm(lab: Lab) -> None:
    with Watcher(expand(CONTRACT, lab.outputs), CONTRACT) as watcher:
        assert watcher.wait_green(15.0), watcher.down()
        time.sleep(QUIET_S)
    alarms = [e.label for e in watcher.events if e.kind == "alarm"]
    assert alarms == []
    expected = QUIET_S / watcher.thresholds.interval_s * len(watcher.flows)
    assert len(watcher.samples) >= 0.8 * expected
