"""`edge` interrupted or killed at the points where it has children at work, on the session's lab
(t-lab): afterwards no process it started is left, the next command succeeds, and the lab is
green, or says exactly how it was left and the way back.

The kill points: the converge (ansible-playbook and its forks), `pulumi up` (Pulumi must be
cancelled the way its CLI expects, leaving no lock), the watcher's probe agents, the hold of a
replay (faults recorded, `edge fault clear` restores), and a forced apply's converge (an
interrupted-apply record, the way back named by the next command). Each with SIGTERM (what `kill`
sends; Ctrl-C takes the same path) and SIGKILL (nothing runs in edge: the kernel's parent-death
signal and the next command's clean-up must do it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.engines import processes
from edge.model.state import StackState
from tests.cli.conftest import ROOT
from tests.lab_fixtures import Lab

pytestmark = pytest.mark.lab


def start(lab: Lab, *args: str) -> subprocess.Popen[str]:
    """`edge ARGS --stack t-lab` in the background, on the lab's state."""
    return subprocess.Popen([sys.executable, "-m", "edge.cli", *args, "--stack", lab.stack],
                            cwd=ROOT, env={**os.environ, "EDGE_STATE": str(lab.state)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def edge(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args, "--stack", lab.stack],
                          cwd=ROOT, env={**os.environ, "EDGE_STATE": str(lab.state)},
                          capture_output=True, text=True, timeout=900)


def wait_for(what: str, condition: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def children(proc: subprocess.Popen[str], word: str, mark: str) -> list[processes.Leftover]:
    """The processes edge (`mark`) started whose command line has `word`."""
    return [p for p in processes.leftovers(mark) if word in p.command]


def kill_while(lab: Lab, proc: subprocess.Popen[str], word: str, signum: int) -> str:
    """Wait until `proc` has a child running `word`, then send `signum`; returns its mark."""
    mark = processes.owner_mark(proc.pid)
    wait_for(f"edge to start {word}", lambda: bool(children(proc, word, mark)) or
             proc.poll() is not None)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, signum)
    proc.wait(timeout=120)
    return mark


def nothing_left(mark: str, timeout_s: float = 60) -> None:
    """No process edge started outlives it (a SIGKILLed edge's children get SIGINT from the
    kernel, or are stopped by the next command)."""
    wait_for("edge's children to stop", lambda: not processes.leftovers(mark), timeout_s)


def no_pulumi_lock(lab: Lab) -> bool:
    locks = lab.state / "backend" / ".pulumi" / "locks"
    return not locks.is_dir() or not any(locks.rglob("*.json"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_converge_interrupted(lab: Lab, signum: int) -> None:
    proc = start(lab, "converge")
    mark = kill_while(lab, proc, "ansible-playbook", signum)
    if signum == signal.SIGKILL:
        # ansible-runner's pty session is beyond the parent-death signal: the next command
        # stops what is left, and says so.
        said = edge(lab, "status")
        assert said.returncode == 0, said.stderr
    nothing_left(mark)
    again = edge(lab, "converge")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert edge(lab, "verify").returncode == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["int", "term", "kill"])
def test_pulumi_up_interrupted(lab: Lab, signum: int, breaks_the_lab: None) -> None:
    """Pulumi is cancelled with SIGINT and allowed to finish its step: no lock is left, no
    pending operation, and the next `edge up` brings the lab back green."""
    proc = start(lab, "up", "--force")
    mark = kill_while(lab, proc, "pulumi", signum)
    nothing_left(mark)
    assert no_pulumi_lock(lab), "pulumi left its lock"
    again = edge(lab, "up")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_watch_interrupted_leaves_no_probe_agent(lab: Lab, signum: int,
                                                 docker_client) -> None:
    proc = start(lab, "watch", "--seconds", "60")
    container = docker_client.containers.get(lab.container("client"))

    def agents() -> int:
        top = container.top(ps_args="-eo pid,args")["Processes"] or []
        return sum("python3 -c" in " ".join(row) for row in top)

    wait_for("the probe agent", lambda: agents() > 0)
    os.kill(proc.pid, signum)
    proc.wait(timeout=60)
    if signum == signal.SIGKILL:
        # The watcher had no chance to stop its agents: the next command does, and says so.
        said = edge(lab, "status")
        assert "stopped a leftover of a killed edge command" in said.stderr, said.stderr
    wait_for("the probe agent to stop", lambda: agents() == 0, 30)


def test_replay_interrupted_keeps_its_faults_recorded(lab: Lab) -> None:
    """Killed while it holds the faults: every injected fault is recorded, so `edge fault clear`
    undoes them and the lab is green."""
    proc = start(lab, "replay", "partial-dns", "--hold", "60")
    store = StackState.of(lab.state, lab.stack)
    wait_for("the fault to be recorded", lambda: bool(store.faults()) or proc.poll() is not None)
    time.sleep(1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert store.faults(), "the replay's fault is not recorded"
    cleared = edge(lab, "fault", "clear")
    assert cleared.returncode == 0, cleared.stdout[-2000:] + cleared.stderr[-2000:]
    assert not store.faults()


@pytest.mark.parametrize("signum", [signal.SIGTERM], ids=["term"])
def test_apply_interrupted_names_the_way_back(lab: Lab, tmp_path: Path, signum: int) -> None:
    """A forced apply interrupted during its converge leaves a record of what live may run;
    the next command says so, and the way back it names brings the lab back and clears it."""
    change = tmp_path / "ttl.yaml"
    change.write_text("description: interrupted TTL change\nvars: {dns_ttl: 421}\n")
    proc = start(lab, "apply", str(change), "--force")
    mark = kill_while(lab, proc, "ansible-playbook", signum)
    nothing_left(mark)
    store = StackState.of(lab.state, lab.stack)
    record = store.interrupted()
    assert record is not None and "interrupted TTL change" in record.what
    status = edge(lab, "status")
    assert "half-changed" in status.stderr and record.way_back in status.stderr, status.stderr
    back = edge(lab, "converge")
    assert back.returncode == 0, back.stdout[-2000:] + back.stderr[-2000:]
    assert store.interrupted() is None
    assert edge(lab, "verify").returncode == 0
