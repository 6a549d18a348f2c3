"""edge/model/state.py without a lab: atomic private writes, one clear error per damaged file, the
writer lock across processes, read-modify-write that loses nothing, and faults recorded before
they are injected."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path
from typing import Iterator

import pytest

from edge.lab import faults
from edge.model.lab import Lab, Node
from edge.model.revision import Revision, load_live
from edge.model.state import (
    ACTIVE,
    INJECTING,
    AuditEvent,
    FaultRecord,
    LiveRecord,
    PreviewRecord,
    StackLocked,
    StackState,
    StagingRecord,
    StateError,
    stack_lock,
)

LIVE = LiveRecord("a" * 40, {"dns_ttl": 60}, ("ns1",), "0123456789abcdef", "up")


@pytest.fixture
def store(tmp_path: Path) -> StackState:
    return StackState.of(tmp_path / ".edge", "lab")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- records and atomic writes --------------------------------------------------------------------

def test_every_record_reads_back_as_written(store: StackState) -> None:
    preview = PreviewRecord("d" * 16, "SAFE", LIVE.id, "a change", [], ["ns1"], "report/x")
    store.save_live(LIVE)
    store.save_preview(preview)
    store.save_staging(StagingRecord(LIVE.id, LIVE.id, ["lb1"]))
    assert store.live() == LIVE
    assert store.preview(preview.digest) == preview and store.preview("e" * 16) is None
    assert store.staging() == StagingRecord(LIVE.id, LIVE.id, ["lb1"])
    assert load_live(store.dir.parent.parent, "lab") == Revision(LIVE.tree, LIVE.vars, LIVE.stop)


def test_nothing_recorded_reads_as_nothing(store: StackState) -> None:
    assert (store.live(), store.staging(), store.faults(), store.audit()) == (None, None, [], [])
    assert not store.dir.exists(), "reading creates nothing"


@pytest.mark.parametrize("fails", ["replace", "fsync"])
def test_a_failed_write_leaves_the_old_record_and_no_partial_file(
        store: StackState, monkeypatch: pytest.MonkeyPatch, fails: str) -> None:
    store.save_live(LIVE)

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fails, broken)
    with pytest.raises(OSError, match="No space left"):
        store.save_live(LiveRecord("b" * 40, how="apply"))
    monkeypatch.undo()
    assert store.live() == LIVE
    assert sorted(p.name for p in store.dir.iterdir()) == ["live.json"]


def test_files_are_0600_and_folders_0700_whatever_the_umask(store: StackState) -> None:
    old = os.umask(0)
    try:
        store.save_live(LIVE)
        store.save_preview(PreviewRecord("d" * 16, "SAFE", LIVE.id))
        store.add_fault(FaultRecord("stop", "ns1"))
        store.append_audit(AuditEvent("lab", "apply"))
        with store.lock("testing"):
            pass
    finally:
        os.umask(old)
    root = store.dir.parent.parent
    assert {mode(d) for d in (root, root / "stacks", store.dir, store.dir / "previews")} == {0o700}
    assert {p.name: mode(p) for p in store.dir.iterdir() if p.is_file()} == {
        name: 0o600 for name in ("live.json", "faults.json", "audit.jsonl", "writer.lock",
                                 "state.lock")}
    assert mode(store.dir / "previews" / f"{'d' * 16}.json") == 0o600


# --- damaged files --------------------------------------------------------------------------------

def test_a_truncated_record_is_one_error_with_the_repair(store: StackState) -> None:
    store.save_live(LIVE)
    path = store.dir / "live.json"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(StateError, match=r"live\.json: is not valid JSON .*line \d+ column \d+.*"
                                         r"Remove it and run `edge up --stack lab`"):
        store.live()
    path.write_bytes(b"")
    with pytest.raises(StateError, match=r"live\.json: is empty .*edge up --stack lab"):
        store.live()


def test_a_record_of_the_wrong_shape_names_the_field(store: StackState) -> None:
    store.save_preview(PreviewRecord("d" * 16, "SAFE", LIVE.id))
    path = store.dir / "previews" / f"{'d' * 16}.json"
    path.write_text(path.read_text().replace('"verdict"', '"verdikt"'))
    with pytest.raises(StateError, match=r"field 'verdict' is missing\. Remove it and run "
                                         r"`edge preview`"):
        store.preview("d" * 16)
    path.write_text(path.read_text().replace('"verdikt"', '"verdict"')
                    .replace('"hosts": []', '"hosts": "ns1"'))
    with pytest.raises(StateError, match="field 'hosts' is \"ns1\", not a JSON list of strings"):
        store.preview("d" * 16)


def test_a_damaged_fault_list_says_its_faults_cannot_be_undone(store: StackState) -> None:
    store.add_fault(FaultRecord("stop", "ns1"))
    path = store.dir / "faults.json"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(StateError, match=r"faults\.json: is not valid JSON.*can no longer be "
                                         r"undone by `edge fault clear`"):
        faults.active(store.dir)


def test_a_line_cut_short_in_the_audit_log_is_named_and_the_next_one_stays_whole(
        store: StackState) -> None:
    store.append_audit(AuditEvent("lab", "apply", {"outcome": "applied"}))
    path = store.dir / "audit.jsonl"
    path.write_bytes(path.read_bytes()[:-10])          # a crash in the middle of a line
    store.append_audit(AuditEvent("lab", "apply", {"outcome": "refused"}))
    assert path.read_text().splitlines()[1].endswith('"outcome": "refused"}')
    with pytest.raises(StateError, match=r"audit\.jsonl:1: is not valid JSON.*move the file "
                                         "aside"):
        store.audit()


# --- the writer lock ------------------------------------------------------------------------------

def _hold(state: Path, held: multiprocessing.Event, release: multiprocessing.Event) -> None:
    with stack_lock(state, "lab", "applying change abc"):
        held.set()
        release.wait(10)


def _take(state: Path, wait: bool, said: multiprocessing.Queue) -> None:
    try:
        with stack_lock(state, "lab", "second writer", wait=wait, say=said.put):
            said.put(f"acquired at {time.monotonic()}")
    except StackLocked as err:
        said.put(str(err))


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[multiprocessing.Process, multiprocessing.Event]]:
    """Another process holding the lock of stack 'lab' under tmp_path until `release` is set."""
    held, release = multiprocessing.Event(), multiprocessing.Event()
    process = multiprocessing.Process(target=_hold, args=(tmp_path, held, release))
    process.start()
    assert held.wait(10)
    yield process, release
    release.set()
    process.join(10)


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path, holder) -> None:
    process, _ = holder
    said: multiprocessing.Queue = multiprocessing.Queue()
    _take(tmp_path, False, said)
    message = said.get(timeout=5)
    assert message.startswith(f"stack 'lab' is locked by pid {process.pid} (")
    assert "since " in message and "applying change abc): wait until it is done" in message


def test_a_waiting_writer_says_who_holds_it_and_gets_it_once_released(tmp_path: Path,
                                                                      holder) -> None:
    process, release = holder
    said: multiprocessing.Queue = multiprocessing.Queue()
    waiter = multiprocessing.Process(target=_take, args=(tmp_path, True, said))
    waiter.start()
    assert said.get(timeout=5).startswith(f"stack 'lab' is locked by pid {process.pid} (")
    time.sleep(0.3)
    assert said.empty(), "it waits while the holder holds the lock"
    released = time.monotonic()
    release.set()
    waiter.join(10)
    assert float(said.get(timeout=5).split()[-1]) >= released


def test_the_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="converge failed"):
        with stack_lock(tmp_path, "lab", "converging"):
            raise RuntimeError("converge failed")
    assert (StackState.of(tmp_path, "lab").dir / "writer.lock").read_text() == ""
    with stack_lock(tmp_path, "lab", "again"):
        pass


# --- read-modify-write ----------------------------------------------------------------------------

def _append_many(directory: Path, who: str, count: int) -> None:
    store = StackState(directory)
    for n in range(count):
        store.add_fault(FaultRecord("stop", f"{who}{n}"))
        store.append_audit(AuditEvent("lab", "fault", {"n": n, "who": who}))


def test_concurrent_appends_from_two_processes_lose_nothing(store: StackState) -> None:
    writers = [multiprocessing.Process(target=_append_many, args=(store.dir, who, 40))
               for who in ("a", "b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    expected = {f"{who}{n}" for who in "ab" for n in range(40)}
    assert sorted(f.target for f in store.faults()) == sorted(expected)
    assert sorted(f"{e.details['who']}{e.details['n']}" for e in store.audit()) == sorted(expected)


# --- faults: recorded before injected -------------------------------------------------------------

LAB = Lab("lab", 0, "paas.test", {}, {
    "ns1": Node("ns1", "dns", "dns", "dns", "edge-lab-ns1", "c1", {"dmz": "198.18.2.53"})})


class FakeContainer:
    status = "running"


class FakeKind:
    """A fault kind that changes nothing: it notes what was recorded when it ran, then raises
    the next error queued in `errors` (if any); undoing needs its restore data."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.seen: list[list[FaultRecord]] = []
        self.errors: list[BaseException] = []

    def inject(self, container: object, node: Node, lab: Lab, options: dict) -> dict:
        self.seen.append(faults.active(self.state_dir))
        if self.errors:
            raise self.errors.pop(0)
        return {"was": "running"}

    @staticmethod
    def undo(container: object, fault: FaultRecord, lab: Lab) -> None:
        assert fault.restore["was"] == "running"


@pytest.fixture
def fake_kind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeKind:
    kind = FakeKind(tmp_path)
    monkeypatch.setitem(faults.KINDS, "stop", faults.Kind(kind.inject, kind.undo))
    monkeypatch.setattr(faults, "_container", lambda node: FakeContainer())
    return kind


def test_a_fault_is_recorded_before_it_is_injected(tmp_path: Path, fake_kind: FakeKind) -> None:
    fault = faults.inject("stop", "ns1", LAB, state_dir=tmp_path)
    [[recorded]] = fake_kind.seen
    assert (recorded.status, recorded.kind, recorded.target, recorded.restore) == (
        INJECTING, "stop", "ns1", {})
    assert recorded.by.startswith(f"pid {os.getpid()} (") and recorded.since
    assert faults.active(tmp_path) == [fault]
    assert (fault.status, fault.restore, fault.id) == (ACTIVE, {"was": "running"}, recorded.id)
    assert faults.clear(tmp_path, LAB) == [fault] and faults.active(tmp_path) == []


def test_a_refused_injection_is_forgotten_and_a_killed_one_stays_recorded(
        tmp_path: Path, fake_kind: FakeKind) -> None:
    faults.inject("stop", "ns1", LAB, state_dir=tmp_path)
    fake_kind.errors.append(faults.FaultError("ns1 refused"))
    with pytest.raises(faults.FaultError, match="ns1 refused"):
        faults.inject("stop", "ns1", LAB, state_dir=tmp_path)
    assert [f.status for f in faults.active(tmp_path)] == [ACTIVE]
    fake_kind.errors.append(KeyboardInterrupt())        # the process stops in the middle
    with pytest.raises(KeyboardInterrupt):
        faults.inject("stop", "ns1", LAB, state_dir=tmp_path)
    interrupted = faults.active(tmp_path)[-1]
    assert interrupted.status == INJECTING and "or interrupted" in str(interrupted)
    with pytest.raises(faults.FaultError, match="never became active.*forget the fault"):
        faults.clear(tmp_path, LAB)
    assert faults.active(tmp_path)[-1] == interrupted, "what could not be undone stays recorded"
