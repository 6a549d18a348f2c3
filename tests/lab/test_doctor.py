"""`edge doctor` on this machine: healthy checks pass, and what an interrupted run leaves behind
(a process of a killed edge command, a DOCKER-USER rule of a bridge that is gone) is named with
its fix, and repaired by `--fix`."""

from __future__ import annotations

import os
import subprocess
import sys

import docker

from edge.engines import processes
from edge.infra import bridge_filter
from edge.workflow import doctor
from tests.lab_fixtures import ROOT

GONE_BRIDGE = "br-edgedoctor0"


def failing(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks if not c.ok}


def test_a_machine_with_leftovers_is_named_and_fixed(docker_client: docker.DockerClient) -> None:
    # A process of an edge command that was SIGKILLed: its owner mark names a dead process.
    orphan = subprocess.Popen(["sleep", "300"], env={**os.environ,
                              processes.OWNER_ENV: "999999:1"}, start_new_session=True)
    rule = bridge_filter._rule(GONE_BRIDGE)
    subprocess.run(["iptables", "-w", "10", "-I", rule[0], "1", *rule[1:]], check=True)
    try:
        found = failing(doctor.examine())
        assert "processes" in found and f"pid {orphan.pid}" in found["processes"].detail
        assert "docker-user" in found and GONE_BRIDGE in found["docker-user"].detail
        assert all(c.fix for c in found.values()), found
        done = doctor.fix()
        assert any(str(orphan.pid) in line for line in done), done
        assert any(GONE_BRIDGE in line for line in done), done
        assert orphan.wait(timeout=10) is not None
        after = failing(doctor.examine())
        assert "processes" not in after and "docker-user" not in after, after
    finally:
        orphan.kill()
        bridge_filter.remove(GONE_BRIDGE)


def test_the_command_prints_one_line_per_check(docker_client: docker.DockerClient) -> None:
    out = subprocess.run([sys.executable, "-m", "edge.cli", "doctor"], cwd=ROOT,
                         capture_output=True, text=True)
    lines = out.stdout.splitlines()
    assert lines[0].split()[:1] == ["CHECK"], out.stdout
    names = [line.split()[0] for line in lines[1:]]
    assert names[:4] == ["engine", "swarm", "pulumi", "image"], out.stdout
    assert out.returncode in (0, 1) and "Traceback" not in out.stderr, out.stderr
    assert out.returncode == (1 if any(" FAIL " in line for line in lines[1:]) else 0)
