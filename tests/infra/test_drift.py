"""`edge drift` on the session's lab: keystrokes made by hand on live nodes are each named (node
and what) with exit 1, `edge drift --revert` brings them back with the contract green, and the
next `edge drift` finds nothing (exit 0).

Run as users run it: `python -m edge.cli` in a subprocess, with the session stack's state folder
(EDGE_STATE). Breaking the lab on purpose, it never runs on a reused stack (EDGE_TEST_REUSE); if
it fails halfway, a converge puts the lab back for the suites that follow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import docker
import pytest

from edge.engines import configure
from edge.model.scope import role_defaults
from tests.lab_fixtures import ROOT, Lab

NFT = role_defaults(ROOT / "roles", "nftables")
LB = role_defaults(ROOT / "roles", "loadbalancer")
TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Keystroke:
    """One command an operator types on a live node, and the words `edge drift` must name."""

    node: str
    argv: list[str]
    named: str


KEYSTROKES = [
    Keystroke("firewall", ["nft", "delete", "table", "inet", NFT["nftables_table"]],
              f"nftables table inet {NFT['nftables_table']}"),
    Keystroke("lb1", ["supervisorctl", "stop", "haproxy"], "program haproxy STOPPED"),
    Keystroke("lb2", ["sh", "-c", f"echo '# edited by hand' >> {LB['loadbalancer_config']}"],
              f"file {LB['loadbalancer_config']}"),
]


def edge(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """`edge ARGS` on the session's stack, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "edge.cli", *args, "--stack", lab.stack],
                          cwd=ROOT, env=os.environ | {"EDGE_STATE": str(lab.state)},
                          capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.mark.usefixtures("breaks_the_lab")
def test_keystrokes_are_named_and_reverted(lab: Lab, docker_client: docker.DockerClient) -> None:
    clean = edge(lab, "drift")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    reverted = False
    try:
        for key in KEYSTROKES:
            code, out = docker_client.containers.get(lab.container(key.node)).exec_run(key.argv)
            assert code == 0, f"{key.node}: {key.argv}: {out.decode(errors='replace')}"
        found = edge(lab, "drift")
        assert found.returncode == 1, found.stdout + found.stderr
        for key in KEYSTROKES:
            section = found.stdout.split(f"== {key.node}\n", 1)
            assert len(section) == 2, f"{key.node} not named:\n{found.stdout}"
            assert f"  {key.named}" in section[1].split("\n== ", 1)[0], \
                f"{key.node}: '{key.named}' not named:\n{found.stdout}"
        revert = edge(lab, "drift", "--revert")
        assert revert.returncode == 0, revert.stdout + revert.stderr
        assert ", 0 contract flows failing" in revert.stdout, revert.stdout
        reverted = True
        again = edge(lab, "drift")
        assert again.returncode == 0, again.stdout + again.stderr
        audit = (lab.state / "stacks" / lab.stack / "audit.jsonl").read_text().splitlines()
        assert '"action": "drift-revert"' in audit[-1], audit[-1]
    finally:
        if not reverted:   # leave the lab to the next suites as green as a converge makes it
            configure.converge(lab.stack, lab.state, progress=None)
