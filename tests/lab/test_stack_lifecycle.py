"""The whole reference lab through the real Pulumi CLI: up, inspect, drift, refresh, destroy.

One throw-away stack (slot 30 in lane 0, see tests/lab_fixtures.py) with its own file backend, labelled purpose=test. No test relies
on the ones before it: each asks for `view`, which brings the stack (back) up whenever any of
it is missing or stopped (after the destroy test, for one), and a test that breaks the stack by
hand asks for `restored`, which puts it back afterwards whatever happened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from edge.engines import cleanup, stack
from edge.model.lab import Lab
from edge.model.plan import LABEL_STACK
from edge.model.topology import load_topology
from tests.lab_fixtures import ROOT, labels_for, lane_address, lane_slot, lane_stack, stack_config

STACK = f"{lane_stack('life')}-{os.getpid() % 100000}"
SLOT = lane_slot("lifecycle")
CLASH, SQUATTER = lane_stack("clash"), lane_stack("squatter")
TOPOLOGY = load_topology(ROOT / "topology" / "reference.yaml")


def public(third: int, host: int) -> str:
    """198.18.<third>.<host> of the reference topology, moved to this stack's slot."""
    return lane_address(f"198.18.{third}.{host}", "lifecycle")


def internal(host: int) -> str:
    """10.64.0.<host> of the reference topology, moved to this stack's slot."""
    return lane_address(f"10.64.0.{host}", "lifecycle")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, image: str) -> Iterator[stack.Backend]:
    """The stack's own state folder; whatever of the stack is left is destroyed at the end."""
    backend = stack.Backend(state=tmp_path_factory.mktemp("pulumi-state"))
    stack.select_stack(STACK, backend, stack_config(SLOT))
    yield backend
    stack.destroy(STACK, backend, stream=False)
    stack.remove_stack(STACK, backend)


def complete(docker_client: docker.DockerClient) -> bool:
    """Whether every node of the stack runs, and each of its networks and volumes is there."""
    found = cleanup.count({LABEL_STACK: STACK}, docker_client)
    running = docker_client.containers.list(filters={"label": f"{LABEL_STACK}={STACK}"})
    return (len(running), found.containers, found.networks, found.volumes) == (
        len(TOPOLOGY.nodes), len(TOPOLOGY.nodes), len(TOPOLOGY.networks), len(TOPOLOGY.volumes))


def bring_up(backend: stack.Backend, docker_client: docker.DockerClient) -> None:
    """Put all of the stack (back) as declared, if anything is missing or stopped. Refreshed
    first: Pulumi knows nothing of what was stopped or removed by hand."""
    if not complete(docker_client):
        stack.pulumi(["up", "--yes", "--skip-preview", "--refresh", "--suppress-outputs",
                      "--stack", STACK], backend)


@pytest.fixture
def view(backend: stack.Backend, docker_client: docker.DockerClient) -> Lab:
    """The stack as edge reads it, all of the stack up."""
    bring_up(backend, docker_client)
    return stack.lab(STACK, backend)


@pytest.fixture
def restored(backend: stack.Backend, docker_client: docker.DockerClient) -> Iterator[None]:
    """For a test that stops or removes parts of the stack by hand: all back afterwards."""
    yield
    bring_up(backend, docker_client)


def container(docker_client: docker.DockerClient, view: Lab, node: str):
    return docker_client.containers.get(view.node(node).container_id)


def exec_ok(box, *cmd: str) -> str:
    code, out = box.exec_run(list(cmd))
    assert code == 0, f"{cmd} in {box.name}: exit {code}: {out.decode(errors='replace')}"
    return out.decode()


def test_up_creates_every_node_network_and_volume(view: Lab,
                                                  docker_client: docker.DockerClient) -> None:
    assert set(view.nodes) == {"client", "resolver", "border", "border2", "firewall", "lb1",
                               "lb2", "ns1", "ns2", "controller", "dea1", "dea2", "inside"}
    found = cleanup.count({LABEL_STACK: STACK}, docker_client)
    assert (found.containers, found.networks, found.volumes) == (13, 4, 1)
    for name, node in view.nodes.items():
        box = docker_client.containers.get(node.container_id)
        assert box.status == "running", name
        attached = box.attrs["NetworkSettings"]["Networks"]
        assert {n: ep["IPAMConfig"]["IPv4Address"] for n, ep in attached.items()} == {
            f"edge-{STACK}-{net}": addr for net, addr in node.addresses.items()}
    dmz = docker_client.networks.get(f"edge-{STACK}-dmz").attrs
    assert dmz["Internal"] is True and dmz["IPAM"]["Config"][0]["Subnet"] == public(2, 0) + "/24"
    assert view.node("controller").addresses == {"paas": internal(20)}


def test_routes_carry_client_traffic_through_the_edge(view: Lab,
                                                      docker_client: docker.DockerClient) -> None:
    client = container(docker_client, view, "client")
    routes = exec_ok(client, "ip", "route")
    assert "default" not in routes
    assert f"{public(2, 0)}/24 via {public(0, 1)}" in routes
    assert exec_ok(container(docker_client, view, "border"), "sysctl", "-n",
                   "net.ipv4.ip_forward").strip() == "1"
    # client -> border -> firewall (transit side) and back: the recorded route shows the border
    # forwarding. (Beyond the firewall the path needs BGP, which the Ansible roles configure.)
    trace = exec_ok(client, "ping", "-c1", "-W2", "-R", public(1, 2))
    hops = [line.strip() for line in trace.split("RR:")[1].splitlines()[:3]]
    assert hops == [public(0, 10), public(1, 1), public(1, 2)], trace
    # No path from the internet into the PaaS network.
    code, out = client.exec_run(["ping", "-c1", "-W1", internal(20)])
    assert code != 0, out.decode()


def test_second_up_changes_nothing(backend: stack.Backend, view: Lab) -> None:
    proc = stack.pulumi(["preview", "--expect-no-changes", "--stack", STACK], backend)
    assert proc.returncode == 0


def test_topology_edit_shows_exact_diff(backend: stack.Backend, view: Lab,
                                        tmp_path: Path) -> None:
    edited = tmp_path / "topology.yaml"
    text = (ROOT / "topology" / "reference.yaml").read_text()
    edited.write_text(text.replace("networks: {dmz: 198.18.2.11,", "networks: {dmz: 198.18.2.12,"))
    stack.pulumi(["config", "set", "topology", str(edited), "--stack", STACK], backend)
    try:
        out = stack.pulumi(["preview", "--diff", "--stack", STACK], backend).stdout
    finally:
        stack.pulumi(["config", "rm", "topology", "--stack", STACK], backend)
    assert "node-lb2" in out and "replace" in out, out
    assert public(2, 12) in out and "networks" in out, out
    changed = [line for line in out.splitlines() if line.lstrip().startswith(("+-", "~"))
               and "node-" in line]
    assert all("node-lb2" in line for line in changed), changed


def test_refresh_notices_stopped_and_removed_containers(
        backend: stack.Backend, view: Lab, restored: None,
        docker_client: docker.DockerClient) -> None:
    container(docker_client, view, "inside").stop(timeout=1)
    container(docker_client, view, "dea2").remove(force=True)
    out = stack.pulumi(["refresh", "--yes", "--stack", STACK], backend).stdout
    assert "node-dea2" in out and "deleted" in out, out
    assert "node-inside" in out and "updated" in out, out
    state = json.loads(stack.pulumi(["stack", "export", "--stack", STACK], backend).stdout)
    urns = [r["urn"] for r in state["deployment"]["resources"]]
    assert not any(u.endswith("::node-dea2") for u in urns)
    stack.up(STACK, backend, stream=False)                # puts both back
    assert container(docker_client, view, "inside").status == "running"
    restored_dea2 = docker_client.containers.get(f"edge-{STACK}-dea2")
    assert restored_dea2.status == "running"


def test_destroy_leaves_nothing(backend: stack.Backend, view: Lab,
                                docker_client: docker.DockerClient) -> None:
    """The next test that needs the stack brings it back up (`view`)."""
    stack.destroy(STACK, backend, stream=False)
    assert cleanup.count({LABEL_STACK: STACK}, docker_client).total == 0


def test_address_overlap_is_one_error_and_creates_nothing(
        tmp_path: Path, docker_client: docker.DockerClient) -> None:
    """A Docker network already on the clash slot's dmz prefix: the preview refuses, naming both."""
    dmz = lane_address("198.18.2.0", "clash")
    squatter = docker_client.networks.create(
        f"edge-{SQUATTER}", internal=True, labels=labels_for(SQUATTER),
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=f"{dmz}/25")]))
    try:
        backend = stack.Backend(state=tmp_path)
        stack.select_stack(CLASH, backend, stack_config(lane_slot("clash")))
        proc = stack.pulumi(["up", "--yes", "--stack", CLASH], backend, check=False)
        said = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert (f"network 'dmz' of stack '{CLASH}' ({dmz}/24) overlaps Docker network "
                f"'edge-{SQUATTER}' ({dmz}/25)") in said, said
        assert cleanup.count({LABEL_STACK: CLASH}, docker_client).total == 0
    finally:
        stack.remove_stack(CLASH, backend)
        squatter.remove()
