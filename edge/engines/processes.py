"""The host processes edge starts (pulumi, ansible-playbook and its forks): stopped the way each
expects when edge is interrupted, and found again when edge was killed before it could.

Why: Python's `subprocess.run` SIGKILLs a child 0.25 s after Ctrl-C, which leaves Pulumi's state
locked with pending operations; ansible-playbook runs in a session of its own (ansible-runner uses
a pty), so after a SIGTERM of edge its workers go on converging a live lab. Here:

- every child runs in a process group of its own, with the environment mark EDGE_OWNER naming the
  edge process (pid and start time, so a reused pid never matches) that started it;
- an interrupt (Ctrl-C, or SIGTERM, which `install_signal_handlers` turns into KeyboardInterrupt)
  sends the child's whole group SIGINT (Pulumi then cancels cleanly: it finishes the step under
  way and releases its lock), waits up to a grace period, then SIGKILLs the group;
- a child also gets SIGINT when edge dies without a word (SIGKILL), through PR_SET_PDEATHSIG;
- `leftovers()` finds the processes whose marked owner is gone, so the next command can stop them
  (`reap()`), and say so.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OWNER_ENV = "EDGE_OWNER"
# Pulumi's cancel finishes the resource step under way; a container start takes a few seconds.
GRACE_S = 30.0
_PR_SET_PDEATHSIG = 1


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot): with the pid, names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_mark(pid: int | None = None) -> str:
    """This process's mark (`pid:start`), which its children carry in EDGE_OWNER."""
    pid = pid or os.getpid()
    return f"{pid}:{_start_time(pid)}"


def owner_alive(mark: str) -> bool:
    """Whether the process a mark names still runs (a reused pid has another start time)."""
    pid, _, start = mark.partition(":")
    return pid.isdigit() and _start_time(int(pid)) == start


def marked_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with this process's owner mark."""
    return {**(os.environ if env is None else env), OWNER_ENV: owner_mark()}


def _die_with_parent() -> None:
    """In the child, before exec: SIGINT when the parent dies, whatever kills it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)


def stop_group(pgid: int, grace_s: float = GRACE_S) -> None:
    """SIGINT to a process group, then SIGKILL whatever of it is left after `grace_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run(cmd: list[str], *, env: dict[str, str], cwd: Path, capture: bool,
        grace_s: float = GRACE_S) -> subprocess.CompletedProcess[str]:
    """Run a child to its end in its own process group; on an interrupt, stop the group the way
    `stop_group` does, then let the interrupt go on."""
    pipe = subprocess.PIPE if capture else None
    with subprocess.Popen(cmd, cwd=cwd, env=marked_env(env), text=True, stdout=pipe,
                          stderr=pipe, start_new_session=True,
                          preexec_fn=_die_with_parent) as proc:
        try:
            out, err = proc.communicate()
        except BaseException:
            stop_group(proc.pid, grace_s)
            proc.wait()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@dataclass(frozen=True)
class Leftover:
    """A process an edge command started and left behind when it was killed."""

    pid: int
    pgid: int
    owner: str
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command}, started by edge {self.owner.split(':')[0]})"


def _marked(pid: int) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    prefix = f"{OWNER_ENV}=".encode()
    for item in environ:
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def leftovers(owner: str | None = None) -> list[Leftover]:
    """Marked processes whose owner is gone (or, with `owner`, those of that owner)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        mark = _marked(int(entry.name))
        if mark is None or (owner is not None and mark != owner) \
                or (owner is None and owner_alive(mark)):
            continue
        with contextlib.suppress(OSError):
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            found.append(Leftover(int(entry.name), os.getpgid(int(entry.name)), mark,
                                  command[:80] or entry.name))
    return found


def reap(found: list[Leftover], grace_s: float = 5.0) -> list[Leftover]:
    """Stop the process groups of the leftovers; returns them, for the message."""
    for pgid in sorted({p.pgid for p in found}):
        if pgid != os.getpgid(0):
            stop_group(pgid, grace_s)
    return found


@contextlib.contextmanager
def own_children_stopped(grace_s: float = GRACE_S) -> Iterator[None]:
    """Around a call that starts children edge cannot reach directly (ansible-runner's pty
    session): on an interrupt, stop every process that carries this process's mark."""
    try:
        yield
    except BaseException:
        reap(leftovers(owner_mark()), grace_s)
        raise


def install_signal_handlers() -> None:
    """SIGTERM (and SIGHUP) become KeyboardInterrupt, so a plain `kill` of edge runs the same
    clean-up as Ctrl-C instead of leaving its children running."""
    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
