"""The test suite's own isolation, checked without a lab: a unit run needs no Docker engine, a
run's label names a live run only while that process lives, and a test that breaks the lab is
skipped, visibly, on a user's reused stack."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab_fixtures import RUN, process_start, refuse_a_reused_stack, run_alive

ROOT = Path(__file__).resolve().parents[2]


def test_a_unit_run_needs_no_docker_engine() -> None:
    """No session fixture may reach for an engine: a unit module run on its own, with DOCKER_HOST
    at a socket that does not exist, passes (it once gave 100 errors, 0 passed)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/unit/test_timings.py"],
        cwd=ROOT, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"},
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "error" not in summary and "skipped" not in summary, summary


def test_this_run_is_alive_and_a_finished_one_is_not() -> None:
    assert run_alive(RUN)
    child = subprocess.Popen(["true"])
    started = process_start(child.pid)
    child.wait()
    assert started is not None
    assert not run_alive(f"{child.pid}.{started}@{socket.gethostname()}")


def test_a_reused_pid_does_not_make_a_run_alive() -> None:
    """The pid alone may name a new process: the start time must match too."""
    pid = os.getpid()
    assert not run_alive(f"{pid}.{int(process_start(pid)) + 1}@{socket.gethostname()}")


def test_a_run_of_another_host_counts_as_alive_and_a_foreign_label_does_not() -> None:
    """Another machine's run cannot be checked from here, so its objects are left alone; a label
    this module did not write names no live run."""
    assert run_alive(f"1.1@not-{socket.gethostname()}")
    assert not run_alive("someone-else")


def test_a_test_that_breaks_the_lab_is_skipped_on_a_reused_stack() -> None:
    with pytest.raises(pytest.skip.Exception) as skipped:
        refuse_a_reused_stack("lab")
    assert "never on stack 'lab'" in str(skipped.value) and "Unset EDGE_TEST_REUSE" in str(
        skipped.value)
    assert refuse_a_reused_stack("") is None
