"""The converge itself: every host configured, and a second run changes nothing."""

from __future__ import annotations

from edge import configure
from tests.conftest import Lab


def test_first_converge_configured_every_node(lab: Lab) -> None:
    if lab.converge is None:   # EDGE_TEST_REUSE: the stack was converged outside this session
        lab = Lab(lab.stack, lab.outputs, configure.converge(lab.stack, lab.state, progress=None),
                  lab.state)
    assert lab.converge.ok, lab.converge.errors
    assert set(lab.converge.hosts) == set(lab.outputs["nodes"])


def test_second_converge_changes_nothing(lab: Lab) -> None:
    again = configure.converge(lab.stack, lab.state, progress=None)
    assert again.ok, again.errors
    changed = {host: r.changed for host, r in again.hosts.items() if r.changed}
    assert changed == {}, f"not idempotent: {changed}; diffs: {again.diffs}"
