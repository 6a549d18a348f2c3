"""One lab over two Docker engines joined in a Swarm: the reference lab split as issue 13 says.

A second engine runs here in a container of the `engine` image (edge/engines/swarm.py), joined to
a Swarm of which this machine's engine is the manager, both on a project bridge of slot SLOT's
spare addresses. The reference topology, with the load balancers and the PaaS placed on the second
engine, is brought up by the same Pulumi program as every stack; the tests look from inside the
containers. The module's fixture leaves the Swarm at the end and checks that this engine is back
where it was: in no Swarm, nothing of the Swarm's left.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from edge.engines import configure, docker_exec, images, stack, swarm
from edge.engines.configure import ConvergeResult
from edge.infra import addressing
from edge.infra.engines import client_for
from edge.lab.probes import settle
from edge.model.contract import expand, load_contract
from edge.model.lab import Lab
from edge.model.plan import LABEL_PURPOSE, LABEL_STACK, OVERLAY_MTU, stack_plan
from edge.model.topology import Endpoint, load_topology
from edge.workflow import daemons, doctor, up
from edge.workflow.replay import load_catalog, run_replay
from tests.lab_fixtures import ROOT, previews_at_once, stack_config

SLOT = 15
SETTLE_S = 60.0   # after the first converge: BGP sessions, health checks, zone transfers
SWARM, STACK, ENGINE = "hswarm-t", "hswarm-split", "engine2"
# A pool of two staging stacks of the split topology: one here, one wholly on ENGINE
# (`placement.stacks`), at slots no test lane or benchmark uses.
STAGE, STAGE_THERE = "hswarm-stage", "hswarm-stage2"
POOL_SLOTS = {STAGE: 26, STAGE_THERE: 29}
PREVIEWS = {"lb-wrong-bind": 1, "dns-ttl": 0}   # example -> the exit code its verdict gives
REFERENCE = ROOT / "topology" / "reference.yaml"


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, docker.DockerClient]]:
    """This engine as the Swarm's manager and a second one joined to it; both left at the end."""
    host = docker_exec.client()
    if host.info()["Swarm"]["LocalNodeState"] != "inactive":
        pytest.skip("this engine is already in a Swarm: the test makes (and leaves) its own")
    plan = swarm.swarm_plan(load_topology(REFERENCE), SLOT, SWARM)
    try:
        swarm.init(plan, host)
        swarm.join_local(load_topology(REFERENCE), ENGINE, host)
        second = client_for(Endpoint(swarm.members(host)[1].endpoint))
        yield {"local": host, ENGINE: second}
        second.close()
    finally:
        swarm.leave(SWARM, host)
    assert host.info()["Swarm"]["LocalNodeState"] == "inactive"
    left = host.api.networks(filters={"label": f"{LABEL_STACK}={SWARM}"})
    assert not left and not host.api.networks(names=[swarm.GWBRIDGE]), left


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> stack.Backend:
    return stack.Backend(tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def split(engines: dict[str, docker.DockerClient], backend: stack.Backend,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The reference lab, split over the two engines, brought up as stack STACK."""
    endpoint = swarm.members(engines["local"])[1].endpoint
    path = tmp_path_factory.mktemp("swarm") / "split.yaml"
    swarm.split_topology(REFERENCE, ENGINE, endpoint, path, stacks={STAGE: "local",
                                                                    STAGE_THERE: ENGINE})
    stack.select_stack(STACK, backend, stack_config(SLOT) | {"topology": str(path)})
    try:
        stack.up(STACK, backend, stream=False)
        yield path
    finally:
        try:
            stack.destroy(STACK, backend, stream=False)
        finally:
            stack.remove_stack(STACK, backend)


def placed(path: Path) -> dict[str, str]:
    """Container name -> the engine its node is placed on."""
    plan = stack_plan(load_topology(path), STACK, SLOT)
    return {node.container_name: node.engine for node in plan.nodes.values()}


def sh(engines: dict[str, docker.DockerClient], path: Path, container: str, line: str,
       check: bool = True) -> docker_exec.ExecResult:
    """Run a shell line in a lab container, on the engine it is placed on."""
    engine = engines[placed(path)[container]]
    return docker_exec.run(container, line, engine=engine, timeout=20, check=check)


def test_each_container_runs_on_the_engine_it_is_placed_on(engines, split) -> None:
    for name, client in engines.items():
        running = {c.name for c in client.containers.list(
            filters={"label": f"{LABEL_STACK}={STACK}"})}
        assert running == {c for c, engine in placed(split).items() if engine == name}
    assert {m.state for m in swarm.members(engines["local"])} == {"ready"}


def test_lab_networks_are_internal_attachable_overlays_with_the_small_mtu(engines, split,
                                                                         converged) -> None:
    """After the converge, as users have it: the routers' converge sets their interfaces' MTU
    too, and once put back Docker's 1500 on them (a frame too big for the overlay lost)."""
    nets = engines["local"].api.networks(filters={"label": f"{LABEL_STACK}={STACK}"})
    assert len(nets) == 4
    for net in nets:
        detail = engines["local"].api.inspect_network(net["Id"])
        assert (detail["Driver"], detail["Internal"], detail["Attachable"]) == \
            ("overlay", True, True), detail["Name"]
    for container in placed(split):
        links = sh(engines, split, container, "cat /sys/class/net/eth*/mtu").stdout.split()
        assert links and set(links) == {str(OVERLAY_MTU)}, (container, links)


def test_the_host_has_no_address_on_any_lab_network(split) -> None:
    """Overlays give the host no interface: it cannot be a path between lab networks."""
    plan = stack_plan(load_topology(split), STACK, SLOT)
    routes = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True,
                            check=True).stdout
    host = [ipaddress.IPv4Interface(word) for line in routes.splitlines()
            for word in line.split() if "/" in word and word[0].isdigit()]
    assert not [a for a in host for net in plan.networks.values() if a.ip in net.subnet]


@pytest.mark.parametrize("source,target", [
    ("inside", "controller"),   # paas: this engine -> engine2
    ("firewall", "lb1"),        # dmz: this engine -> engine2
    ("lb2", "ns1"),             # dmz: engine2 -> this engine
])
def test_full_size_frames_cross_engines_and_one_byte_more_does_not(engines, split, converged,
                                                                  source: str,
                                                                  target: str) -> None:
    """The sender's own interface refuses the byte too many (after the converge): the overlay
    never silently drops a frame it cannot carry."""
    plan = stack_plan(load_topology(split), STACK, SLOT)
    src, dst = plan.nodes[source], plan.nodes[target]
    assert src.engine != dst.engine
    shared = sorted(set(src.addresses) & set(dst.addresses))[0]
    address = dst.addresses[shared]
    payload = OVERLAY_MTU - 28          # IPv4 and ICMP headers
    fits = sh(engines, split, src.container_name,
              f"ping -c 2 -W 2 -M do -s {payload} {address}", check=False)
    too_big = sh(engines, split, src.container_name,
                 f"ping -c 1 -W 2 -M do -s {payload + 1} {address}", check=False)
    assert fits.exit_code == 0, fits
    assert too_big.exit_code != 0 and "message too long" in too_big.stderr + too_big.stdout


@pytest.fixture(scope="module")
def converged(split: Path, backend: stack.Backend) -> tuple[ConvergeResult, Lab]:
    """The split lab's first converge, and the stack as it stands."""
    return configure.converge(STACK, backend.state, progress=None), stack.lab(STACK, backend)


def test_the_split_lab_converges_and_passes_the_contract(
        converged: tuple[ConvergeResult, Lab]) -> None:
    """Ansible reaches each node on its engine (edge/engines/bin/docker), the probes look from
    vantages on both engines, and every daemon runs its files: the contract passes unchanged."""
    result, lab = converged
    assert result.ok, result.errors
    assert set(result.hosts) == set(lab.nodes)
    assert {node.endpoint.local for node in lab.nodes.values()} == {True, False}
    results = settle(expand(load_contract(ROOT / "contract.yaml"), lab), SETTLE_S)
    failing = [f"{r.flow.name}: {r.reason}" for r in results if not r.ok]
    assert failing == [], failing
    half = daemons.check(lab)
    assert half == [], "\n".join(map(str, half))


def test_the_keystroke_replay_is_detected_and_undone_across_engines(
        converged: tuple[ConvergeResult, Lab], backend: stack.Backend) -> None:
    """The 2011 keystroke (load balancers, routers, firewall and part of DNS down at once), its
    faults on both engines: the watcher's agents on both see the outage, and the undo brings the
    lab back (faults, watch and drift reach each node on its engine)."""
    result, lab = converged
    assert result.ok, result.errors
    incident = load_catalog(ROOT / "replays.yaml")["cloudfoundry-2011-keystroke"]
    contract = load_contract(ROOT / "contract.yaml")
    settle(expand(contract, lab), SETTLE_S)    # green first, whichever test runs first
    replay = run_replay(incident, lab, contract, progress=lambda _: None, backend=backend)
    assert replay.detected.startswith(f"{incident.expect_class} ({incident.expect_service})"), \
        replay.problems
    assert replay.green_after, replay.problems


def test_the_e2e_suite_passes_on_the_split_lab(converged: tuple[ConvergeResult, Lab],
                                               backend: stack.Backend) -> None:
    """tests/e2e as it is, pointed at the split lab (EDGE_TEST_REUSE, as a user points it at a
    stack of theirs): outside-in from vantages on both engines, every test run, none skipped."""
    result, lab = converged
    assert result.ok, result.errors
    settle(expand(load_contract(ROOT / "contract.yaml"), lab), SETTLE_S)   # whichever ran before
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "e2e")],
        env=os.environ | {"EDGE_TEST_REUSE": STACK, "EDGE_STATE": str(backend.state)},
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    said = run.stdout + run.stderr
    assert run.returncode == 0, said[-3000:]
    summary = said.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), summary


@pytest.fixture(scope="module")
def pool(converged: tuple[ConvergeResult, Lab], split: Path,
         backend: stack.Backend) -> Iterator[str]:
    """The split lab as a live stack (its revision recorded by `edge converge`) and its pool of
    two staging stacks, each with its slot and the split topology; both destroyed at the end."""
    result, _ = up.converge(STACK, backend=backend)
    assert result.ok, result.errors
    for name, slot in POOL_SLOTS.items():
        stack.select_stack(name, backend, stack_config(slot) | {"topology": str(split)})
    try:
        yield ",".join(POOL_SLOTS)
    finally:
        for name in POOL_SLOTS:
            try:
                stack.destroy(name, backend, stream=False)
            finally:
                stack.remove_stack(name, backend)


def test_two_previews_at_once_on_a_pool_over_two_engines(engines, pool: str,
                                                          backend: stack.Backend,
                                                          tmp_path: Path) -> None:
    """Two `edge preview` commands at once on a pool whose second stack sits wholly on the
    second engine: each takes one stack, so one preview runs there while the other runs here;
    the breaking example is UNSAFE and the benign one SAFE wherever it ran, and each says which
    stack of the pool it took. (The pool's one-engine case is the same code: a pool is a list of
    stack names, wherever their nodes sit; a suite of its own cost 2.4 min of CI.)"""
    found = previews_at_once(STACK, pool, PREVIEWS, backend.state, tmp_path)
    taken = {name: run.staging for name, run in found.items()}
    assert sorted(taken.values()) == sorted(POOL_SLOTS), taken
    for name, run in found.items():
        assert f"preview: staging stack '{run.staging}' of the pool" in run.said, (name, run.said)
    for name, client in engines.items():
        found = {c.labels[LABEL_STACK] for c in client.containers.list(
            filters={"label": f"{LABEL_STACK}"}) if c.labels[LABEL_STACK] in POOL_SLOTS}
        assert found == ({STAGE_THERE} if name == ENGINE else {STAGE}), (name, found)


def test_the_address_plan_is_checked_against_each_engines_machine(engines) -> None:
    """engine2's own routes (read in its network namespace) are what a plan placing nodes there
    must not overlap: the engines' bridge is among them, named as engine2's."""
    bridge = engines["local"].api.inspect_network(swarm.swarm_plan(
        load_topology(REFERENCE), SLOT, SWARM).bridge_name)["IPAM"]["Config"][0]["Subnet"]
    routes = addressing.engine_routes(engines[ENGINE], images.image_ref(ROOT), ENGINE)
    owners = [t.owner for t in routes if str(t.prefix) == bridge]
    assert len(owners) == 1 and owners[0].startswith(f"engine {ENGINE}'s host route {bridge} dev "), routes


def test_the_doctor_checks_each_engine_of_the_swarm(engines) -> None:
    checks = {c.name: c for c in doctor.examine() if c.name.startswith("engine ")}
    assert set(checks) == {"engine local", f"engine {ENGINE}"}, checks
    assert all(c.ok for c in checks.values()), checks
    assert "ready, Docker" in checks[f"engine {ENGINE}"].detail


def test_swarm_objects_carry_the_engine_purpose_label(engines) -> None:
    """What the Swarm made is found (and removed) by its own labels, never other stacks'."""
    found = engines["local"].api.containers(filters={"label": [
        f"{LABEL_STACK}={SWARM}", f"{LABEL_PURPOSE}={swarm.PURPOSE}"]})
    assert [c["Names"][0].lstrip("/") for c in found] == [f"edge-{SWARM}-{ENGINE}"]
