"""The command line as users meet it when no lab is needed: exit codes (0 done, 1 the answer is
no, 2 refused or a mistake) and one clear line for every mistake, never a traceback.

Each run gets a throw-away state folder (EDGE_STATE) and a Docker socket that does not exist:
none of these commands may need an engine. Stacks are named uniquely, so they exist in no state.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import ROOT, edge, error_line, honours_edge_state


@pytest.fixture
def state(tmp_path: Path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def absent() -> str:
    """A stack name no state folder holds."""
    return f"t-cli-absent-{uuid.uuid4().hex[:8]}"


def test_a_bad_command_line_is_argparse_usage_and_exit_2(state: Path) -> None:
    proc = edge("fault", "inject", "explode", "lb1", state=state)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "usage: edge fault inject" in proc.stderr
    assert "argument kind: invalid choice: 'explode'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_replay_without_an_incident_lists_the_catalog(state: Path) -> None:
    proc = edge("replay", state=state)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["INCIDENT", "FAULTS", "EXPECTED"]
    listed = {row.split()[0] for row in rows}
    assert "partial-dns" in listed and len(listed) == len(rows) >= 4


def test_replay_of_an_unknown_incident_names_the_known_ones(state: Path) -> None:
    proc = edge("replay", "no-such-incident", state=state)
    assert proc.returncode == 2
    line = error_line(proc)
    assert f"{ROOT / 'replays.yaml'}: no incident 'no-such-incident'. Known: " in line
    assert "partial-dns" in line


def test_replay_of_a_bad_catalog_names_its_file(state: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "replays.yaml"
    catalog.write_text("replays: [not, a, mapping]\n")
    proc = edge("replay", "--catalog", str(catalog), state=state)
    assert proc.returncode == 2
    assert error_line(proc).startswith(f"edge: {catalog}:1: ")


def test_preview_of_a_bad_change_file_names_file_line_and_field(state: Path, tmp_path: Path,
                                                                absent: str) -> None:
    change = tmp_path / "change.yaml"
    change.write_text("description: a typo\nvars: {dns_tll: 60}\n")
    proc = edge("preview", str(change), "--stack", absent, state=state)
    assert proc.returncode == 2
    line = error_line(proc)
    assert line.startswith(f"edge: {change}:2: vars.dns_tll: no role default or group_vars "
                           "defines 'dns_tll'"), line
    assert "Did you mean 'dns_ttl'?" in line


def test_preview_on_the_live_stack_itself_is_refused(state: Path, absent: str) -> None:
    proc = edge("preview", "--stack", absent, "--staging", absent, state=state)
    assert proc.returncode == 2
    assert f"--staging '{absent}' is the live stack itself" in error_line(proc)


@pytest.mark.parametrize("command", [["status"], ["verify"]], ids=["status", "verify"])
def test_a_command_on_a_stack_that_does_not_exist_says_so(state: Path, absent: str,
                                                          command: list[str]) -> None:
    proc = edge(*command, "--stack", absent, state=state)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("edge: ") and f"'{absent}'" in proc.stderr, proc.stderr


@pytest.mark.parametrize("command", [["status"], ["verify"]], ids=["status", "verify"])
def test_a_stack_that_does_not_exist_is_one_line(state: Path, absent: str,
                                                 command: list[str]) -> None:
    line = error_line(edge(*command, "--stack", absent, state=state))
    assert f"stack '{absent}'" in line and "edge up" in line, line


def test_converge_check_of_a_stack_that_does_not_exist_fails(state: Path, absent: str) -> None:
    proc = edge("converge", "--check", "--stack", absent, state=state)
    assert proc.returncode != 0, proc.stdout
    assert f"'{absent}'" in error_line(proc)


def test_edge_reads_its_state_from_edge_state(state: Path) -> None:
    assert honours_edge_state(state)


def test_up_with_a_bad_contract_is_refused_before_anything_is_made(state: Path, tmp_path: Path,
                                                                   absent: str) -> None:
    """The contract is read before the stack is made: a typo in it is exit 2 and one line, not a
    lab brought up (or an engine asked) only for the verify stage to fail."""
    contract = tmp_path / "contract.yaml"
    contract.write_text("- name: web\n")
    proc = edge("up", "--stack", absent, "--contract", str(contract), state=state)
    assert proc.returncode == 2 and proc.stdout == ""
    assert error_line(proc).startswith(f"edge: {contract}:1: the contract needs a `flows:` list")
    assert [p for p in state.rglob("*") if absent in p.name] == []


def test_watch_with_a_negative_drift_interval_is_refused(state: Path, absent: str) -> None:
    proc = edge("watch", "--stack", absent, "--drift-interval", "-5", state=state)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--drift-interval -5 is not usable" in error_line(proc)
