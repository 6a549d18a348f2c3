"""The converge itself: every host configured, and a second run changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge import configure
from tests.conftest import ROOT, Lab


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


def test_inventory_graph_works_for_the_stack(lab: Lab) -> None:
    """`ansible-inventory --graph` on the dynamic inventory, as a user runs it for any stack."""
    env = os.environ | {"EDGE_STACK": lab.stack, "EDGE_STATE": str(lab.state)}
    graph = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i",
                            str(ROOT / "inventory" / "edge_stack.py"), "--graph"],
                           env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for group in ("@role_border:", "@role_loadbalancer:", "@role_paas:", "@tier_dns:"):
        assert group in graph, graph
    assert all(f"|--{node}" in graph for node in lab.outputs["nodes"]), graph
