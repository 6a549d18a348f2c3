"""`--staging a,b`: a preview takes a free staging stack of the pool, holding its lock."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edge.engines import stack
from edge.model.change import ChangeError
from edge.model.state import StackLocked, StackState, StagingRecord, stack_lock
from edge.workflow import preview as workflow_preview
from edge.workflow.preview import free_staging, staging_pool


@pytest.mark.parametrize("given, why", [
    ("a,,b", "a pool of different stacks"),
    ("a,a", "a pool of different stacks"),
    ("a,lab", "is the live stack itself"),
    ("lab", "is the live stack itself"),
])
def test_a_pool_is_refused_when_it_is_not_one(given: str, why: str) -> None:
    with pytest.raises(ChangeError, match=why):
        staging_pool("lab", given)


def test_a_pool_is_its_names_in_order() -> None:
    assert staging_pool("lab", "staging") == ["staging"]
    assert staging_pool("lab", " b, a") == ["b", "a"]


def test_the_first_free_stack_is_taken_and_held(tmp_path: Path) -> None:
    said: list[str] = []
    with stack_lock(tmp_path, "a", "another preview"):
        with free_staging(tmp_path, ["a", "b"], "this preview", False, said.append) as taken:
            assert taken == "b"
            with pytest.raises(StackLocked, match="stack 'b' is locked by .*this preview"):
                with stack_lock(tmp_path, "b", "a third"):
                    pass
    with stack_lock(tmp_path, "b", "now free again"):
        pass
    assert said == []


def test_a_busy_pool_is_refused_or_waited_for(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workflow_preview, "POOL_POLL_S", 0.05)
    said: list[str] = []
    held = [stack_lock(tmp_path, name, "another preview") for name in ("a", "b")]
    for lock in held:
        lock.__enter__()
    with pytest.raises(StackLocked, match=r"every staging stack of the pool \(a, b\)"):
        with free_staging(tmp_path, ["a", "b"], "this preview", False, said.append):
            pass
    freed = threading.Timer(0.3, lambda: held[1].__exit__(None, None, None))
    freed.start()
    with free_staging(tmp_path, ["a", "b"], "this preview", True, said.append) as taken:
        assert taken == "b"
    freed.join()
    held[0].__exit__(None, None, None)
    assert len(said) == 1 and "waiting for the first one freed" in said[0]


def test_a_destroyed_staging_stack_is_at_no_revision(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Its next containers are new: the next preview must configure every host of them."""
    monkeypatch.setattr(stack, "pulumi", lambda *args, **kwargs: None)
    StackState.of(tmp_path, "staging").save_staging(StagingRecord("abc", "abc", ["ns1"]))
    stack.destroy("staging", stack.Backend(state=tmp_path), stream=False)
    stack.destroy("lab", stack.Backend(state=tmp_path), stream=False)
    assert StackState.of(tmp_path, "staging").staging() == StagingRecord()
    assert not (tmp_path / "stacks" / "lab").exists()   # no record made for other stacks
