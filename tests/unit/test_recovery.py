"""What a killed command leaves, found without an engine: Pulumi lock files whose holder is
gone, pending operations in a checkpoint, ansible-runner folders of a dead edge, revision trees
it left half-unpacked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from edge.engines import configure, processes, stack
from edge.model import revision
from edge.model.plan import PROJECT


def dead_pid() -> int:
    """The pid of a process that has just ended (not reused this soon)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_lock_of_a_gone_pulumi_on_this_host_is_stale() -> None:
    here = socket.gethostname()
    assert not stack.lock_holder_alive({"pid": dead_pid(), "hostname": here})
    # This process is alive but is no pulumi: the pid was reused.
    assert not stack.lock_holder_alive({"pid": os.getpid(), "hostname": here})
    assert not stack.lock_holder_alive({"hostname": here})


def test_a_lock_of_another_host_is_never_taken_for_stale() -> None:
    assert stack.lock_holder_alive({"pid": dead_pid(), "hostname": "elsewhere.invalid"})


def test_stale_locks_are_found_among_the_stack_s_only(tmp_path: Path) -> None:
    backend = stack.Backend(state=tmp_path)
    folder = tmp_path / "backend" / ".pulumi" / "locks" / "organization" / PROJECT
    content = json.dumps({"pid": dead_pid(), "hostname": socket.gethostname()})
    for name in ("mine", "other"):
        (folder / name).mkdir(parents=True)
        (folder / name / "0b0e.json").write_text(content)
    (folder / "mine" / "1c1f.json").write_text("{truncated")
    assert [p.name for p in stack.stale_locks("mine", backend)] == ["0b0e.json", "1c1f.json"]
    assert stack.stale_locks("absent", backend) == []


def test_pending_operations_of_a_checkpoint() -> None:
    doc = {"version": 3, "checkpoint": {"latest": {"pending_operations": [
        {"type": "creating", "resource": {"urn": "urn:pulumi:s::p::t::lb1",
                                          "inputs": {"name": "edge-s-lb1"}}},
        {"type": "deleting", "resource": {"urn": "urn:pulumi:s::p::t::net"}}]}}}
    assert stack.pending_operations(doc) == [
        ("creating", "urn:pulumi:s::p::t::lb1", "edge-s-lb1"),
        ("deleting", "urn:pulumi:s::p::t::net", "")]
    assert stack.pending_operations({"checkpoint": {"latest": {}}}) == []
    assert stack.pending_operations({}) == []


def test_checkpoint_is_read_plain_and_missing_is_empty(tmp_path: Path) -> None:
    backend = stack.Backend(state=tmp_path)
    assert stack.checkpoint("s", backend) == {}
    folder = tmp_path / "backend" / ".pulumi" / "stacks" / PROJECT
    folder.mkdir(parents=True)
    (folder / "s.json").write_text('{"checkpoint": {"latest": {"pending_operations": []}}}')
    assert stack.checkpoint("s", backend) == {"checkpoint": {"latest": {"pending_operations": []}}}


def test_runner_folders_of_a_dead_edge_are_leftovers(tmp_path: Path) -> None:
    dead = tmp_path / (configure.runner_prefix(f"{dead_pid()}:12345") + "abc")
    alive = tmp_path / (configure.runner_prefix() + "def")
    unmarked = tmp_path / (configure.RUNNER_PREFIX + "xyz")
    for folder in (dead, alive, unmarked):
        folder.mkdir()
    assert configure.leftover_runner_dirs(tmp_path) == [dead]
    assert processes.owner_alive(processes.owner_mark())


def test_half_unpacked_trees_of_a_gone_process_are_leftovers(tmp_path: Path) -> None:
    trees = tmp_path / "trees"
    tree = "0123abcd" * 5
    dead = trees / f".{tree}-{dead_pid()}-k3j_x9"
    alive = trees / f".{tree}-{os.getpid()}-p0q1r2"
    whole = trees / tree
    for folder in (dead, alive, whole):
        folder.mkdir(parents=True)
    assert revision.half_unpacked(tmp_path) == [dead]
    assert revision.half_unpacked(tmp_path / "nothing-here") == []
