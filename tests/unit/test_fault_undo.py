"""Undoing a stop (or kill) fault: start the node, or restart it when a killed injection may
have left the engine stopping it (the stop goes on after its caller died, and a plain start of a
container still running is a no-op, so it would exit after the undo)."""

from __future__ import annotations

import pytest

from edge.lab import faults
from edge.model.state import ACTIVE, INJECTING, FaultRecord


class FakeContainer:
    """What the undo sees of a container: its status after a reload, and what was asked."""

    def __init__(self, status: str) -> None:
        self.status, self.asked = status, []

    def reload(self) -> None:
        self.asked.append("reload")

    def start(self) -> None:
        self.asked.append("start")

    def restart(self) -> None:
        self.asked.append("restart")


@pytest.mark.parametrize("status, fault_status, action", [
    ("exited", ACTIVE, "start"),        # the fault in place: the node is stopped
    ("exited", INJECTING, "start"),     # the injection finished before its process died
    ("running", INJECTING, "restart"),  # perhaps being stopped by the engine right now
    ("running", ACTIVE, "start"),       # undone twice: a start of a running node does nothing
])
def test_a_stopped_node_is_started_and_one_maybe_stopping_restarted(
        status: str, fault_status: str, action: str) -> None:
    box = FakeContainer(status)
    faults.KINDS["stop"].undo(box, FaultRecord("stop", "lb2", status=fault_status), None)
    assert box.asked == ["reload", action]
