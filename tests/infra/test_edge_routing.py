"""testinfra checks of the border routers and the firewall (FRR, nftables)."""

from __future__ import annotations

import json

import pytest
import testinfra

from tests.conftest import Lab

# The primary border and the secondary, rate-limited one (topology/reference.yaml).
BORDERS = ["border", "border2"]


def host(lab: Lab, node: str):
    return testinfra.get_host(f"docker://{lab.container(node)}")


@pytest.fixture(scope="module")
def firewall(lab: Lab):
    return host(lab, "firewall")


@pytest.mark.parametrize("node", [*BORDERS, "firewall"])
def test_frr_daemons_run_under_supervisor(lab: Lab, node: str) -> None:
    router = host(lab, node)
    status = router.run("supervisorctl status").stdout   # exits 3: one-shot programs have EXITED
    for program in ("frr-zebra", "frr-bgpd"):
        assert any(line.startswith(program) and "RUNNING" in line
                   for line in status.splitlines()), status
    assert router.socket("tcp://0.0.0.0:179").is_listening
    assert router.run("vtysh --dryrun -f /etc/frr/frr.conf").rc == 0


@pytest.mark.parametrize("node", BORDERS)
def test_bgp_session_established_with_service_prefix(lab: Lab, node: str) -> None:
    border = host(lab, node)
    summary = json.loads(border.check_output("vtysh -c 'show ip bgp summary json'"))
    peers = summary["ipv4Unicast"]["peers"]
    firewall_transit = lab.address("firewall", "transit")
    assert peers[firewall_transit]["state"] == "Established"
    assert peers[firewall_transit]["pfxRcd"] == 1
    dmz = lab.view.networks["dmz"].subnet
    route = border.check_output(f"ip route show {dmz}")
    assert f"via {firewall_transit}" in route and "proto bgp" in route, route


def test_firewall_announces_the_service_prefix_to_every_border(lab: Lab, firewall) -> None:
    """The peerings come from the topology's roles: each border node is a peer."""
    borders = {node.address("transit") for node in lab.view.with_role("border")}
    assert len(borders) == len(BORDERS)
    peers = json.loads(firewall.check_output("vtysh -c 'show ip bgp summary json'"))[
        "ipv4Unicast"]["peers"]
    assert set(peers) == borders
    dmz = lab.view.networks["dmz"].subnet
    for address in borders:
        assert peers[address]["state"] == "Established", peers[address]
        sent = json.loads(firewall.check_output(
            f"vtysh -c 'show ip bgp neighbors {address} advertised-routes json'"))
        assert list(sent["advertisedRoutes"]) == [dmz], sent


@pytest.mark.parametrize("node", BORDERS)
def test_border_learns_nothing_but_the_service_prefix(lab: Lab, node: str) -> None:
    routes = host(lab, node).check_output("ip route show proto bgp").splitlines()
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
    for node, expected in (("border", "1"), ("border2", "1"), ("firewall", "1"), ("lb1", "0"),
                           ("ns1", "0")):
        assert host(lab, node).sysctl("net.ipv4.ip_forward") == int(expected), node
