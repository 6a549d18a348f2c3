"""The dynamic providers' methods, called directly against the real Docker engine.

Each test gets the network and volume it needs from a fixture and every container it creates is
deleted by one, so a test that fails halfway leaves nothing behind for the next one (which would
then fail on the same names and subnet).
"""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
from pulumi.dynamic import CreateResult

from edge.infra.docker_provider import ContainerProvider, NetworkProvider, VolumeProvider
from tests.lab_fixtures import labels_for, lane_address, lane_stack

STACK = lane_stack("provider")
NET, BOX, VOL = f"edge-{STACK}-net", f"edge-{STACK}-box", f"edge-{STACK}-vol"
# The provider slot's first public /24s (the reference topology's 198.18.0.0 and 198.18.1.0).
BASE, NEXT = lane_address("198.18.0.0", "provider"), lane_address("198.18.1.0", "provider")
PREFIX = BASE.rsplit(".", 1)[0]
SUBNET, GATEWAY, ADDRESS = f"{BASE}/24", f"{PREFIX}.254", f"{PREFIX}.10"
ROUTE = f"{NEXT}/24 via {PREFIX}.1"


def network_props(**over) -> dict:
    return {"name": NET, "subnet": SUBNET, "gateway": GATEWAY,
            "internal": True, "labels": labels_for(STACK)} | over


def container_props(image: str, **over) -> dict:
    return {"name": BOX, "image": image, "hostname": "box",
            "networks": {NET: ADDRESS}, "cap_add": ["NET_ADMIN"],
            "sysctls": {"net.ipv6.conf.all.disable_ipv6": "1"},
            "env": {"EDGE_ROUTES": ROUTE},
            "mounts": {VOL: "/data"}, "labels": labels_for(STACK),
            "restart_policy": "unless-stopped", "dns": [f"{PREFIX}.53"], "command": [],
            "running": True} | over


def test_check_names_each_bad_input() -> None:
    result = NetworkProvider().check({}, network_props(subnet=f"{PREFIX}.0/33", internal=False,
                                                       labels={"x": "y"}))
    failures = {f.property: f.reason for f in result.failures}
    assert "not an IPv4 prefix" in failures["subnet"]
    assert "must be internal" in failures["internal"]
    assert "required" in failures["labels"]
    bad = ContainerProvider().check({}, container_props("img", networks={"n": "10.0.0.300"},
                                                        restart_policy="sometimes",
                                                        sysctls={"kernel.x": "1"}))
    reasons = {f.property: f.reason for f in bad.failures}
    assert set(reasons) == {"networks", "restart_policy", "sysctls"}, reasons


def test_diff_says_what_replaces_and_what_updates(image: str) -> None:
    provider = ContainerProvider()
    old = container_props(image) | {"container_id": "abc"}
    same = provider.diff("abc", old, container_props(image))
    assert same.changes is False and same.replaces == []
    moved = provider.diff("abc", old, container_props(image, networks={"n": f"{PREFIX}.11"}))
    assert moved.changes and moved.replaces == ["networks"] and moved.delete_before_replace
    restart = provider.diff("abc", old, container_props(image, running=False))
    assert restart.changes and restart.replaces == []


@pytest.fixture
def network(docker_client: docker.DockerClient) -> Iterator[CreateResult]:
    """The tests' network, created by the provider and deleted by it afterwards."""
    created = NetworkProvider().create(network_props())
    yield created
    NetworkProvider().delete(created.id, created.outs)


@pytest.fixture
def volume(docker_client: docker.DockerClient) -> Iterator[CreateResult]:
    """The tests' volume, likewise."""
    created = VolumeProvider().create({"name": VOL, "labels": labels_for(STACK)})
    yield created
    VolumeProvider().delete(created.id, created.outs)


@pytest.fixture
def containers(docker_client: docker.DockerClient) -> Iterator[list[CreateResult]]:
    """The containers a test creates (it appends each): deleted afterwards, whatever happened."""
    created: list[CreateResult] = []
    yield created
    for container in created:
        ContainerProvider().delete(container.id, container.outs)


def test_network_volume_container_lifecycle(docker_client: docker.DockerClient, image: str,
                                            network: CreateResult, volume: CreateResult,
                                            containers: list[CreateResult]) -> None:
    api = docker_client.api
    assert api.inspect_network(network.id)["Internal"] is True
    assert network.outs["subnet"] == SUBNET and network.outs["gateway"] == GATEWAY
    assert api.inspect_volume(volume.id)["Name"] == VOL

    provider = ContainerProvider()
    created = provider.create(container_props(image))
    containers.append(created)
    info = api.inspect_container(created.id)
    assert info["State"]["Running"] and created.outs["running"] is True
    assert created.outs["networks"] == {NET: ADDRESS}
    routes = docker_client.containers.get(created.id).exec_run(["ip", "route"]).output.decode()
    assert ROUTE in routes and "default" not in routes

    api.stop(created.id, timeout=1)                       # stopped by hand
    assert provider.read(created.id, created.outs).outs["running"] is False
    updated = provider.update(created.id, created.outs | {"running": False},
                              container_props(image))
    assert updated.outs["running"] is True

    provider.delete(created.id, created.outs)
    gone = provider.read(created.id, created.outs)       # removed: refresh drops it
    assert gone.id == ""
    VolumeProvider().delete(volume.id, volume.outs)
    assert VolumeProvider().read(volume.id, volume.outs).id == ""
    NetworkProvider().delete(network.id, network.outs)   # the fixtures' deletes: no-ops then
    assert NetworkProvider().read(network.id, network.outs).id == ""


def test_container_whose_init_fails_is_an_error(docker_client: docker.DockerClient, image: str,
                                               network: CreateResult,
                                               containers: list[CreateResult]) -> None:
    with pytest.raises(RuntimeError, match="(?s)stopped right after start.*cannot install route"):
        containers.append(ContainerProvider().create(container_props(
            image, mounts={}, env={"EDGE_ROUTES": f"{NEXT}/24 via 198.19.99.1"},
            restart_policy="no")))
    assert docker_client.api.containers(all=True, filters={"name": BOX}) == []
