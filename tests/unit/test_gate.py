"""The change gate's refusals and its lock, without a lab."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from edge.model.change import Change
from edge.model.revision import Revision
from edge.model.state import PreviewRecord, StackLocked, StackState
from edge.workflow.apply import GateRefused, check_gate, stack_lock

LIVE = Revision("a" * 40, {"x": 1})
CHANGE = Change(Path("changes/c.yaml"), "a change", {"edge_dns_ttl": 60})


def record(state: Path, verdict: str, revision: str) -> None:
    StackState.of(state, "lab").save_preview(PreviewRecord(
        CHANGE.digest, verdict, revision, CHANGE.description, ["OUTAGE: x"], ["ns1"],
        when="2026-11-26T10:00:00"))


def test_no_preview_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GateRefused, match="no preview of change .* run `edge preview"):
        check_gate(tmp_path, "lab", CHANGE, LIVE)


def test_an_unsafe_preview_is_refused(tmp_path: Path) -> None:
    record(tmp_path, "UNSAFE", LIVE.id)
    with pytest.raises(GateRefused, match="said UNSAFE: OUTAGE: x"):
        check_gate(tmp_path, "lab", CHANGE, LIVE)


def test_a_stale_preview_is_refused(tmp_path: Path) -> None:
    record(tmp_path, "SAFE", Revision("b" * 40).id)
    with pytest.raises(GateRefused, match="stale preview.*preview it again"):
        check_gate(tmp_path, "lab", CHANGE, LIVE)


def test_a_safe_preview_of_the_live_revision_passes(tmp_path: Path) -> None:
    record(tmp_path, "SAFE", LIVE.id)
    assert check_gate(tmp_path, "lab", CHANGE, LIVE).hosts == ["ns1"]


def _try_lock(state: Path, queue: multiprocessing.Queue) -> None:
    try:
        with stack_lock(state, "lab", "second apply"):
            queue.put("acquired")
    except StackLocked as err:
        queue.put(str(err))


def test_a_second_apply_is_refused_naming_the_holder(tmp_path: Path) -> None:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    with stack_lock(tmp_path, "lab", "applying change abc"):
        other = multiprocessing.Process(target=_try_lock, args=(tmp_path, queue))
        other.start()
        other.join()
        said = queue.get(timeout=5)
    assert "locked by pid" in said and "applying change abc" in said
    other = multiprocessing.Process(target=_try_lock, args=(tmp_path, queue))
    other.start()
    other.join()
    assert queue.get(timeout=5) == "acquired"
