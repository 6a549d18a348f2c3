"""Running `edge` as users do: a subprocess of the project's Python, `python -m edge.cli`.

Plain functions (the no-lab tests run with --noconftest and import them): every run is given its
own state folder through EDGE_STATE, and a test may point DOCKER_HOST at a socket that does not
exist, so that a command that should need no engine fails instead of touching a shared one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from edge.model.state import FaultRecord, StackState

ROOT = Path(__file__).resolve().parents[2]
NO_ENGINE = "unix:///nonexistent.sock"


def edge(*args: str, state: Path, engine: str | None = NO_ENGINE,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`edge ARGS` with EDGE_STATE=`state`, from the checkout; `engine` is DOCKER_HOST (None:
    the one this process uses)."""
    env = {**os.environ, "EDGE_STATE": str(state)}
    if engine is not None:
        env["DOCKER_HOST"] = engine
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command says on stderr (`edge: ...`): no traceback, nothing else."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge: "), proc.stderr
    return lines[0]


def honours_edge_state(state: Path) -> bool:
    """Whether `edge` reads its state from EDGE_STATE: a fault recorded only in `state` must be
    what `edge fault list` shows. Whatever the answer, the checkout's own state folder is left
    as it was (today's CLI creates the stack's folder there: removed again if it was new)."""
    stack = f"t-cli-{uuid.uuid4().hex[:8]}"
    StackState.of(state, stack).add_fault(FaultRecord("stop", "probe-node"))
    checkout = ROOT / ".edge" / "stacks" / stack
    try:
        proc = edge("fault", "list", "--stack", stack, state=state)
    finally:
        if checkout.is_dir() and not any(checkout.iterdir()):
            checkout.rmdir()
    return proc.returncode == 0 and "stop probe-node" in proc.stdout
