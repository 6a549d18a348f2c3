"""The Ansible inventory built from stack outputs, and the `docker` its connections call."""

import os
import re
import subprocess

import pytest

from edge.cli import summary_table
from edge.engines.configure import DOCKER_WRAPPER
from edge.model.inventory import inventory_from_outputs
from edge.model.lab import Lab
from edge.model.topology import Endpoint

OUTPUTS = {
    "stack": "lab", "slot": 0, "zone": "paas.test",
    "networks": {"dmz": {"docker_name": "edge-lab-dmz", "subnet": "198.18.2.0/24"}},
    "nodes": {
        "lb1": {"role": "loadbalancer", "ansible_role": "loadbalancer", "tier": "load balancing",
                "container": "edge-lab-lb1", "container_id": "abc",
                "addresses": {"dmz": "198.18.2.10", "paas": "10.64.0.10"},
                "link": {"delay_ms": 120, "rate_kbit": 2000}},
        "dea1": {"role": "dea", "ansible_role": "paas", "tier": "paas",
                 "container": "edge-lab-dea1", "container_id": "def",
                 "addresses": {"paas": "10.64.0.31"}},
    },
}


def test_groups_by_role_ansible_role_and_tier() -> None:
    inv = inventory_from_outputs(OUTPUTS)
    assert inv["role_loadbalancer"]["hosts"] == ["lb1"]
    assert inv["role_paas"]["hosts"] == ["dea1"] and inv["role_dea"]["hosts"] == ["dea1"]
    assert inv["tier_load_balancing"]["hosts"] == ["lb1"]
    assert set(inv["all"]["children"]) == {"role_loadbalancer", "role_dea", "role_paas",
                                           "tier_load_balancing", "tier_paas"}
    assert not set(inv["all"]["children"]) & set(OUTPUTS["nodes"])   # no group named as a host


def test_hosts_are_reached_through_the_docker_engine() -> None:
    hostvars = inventory_from_outputs(OUTPUTS)["_meta"]["hostvars"]
    assert hostvars["lb1"]["ansible_connection"] == "docker"
    assert hostvars["lb1"]["ansible_host"] == "edge-lab-lb1"
    assert hostvars["dea1"]["edge_ansible_role"] == "paas"
    assert hostvars["lb1"]["edge_addresses"]["dmz"] == "198.18.2.10"


SOCKET = "unix:///var/lib/docker/volumes/e2/_data/docker.sock"


@pytest.mark.parametrize("endpoint, host", [
    (None, "edge-lab-lb1"),
    ({"url": "local", "ca": "", "cert": "", "key": ""}, "edge-lab-lb1"),
    ({"url": SOCKET, "ca": "", "cert": "", "key": ""}, f"edge-lab-lb1@{SOCKET}"),
    (SOCKET, f"edge-lab-lb1@{SOCKET}"),    # a stack spread before the TLS files were output
    ({"url": "tcp://e3:2376", "ca": "/t/ca.pem", "cert": "/t/c.pem", "key": "/t/k.pem"},
     "edge-lab-lb1@tcp://e3:2376|/t/ca.pem|/t/c.pem|/t/k.pem"),
], ids=["not spread", "local", "unix", "url only", "tls"])
def test_a_node_on_another_engine_is_named_with_its_engine(endpoint, host: str) -> None:
    node = OUTPUTS["nodes"]["lb1"] | ({"endpoint": endpoint} if endpoint else {})
    hostvars = inventory_from_outputs(OUTPUTS | {"nodes": {"lb1": node}})["_meta"]["hostvars"]
    assert hostvars["lb1"]["ansible_host"] == host


@pytest.mark.parametrize("argv, real", [
    (["exec", "-i", f"edge-lab-lb1@{SOCKET}", "python3", "-c", "a@b"],
     ["-H", SOCKET, "exec", "-i", "edge-lab-lb1", "python3", "-c", "a@b"]),
    (["exec", "-i", "edge-lab-lb1@tcp://e3:2376|/t/ca.pem|/t/c.pem|/t/k.pem", "sh"],
     ["-H", "tcp://e3:2376", "--tlsverify", "--tlscacert", "/t/ca.pem", "--tlscert", "/t/c.pem",
      "--tlskey", "/t/k.pem", "exec", "-i", "edge-lab-lb1", "sh"]),
    (["exec", "-i", "edge-lab-lb1", "sh", "-c", "echo x@unix://y"],
     ["exec", "-i", "edge-lab-lb1", "sh", "-c", "echo x@unix://y"]),
], ids=["unix", "tls", "local"])
def test_the_connections_docker_runs_a_node_on_its_engine(argv: list[str], real: list[str],
                                                           tmp_path) -> None:
    """The real docker (here a script printing its arguments) gets the engine's flags and the
    container's own name; a local node's call is passed on unchanged."""
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    fake.chmod(0o755)
    said = subprocess.run([str(DOCKER_WRAPPER), *argv], capture_output=True, text=True,
                          check=True, env=os.environ | {"EDGE_DOCKER": str(fake)}).stdout
    assert said.splitlines() == real


def test_a_spread_stack_knows_each_nodes_engine() -> None:
    """The outputs of a spread stack name each node's engine and endpoint; status shows them."""
    spread = {"url": SOCKET, "ca": "", "cert": "", "key": ""}
    nodes = {"lb1": OUTPUTS["nodes"]["lb1"] | {"engine": "engine2", "endpoint": spread},
             "dea1": OUTPUTS["nodes"]["dea1"] | {"engine": "local",
                                                 "endpoint": Endpoint().props()}}
    lab = Lab.from_outputs(OUTPUTS | {"nodes": nodes})
    assert lab.spread and lab.nodes["lb1"].endpoint == Endpoint(SOCKET)
    assert lab.nodes["dea1"].endpoint.local and not Lab.from_outputs(OUTPUTS).spread
    table = summary_table(lab, {"lb1": "running", "dea1": "running"}).splitlines()
    assert table[0].split()[:5] == ["TIER", "NODE", "STATE", "CONTAINER", "ENGINE"]
    assert re.search(r"edge-lab-lb1 +engine2 +dmz=", table[1]), table
    assert re.search(r"edge-lab-dea1 +local +paas=", table[2]), table
