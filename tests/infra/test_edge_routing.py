"""testinfra checks of the border router and the firewall (FRR, nftables)."""

from __future__ import annotations

import json

import pytest
import testinfra

from tests.conftest import Lab


@pytest.fixture(scope="module")
def border(lab: Lab):
    return testinfra.get_host(f"docker://{lab.container('border')}")


@pytest.fixture(scope="module")
def firewall(lab: Lab):
    return testinfra.get_host(f"docker://{lab.container('firewall')}")


@pytest.mark.parametrize("node", ["border", "firewall"])
def test_frr_daemons_run_under_supervisor(lab: Lab, node: str) -> None:
    host = testinfra.get_host(f"docker://{lab.container(node)}")
    status = host.run("supervisorctl status").stdout   # exits 3: one-shot programs have EXITED
    for program in ("frr-zebra", "frr-bgpd"):
        assert any(line.startswith(program) and "RUNNING" in line
                   for line in status.splitlines()), status
    assert host.socket("tcp://0.0.0.0:179").is_listening
    assert host.run("vtysh --dryrun -f /etc/frr/frr.conf").rc == 0


def test_bgp_session_established_with_service_prefix(lab: Lab, border) -> None:
    summary = json.loads(border.check_output("vtysh -c 'show ip bgp summary json'"))
    peers = summary["ipv4Unicast"]["peers"]
    firewall_transit = lab.address("firewall", "transit")
    assert peers[firewall_transit]["state"] == "Established"
    assert peers[firewall_transit]["pfxRcd"] == 1
    dmz = lab.outputs["networks"]["dmz"]["subnet"]
    route = border.check_output(f"ip route show {dmz}")
    assert f"via {firewall_transit}" in route and "proto bgp" in route, route


def test_border_learns_nothing_but_the_service_prefix(border) -> None:
    routes = border.check_output("ip route show proto bgp").splitlines()
    assert len(routes) == 1, routes


def test_firewall_forward_policy_is_default_deny(firewall) -> None:
    ruleset = json.loads(firewall.check_output("nft -j list table inet edge"))["nftables"]
    chains = {item["chain"]["name"]: item["chain"] for item in ruleset if "chain" in item}
    assert chains["forward"]["policy"] == "drop"
    assert chains["input"]["policy"] == "drop"
    comments = {item["rule"].get("comment") for item in ruleset if "rule" in item}
    assert {"web-to-load-balancers", "dns-udp-to-name-servers", "dns-tcp-to-name-servers",
            "forward-denied"} <= comments


def test_routers_forward_and_nothing_else_does(lab: Lab) -> None:
    for node, expected in (("border", "1"), ("firewall", "1"), ("lb1", "0"), ("ns1", "0")):
        host = testinfra.get_host(f"docker://{lab.container(node)}")
        assert host.sysctl("net.ipv4.ip_forward") == int(expected), node
