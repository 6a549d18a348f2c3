"""The stack writer lock (edge.model.state.stack_lock) as a refused user and a crashed writer meet it.

tests/unit/test_state.py covers a refusal and a wait, and a block that raises in the same
process. Added here: the refusal names the holder in full (pid, user@host, since when, what it
does), a writer whose block raises frees the lock for *other* processes while it lives on, and a
writer killed outright (no `finally` runs) leaves a lock the next writer takes at once.
"""

from __future__ import annotations

import getpass
import multiprocessing
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.model.state import WRITER_LOCK, StackLocked, StackState, stack_lock

WHAT = "applying change abc"


def _hold(state: Path, held: multiprocessing.Event, release: multiprocessing.Event) -> None:
    with stack_lock(state, "lab", WHAT):
        held.set()
        release.wait(10)


def _hold_until_killed(state: Path, held: multiprocessing.Event) -> None:
    """Hold the lock asleep: a process killed while waiting on a shared Event would leave that
    Event's condition expecting it, and setting the Event later would hang."""
    with stack_lock(state, "lab", WHAT):
        held.set()
        time.sleep(60)


def _raise_inside_then_live_on(state: Path, raised: multiprocessing.Event,
                               release: multiprocessing.Event) -> None:
    try:
        with stack_lock(state, "lab", "converging"):
            raise RuntimeError("the converge failed")
    except RuntimeError:
        raised.set()
        release.wait(10)        # still alive: only the block's exit can have released it


@pytest.fixture
def release() -> Iterator[multiprocessing.Event]:
    """Set at the end of the test, so every helper process ends."""
    event = multiprocessing.Event()
    yield event
    event.set()


def start(target, *args) -> multiprocessing.Process:
    process = multiprocessing.Process(target=target, args=args)
    process.start()
    return process


def test_the_refusal_names_pid_user_host_since_and_what_it_does(
        tmp_path: Path, release: multiprocessing.Event) -> None:
    held = multiprocessing.Event()
    holder = start(_hold, tmp_path, held, release)
    assert held.wait(10)
    started = time.time()
    with pytest.raises(StackLocked) as refused:
        with stack_lock(tmp_path, "lab", "a second writer"):
            pytest.fail("a second writer got the lock")
    message = str(refused.value)
    found = re.fullmatch(
        rf"stack 'lab' is locked by pid {holder.pid} \({re.escape(getpass.getuser())}@"
        rf"{re.escape(socket.gethostname())}, since (?P<since>\S+), {WHAT}\): wait until it is "
        r"done \(a second writer at the same time is refused\)", message)
    assert found, message
    since = time.mktime(time.strptime(found["since"], "%Y-%m-%dT%H:%M:%S%z"))
    assert started - 60 <= since <= started + 1, found["since"]
    assert "\n" not in message
    release.set()
    holder.join(10)


def test_a_block_that_raises_frees_the_lock_for_other_processes(
        tmp_path: Path, release: multiprocessing.Event) -> None:
    raised = multiprocessing.Event()
    writer = start(_raise_inside_then_live_on, tmp_path, raised, release)
    assert raised.wait(10)
    assert writer.is_alive()
    assert (StackState.of(tmp_path, "lab").dir / WRITER_LOCK).read_text() == "", \
        "the holder's name stays behind"
    with stack_lock(tmp_path, "lab", "the next writer"):      # refused if still held
        pass
    release.set()
    writer.join(10)


def test_a_killed_writer_leaves_a_lock_the_next_one_takes_at_once(tmp_path: Path) -> None:
    held = multiprocessing.Event()
    holder = start(_hold_until_killed, tmp_path, held)
    assert held.wait(10)
    os.kill(holder.pid, signal.SIGKILL)      # no finally: the kernel drops its flock
    holder.join(10)
    path = StackState.of(tmp_path, "lab").dir / WRITER_LOCK
    assert path.read_text().startswith(f"pid {holder.pid} ("), "a killed writer's name stays"
    with stack_lock(tmp_path, "lab", "the next writer"):
        assert path.read_text().startswith(f"pid {os.getpid()} (")
        assert path.read_text().endswith(", the next writer)")
