"""`edge` interrupted or killed at the points where it has children at work or the lab is being
changed, on the session's lab: afterwards no process it started is left, the next command
recovers what the kill left and succeeds, the lab is green or says exactly how it was left and the
way back, and no daemon is half-configured.

The kill points (each a test, with SIGTERM, what `kill` sends and Ctrl-C's path, and SIGKILL,
where nothing runs in edge: the kernel's parent-death signal and the next command must do it;
SIGKILL only where SIGTERM takes no path of its own, see KILL_ONLY):
`edge converge`; `edge up` during `pulumi up`; `pulumi` itself SIGKILLed under `edge up` (its
stale lock recovered by the next command); `edge watch` with its probe agents; `edge replay`
while it holds the faults; `edge fault inject` while it injects; `edge apply` during its converge,
its watchdog and its rollback; `edge preview` during the staging stack's converge; a `pytest` run
of a lab suite: 11 points, 19 cases.

After each: `settled` says every daemon of every node runs the file on its disk
(edge/workflow/daemons.py) and, after a command that writes the live stack's configuration, every
file is the one of the stack's recorded revision (`edge drift`: the revision's playbook in check
mode finds nothing to change, and nothing runs unlike its records), and `edge verify` is green.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from edge.engines import cleanup, processes, stack
from edge.model.plan import LABEL_RUN, LABEL_STACK
from edge.model.state import INJECTING, StackState
from edge.workflow import daemons, drift
from tests.cli.conftest import ROOT
from tests.lab_fixtures import STAGING, TEST_LABELS, Lab, remove_leftovers

pytestmark = pytest.mark.lab
SIGNALS = pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
# Where edge's SIGTERM path does nothing of its own (it stops the converge under way and leaves
# the interrupted record, as test_converge[term] and test_apply_during_its_rollback[term] show)
# only SIGKILL, where nothing of edge runs, is tried: each such case cost 1.5-2.3 min of CI.
KILL_ONLY = pytest.mark.parametrize("signum", [signal.SIGKILL], ids=["kill"])


class Edge:
    """`edge ARGS --stack STACK` in the background, on the lab's state; its stderr lines kept
    as they come (what phase it is in)."""

    def __init__(self, lab: Lab, *args: str, stack_name: str | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", *args, "--stack", stack_name or lab.stack],
            cwd=ROOT, env={**os.environ, "EDGE_STATE": str(lab.state)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.mark = processes.owner_mark(self.proc.pid)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def said(self, words: str) -> bool:
        return any(words in line for line in self.lines)

    def running(self, word: str, on: str | None = None) -> bool:
        """Whether a process it started, with `word` in its command line, runs (`on`: for that
        stack: its command line or its EDGE_STACK names it)."""
        for child in processes.leftovers(self.mark):
            try:
                argv = Path(f"/proc/{child.pid}/cmdline").read_bytes().decode(errors="replace")
                env = Path(f"/proc/{child.pid}/environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if word in argv and (on is None or f"EDGE_STACK={on}\0" in env
                                 or f"\0{on}\0" in argv):
                return True
        return False

    def kill_when(self, what: str, condition: Callable[[], bool], signum: int) -> None:
        wait_for(what, lambda: condition() or self.proc.poll() is not None, 600)
        assert self.proc.poll() is None, f"edge ended before {what}:\n" + "".join(self.lines)
        os.kill(self.proc.pid, signum)
        self.proc.wait(timeout=180)

    def nothing_left(self) -> None:
        """No process edge started outlives it: a SIGKILLed edge's children get SIGINT from the
        kernel, or are stopped by the next command (ansible-runner's pty session is beyond the
        parent-death signal)."""
        wait_for("edge's children to stop", lambda: not processes.leftovers(self.mark), 60)


def edge(lab: Lab, *args: str, stack_name: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "edge.cli", *args, "--stack",
                           stack_name or lab.stack], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "EDGE_STATE": str(lab.state)}, timeout=1200)
    return proc


def succeeds(lab: Lab, *args: str, stack_name: str | None = None) -> str:
    """Run `edge ARGS`; it must succeed. Returns its stderr (what it recovered, warned...)."""
    proc = edge(lab, *args, stack_name=stack_name)
    assert proc.returncode == 0, f"`edge {' '.join(args)}`:\n{proc.stdout[-3000:]}" \
                                 f"{proc.stderr[-3000:]}"
    return proc.stderr


def wait_for(what: str, condition: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def no_pulumi_lock(state: Path) -> bool:
    locks = state / "backend" / ".pulumi" / "locks"
    return not locks.is_dir() or not any(locks.rglob("*.json"))


def half_changed(lab: Lab, stack_name: str | None = None) -> str:
    """Right after a kill: the daemons that do not run their files. Allowed only while the stack
    carries an interrupted record (the explicit state, with the way back)."""
    found = daemons.check(lab.view)
    record = StackState.of(lab.state, stack_name or lab.stack).interrupted()
    assert not found or record is not None, \
        "half-configured daemons and no interrupted record:\n" + "\n".join(map(str, found))
    return f"{len(found)} half-configured" + (", interrupted record" if record else "")


def settled(lab: Lab, files: bool = True) -> None:
    """Zero half-configured daemons, every file the recorded revision's, the contract green,
    nothing left in the backend. `files=False` after commands that write no configuration on
    the live stack (watch, fault, replay, a preview): their files cannot have moved; and when
    the command that recovered was itself a whole converge of the recorded revision (converge,
    up) and succeeded: the check would only converge the same revision again in check mode
    (test_converge.py's second converge). That check (a check-mode converge of every host) is
    the slowest step of this module; it stays where the way back is another command's (apply)."""
    assert not (found := daemons.check(lab.view)), "\n".join(map(str, found))
    if files:
        report = drift.check(lab.stack, stack.Backend(state=lab.state))
        assert report.exit_code == 0, report.render()
    succeeds(lab, "verify")
    assert no_pulumi_lock(lab.state), "a pulumi lock is left"
    assert StackState.of(lab.state, lab.stack).interrupted() is None
    assert not StackState.of(lab.state, lab.stack).faults()


@pytest.fixture
def outcome(record_property) -> Callable[[str], None]:
    """What the test saw, for the outcome table (the JUnit report's properties)."""
    return lambda text: record_property("outcome", text)


@SIGNALS
def test_converge(lab: Lab, signum: int, breaks_the_lab: None, outcome) -> None:
    run = Edge(lab, "converge")
    run.kill_when("ansible-playbook", lambda: run.running("ansible-playbook"), signum)
    seen = half_changed(lab)
    said = succeeds(lab, "converge")
    run.nothing_left()
    settled(lab, files=False)
    outcome(f"{seen}; next converge ok" + ("; it recovered: " + said.split("recovered:", 1)[1]
                                           [:80] if "recovered:" in said else ""))


@SIGNALS
def test_up_during_pulumi_up(lab: Lab, signum: int, breaks_the_lab: None, outcome) -> None:
    """Pulumi is cancelled with SIGINT and allowed to finish its step: no lock is left, no
    pending operation, and the next `edge up` brings the lab back green."""
    run = Edge(lab, "up", "--force")
    run.kill_when("pulumi up", lambda: run.running("pulumi"), signum)
    lock = not no_pulumi_lock(lab.state)
    pending = stack.pending_operations(stack.checkpoint(lab.stack, stack.Backend(lab.state)))
    said = succeeds(lab, "up")
    run.nothing_left()
    settled(lab, files=False)
    outcome(f"lock left: {lock}, pending operations: {len(pending)}; next up ok"
            + ("; it recovered them" if "recovered:" in said else ""))


def test_pulumi_itself_killed_leaves_what_the_next_command_recovers(
        lab: Lab, breaks_the_lab: None, outcome) -> None:
    """Pulumi SIGKILLed under a running `edge up` (the machine's OOM killer, a reset): its lock
    file stays, naming a pulumi that is gone, with whatever operations it had under way. The
    next command removes the lock, settles the operations, and says so."""
    run = Edge(lab, "up", "--force")
    wait_for("pulumi up", lambda: run.running("\0up\0") or run.proc.poll() is not None, 600)
    [pulumi] = [p for p in processes.leftovers(run.mark) if p.pid == p.pgid
                and "pulumi" in p.command]
    wait_for("pulumi's lock", lambda: not no_pulumi_lock(lab.state))
    os.killpg(pulumi.pgid, signal.SIGKILL)
    assert run.proc.wait(timeout=300) == 2, "".join(run.lines)
    assert stack.stale_locks(lab.stack, stack.Backend(lab.state)), "no stale lock was left"
    pending = stack.pending_operations(stack.checkpoint(lab.stack, stack.Backend(lab.state)))
    said = succeeds(lab, "up")
    assert "recovered: removed the lock of a pulumi that is gone" in said, said
    run.nothing_left()
    settled(lab, files=False)
    outcome(f"edge up exit 2; stale lock and {len(pending)} pending operation(s) left; next up "
            "recovered them and said so")


@SIGNALS
def test_watch_leaves_no_probe_agent(lab: Lab, signum: int, docker_client, outcome) -> None:
    run = Edge(lab, "watch", "--seconds", "120")
    container = docker_client.containers.get(lab.container("client"))

    def agents() -> int:
        top = container.top(ps_args="-eo pid,args")["Processes"] or []
        return sum("python3 -c" in " ".join(row) for row in top)

    run.kill_when("the probe agent", lambda: agents() > 0, signum)
    said = succeeds(lab, "status")
    if signum == signal.SIGKILL:
        # The watcher had no chance to stop its agents: the next command does, and says so.
        assert "stopped a leftover of a killed edge command" in said, said
    wait_for("the probe agent to stop", lambda: agents() == 0, 30)
    run.nothing_left()
    settled(lab, files=False)
    outcome("agents stopped " + ("by the next command" if signum == signal.SIGKILL
                                 else "by edge on its way out"))


def _fault_kill(lab: Lab, run: Edge, signum: int, active: bool) -> str:
    """Kill `run` once it recorded a fault (as soon as the record appears: while it injects;
    `active`: once the fault is in place). Every fault in place is recorded (a SIGTERMed replay
    may undo and forget its own on the way out), and `edge fault clear` undoes them."""
    store = StackState.of(lab.state, lab.stack)
    run.kill_when("the fault record", lambda: any(
        f.status != INJECTING or not active for f in store.faults()), signum)
    recorded = ", ".join(f"{f.kind} {f.target} [{f.status}]" for f in store.faults())
    succeeds(lab, "fault", "clear")
    run.nothing_left()
    settled(lab, files=False)
    return f"recorded: {recorded or 'none (undone by the replay)'}; fault clear ok"


@SIGNALS
def test_fault_inject_while_it_injects(lab: Lab, signum: int, breaks_the_lab: None,
                                       outcome) -> None:
    outcome(_fault_kill(lab, Edge(lab, "fault", "inject", "stop", "lb2"), signum, False))


@SIGNALS
def test_replay_while_it_holds_the_faults(lab: Lab, signum: int, breaks_the_lab: None,
                                          outcome) -> None:
    outcome(_fault_kill(lab, Edge(lab, "replay", "partial-dns", "--hold", "60"), signum, True))


def _apply_kill(lab: Lab, tmp_path: Path, signum: int, change: str, when: str,
                condition: Callable[[Edge], bool]) -> str:
    """A forced apply killed at `when`: an interrupted record names the way back; the next
    command says so; the way back brings the lab back and clears it."""
    path = tmp_path / "change.yaml"
    path.write_text(change)
    run = Edge(lab, "apply", str(path), "--force")
    run.kill_when(when, lambda: condition(run), signum)
    seen = half_changed(lab)
    store = StackState.of(lab.state, lab.stack)
    record = store.interrupted()
    if record is None and signum == signal.SIGTERM:
        # SIGTERM after the converge: edge ended what it was doing (the watchdog's verdict and
        # any rollback) and cleared its record on the way out: nothing may be half-changed.
        run.nothing_left()
        settled(lab)
        return f"{seen}; edge finished the apply on SIGTERM and left no record; settled"
    assert record is not None and "interrupted" in record.what + record.state
    status = edge(lab, "status")
    run.nothing_left()
    assert "half-changed" in status.stderr and record.way_back in status.stderr, status.stderr
    back = record.way_back.split("  ")[0].split()
    assert back[:2] == ["edge", "converge"], record.way_back
    succeeds(lab, *back[1:-2])
    settled(lab)
    return f"{seen}; status names `{' '.join(back)}`; it brings the lab back"


TTL = "description: interrupted TTL change\nvars: {dns_ttl: 421}\n"
WRONG_BIND = ROOT / "changes" / "examples" / "lb-wrong-bind.yaml"


@KILL_ONLY
def test_apply_during_its_converge(lab: Lab, tmp_path: Path, signum: int, breaks_the_lab: None,
                                   outcome) -> None:
    outcome(_apply_kill(lab, tmp_path, signum, TTL, "the apply's converge",
                        lambda run: run.running("ansible-playbook")))


@SIGNALS
def test_apply_during_its_watchdog(lab: Lab, tmp_path: Path, signum: int, breaks_the_lab: None,
                                   outcome) -> None:
    """Killed after the converge, while the watchdog verifies the change."""
    seen: list[bool] = []

    def verifying(run: Edge) -> bool:
        if run.running("ansible-playbook"):
            seen.append(True)
            return False
        return bool(seen)

    outcome(_apply_kill(lab, tmp_path, signum, TTL, "the apply's watchdog", verifying))


@SIGNALS
def test_apply_during_its_rollback(lab: Lab, tmp_path: Path, signum: int, breaks_the_lab: None,
                                   outcome) -> None:
    outcome(_apply_kill(lab, tmp_path, signum, WRONG_BIND.read_text(), "the rollback",
                        lambda run: run.said("rolling back") and run.running("ansible-playbook")))


def _preview_kill(lab: Lab, signum: int, word: str) -> str:
    """A preview killed while it brings the staging stack to the live revision: the live stack
    is untouched, and the next preview on the same staging stack succeeds."""
    run = Edge(lab, "preview", str(ROOT / "changes" / "examples" / "dns-ttl.yaml"), "--staging",
               STAGING)
    run.kill_when(f"the staging stack's {word.strip(chr(0))}", lambda: run.running(word, STAGING),
                  signum)
    said = succeeds(lab, "preview", str(ROOT / "changes" / "examples" / "dns-ttl.yaml"),
                    "--staging", STAGING)
    run.nothing_left()
    settled(lab, files=False)
    return "next preview ok" + ("; it recovered: " + said.split("recovered:", 1)[1][:80]
                                if "recovered:" in said else "")


@pytest.fixture(scope="module")
def emptied_staging(staging: stack.Backend) -> Iterator[stack.Backend]:
    """The session's staging stack, destroyed at this module's end (whatever the kills left,
    the next preview brings up new containers); the session forgets it."""
    yield staging
    stack.destroy(STAGING, staging, stream=False)


@KILL_ONLY
def test_preview_during_staging_converge(lab: Lab, emptied_staging: stack.Backend, signum: int,
                                         breaks_the_lab: None, outcome) -> None:
    outcome(_preview_kill(lab, signum, "ansible-playbook"))


@SIGNALS
def test_a_killed_lab_suite_leaves_nothing_the_next_run_keeps(
        lab: Lab, signum: int, docker_client: docker.DockerClient, outcome) -> None:
    """A `pytest` run of a lab suite killed while its objects exist: the next run (here, this
    one's own start-up step, remove_leftovers) removes every object of the dead run."""
    suite = Edge.__new__(Edge)
    suite.proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/lab/test_docker_provider.py"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env=os.environ)
    suite.mark, suite.lines = processes.owner_mark(suite.proc.pid), []
    run = f"{suite.proc.pid}.{processes.owner_mark(suite.proc.pid).split(':')[1]}@"

    def objects() -> list[dict[str, str]]:
        return [labels for labels in cleanup.labels_found(TEST_LABELS, docker_client)
                if labels.get(LABEL_RUN, "").startswith(run)
                and not labels.get(LABEL_STACK, "").startswith("test-run")]

    suite.kill_when("the suite's objects", lambda: bool(objects()), signum)
    left = len(objects())
    # The next run's start-up step, as a run of its own: this run (alive) keeps its lab.
    remove_leftovers(docker_client, me="the-next-run")
    assert objects() == [], objects()
    assert docker_client.containers.get(lab.container("client")).status == "running"
    outcome(f"{left} object(s) of the killed run; all removed by the next run's clean-up")
