"""The command line on the session's configured lab (t-lab): the exit codes users and scripts
rely on, through `edge` as a subprocess. 0: done and green; 1: the answer is no (an apply
rolled back); 2: refused.

`edge` is pointed at the lab's state folder through EDGE_STATE (`lab_state` checks that it
reads the lab's state there, not the checkout's).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from edge.model.revision import load_live
from edge.model.state import StackState
from edge.workflow.staged import config_digest
from tests.cli.conftest import edge, error_line, honours_edge_state
from tests.lab_fixtures import Lab

pytestmark = pytest.mark.lab


@pytest.fixture
def lab_state(lab: Lab, tmp_path: Path) -> Path:
    """The state folder `edge` must use to see t-lab."""
    assert honours_edge_state(tmp_path / "probe"), "edge ignores EDGE_STATE"
    return lab.state


def run(lab: Lab, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`edge ARGS --stack <the lab>` on the session's engine."""
    return edge(*args, "--stack", lab.stack, state=state, engine=None, timeout=900)


def test_status_and_verify_of_a_green_lab_exit_0(lab: Lab, lab_state: Path) -> None:
    status = run(lab, lab_state, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(rf"^revision: {load_live(lab.state, lab.stack).id} ", status.stdout, re.M)
    assert "active faults: none" in status.stdout
    verify = run(lab, lab_state, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_watch_of_a_green_lab_raises_nothing_and_exits_0(lab: Lab, lab_state: Path) -> None:
    proc = run(lab, lab_state, "watch", "--seconds", "3")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\d+ probes, 0 alarms raised$", proc.stderr, re.M), proc.stderr


def test_watch_of_a_lab_losing_its_load_balancers_raises_and_exits_1(
        lab: Lab, lab_state: Path, breaks_the_lab: None) -> None:
    """Both load balancers stopped: the outside loses the apps, the watch says so, exit 1."""
    try:
        for node in ("lb1", "lb2"):
            injected = run(lab, lab_state, "fault", "inject", "stop", node)
            assert injected.returncode == 0, injected.stderr
        proc = run(lab, lab_state, "watch", "--seconds", "3")
    finally:
        cleared = run(lab, lab_state, "fault", "clear")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "EXTERNAL OUTAGE" in proc.stdout, proc.stdout   # the alarms; the tally on stderr
    assert re.search(r"^\d+ probes, [1-9]\d* alarms raised$", proc.stderr, re.M), proc.stderr
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr


def test_converge_check_of_the_lab_changes_nothing_and_exits_0(lab: Lab, lab_state: Path) -> None:
    before = config_digest(lab.view)
    proc = run(lab, lab_state, "converge", "--check")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    revision = load_live(lab.state, lab.stack).id
    assert re.search(rf"^converge of '{lab.stack}' to revision {revision}: successful, \d+ "
                     r"changed, ", proc.stdout, re.M), proc.stdout[-2000:]
    assert config_digest(lab.view) == before, "check mode changed the lab"


def test_a_fault_on_a_node_that_does_not_exist_is_one_line_and_exit_2(
        lab: Lab, lab_state: Path) -> None:
    proc = run(lab, lab_state, "fault", "inject", "stop", "lb9")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "lb9" in error_line(proc)
    assert run(lab, lab_state, "fault", "list").stdout.strip() == "no active fault"


def test_up_of_the_running_lab_exits_0(lab: Lab, lab_state: Path, breaks_the_lab: None) -> None:
    proc = run(lab, lab_state, "up")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"stack '{lab.stack}' " in proc.stdout and ", converge ok, 0 of " in proc.stdout


def test_apply_without_a_preview_is_refused_with_exit_2(
        lab: Lab, lab_state: Path, tmp_path: Path, request: pytest.FixtureRequest,
        breaks_the_lab: None) -> None:
    ttl = 1000 + int(hashlib.sha256(request.node.nodeid.encode()).hexdigest(), 16) % 50000
    change = tmp_path / "change.yaml"
    change.write_text(f"description: never previewed\nvars: {{dns_ttl: {ttl}}}\n")
    before = load_live(lab.state, lab.stack)
    proc = run(lab, lab_state, "apply", str(change))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "  - no preview of change " in proc.stderr
    assert proc.stdout.startswith("REFUSED: change ")
    assert load_live(lab.state, lab.stack) == before
    assert StackState.of(lab.state, lab.stack).audit()[-1].details["outcome"] == "refused"


def test_a_forced_breaking_apply_is_rolled_back_with_exit_1(lab: Lab, lab_state: Path,
                                                           breaks_the_lab: None) -> None:
    before = load_live(lab.state, lab.stack)
    proc = run(lab, lab_state, "apply", "--force", "changes/examples/lb-wrong-bind.yaml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ROLLED-BACK (forced): change ")
    assert load_live(lab.state, lab.stack) == before
    assert run(lab, lab_state, "verify").returncode == 0


def test_fault_inject_list_and_clear(lab: Lab, lab_state: Path, breaks_the_lab: None) -> None:
    injected = run(lab, lab_state, "fault", "inject", "stop", "lb1")
    try:
        assert injected.returncode == 0, injected.stderr
        listed = run(lab, lab_state, "fault", "list")
        assert listed.returncode == 0 and listed.stdout.strip() == "stop lb1", listed.stdout
    finally:
        cleared = run(lab, lab_state, "fault", "clear")
    assert cleared.returncode == 0, cleared.stdout + cleared.stderr
    assert "undone: stop lb1" in cleared.stdout
    assert run(lab, lab_state, "fault", "list").stdout.strip() == "no active fault"


# An incident whose expected alarm cannot come: ns2 is one of two name servers, so stopping it
# loses redundancy and no outside user loses DNS. A watcher that raised EXTERNAL OUTAGE here would
# be crying wolf; a replay that reported PASS here would be lying.
WRONG_EXPECTATION = """\
replays:
  redundant-ns-down:
    description: One of two name servers stops; expected, wrongly, to be an outage.
    inject:
      - {fault: stop, node: ns2}
    expect: {class: EXTERNAL OUTAGE, service: dns, within_s: 2}
    hold_s: 1
"""


def replay(lab: Lab, state: Path, tmp_path: Path, catalog: str, incident: str,
           code: int) -> tuple[str, dict]:
    """`edge replay INCIDENT` of a catalog written here, which must exit `code`: what it printed
    and its replay.json."""
    path = tmp_path / "replays.yaml"
    path.write_text(catalog)
    proc = run(lab, state, "replay", incident, "--catalog", str(path),
               "--out", str(tmp_path / "report"))
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads((tmp_path / "report" / "replay.json").read_text())


def test_a_replay_whose_alarm_never_comes_fails_with_exit_1(
        lab: Lab, lab_state: Path, tmp_path: Path, breaks_the_lab: None) -> None:
    said, report = replay(lab, lab_state, tmp_path, WRONG_EXPECTATION, "redundant-ns-down", 1)
    assert "FAIL: redundant-ns-down: detected nothing" in said, said[-3000:]
    assert "no EXTERNAL OUTAGE (dns) alarm within 10s" in said, said[-3000:]
    # It failed as a verdict, not as an accident: the fault was undone and the lab is green.
    assert "the lab is not green" not in said
    assert run(lab, lab_state, "fault", "list").stdout.strip() == "no active fault"
    assert run(lab, lab_state, "verify").returncode == 0
    assert report["ok"] is False and report["detected"] == "", report


# An incident whose alarm must come: both name servers stop, so outside users lose DNS.
BOTH_NAME_SERVERS = """\
replays:
  both-ns-down:
    description: Both name servers stop.
    inject:
      - {fault: stop, node: ns1}
      - {fault: stop, node: ns2}
    expect: {class: EXTERNAL OUTAGE, service: dns, within_s: 5}
    hold_s: 1
"""


def test_a_replay_whose_alarm_comes_passes_with_exit_0(
        lab: Lab, lab_state: Path, tmp_path: Path, breaks_the_lab: None) -> None:
    said, report = replay(lab, lab_state, tmp_path, BOTH_NAME_SERVERS, "both-ns-down", 0)
    assert re.search(r"^PASS: both-ns-down: detected EXTERNAL OUTAGE \(dns\): .* in [\d.]+s; "
                     r"recovered in [\d.]+s$", said, re.M), said[-3000:]
    assert report["ok"] is True and report["green_after"] is True, report
    assert report["detected"].startswith("EXTERNAL OUTAGE (dns): ") and report["alarm_events"]
    assert run(lab, lab_state, "fault", "list").stdout.strip() == "no active fault"
