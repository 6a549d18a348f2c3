"""The secondary border path: shaped links, and outside traffic shifted onto it and back.

The replay of the AWS 2011 incident needs a second way in that works but is slow: border2's links
add a delay and a rate limit (roles/link), and edge.lab.paths moves the static routes onto it.
Latencies are only compared with latencies of the same flows measured in the same test, never
with a fixed figure: this machine is shared and its speed varies. The shift breaks the lab's
routing and puts it back, so it never runs on a reused stack (EDGE_TEST_REUSE).
"""

from __future__ import annotations

import json
import re
import statistics

import pytest
import testinfra

from edge.lab import paths
from edge.lab.probes import Result, run_flows
from edge.model.contract import expand, load_contract
from edge.report.table import results_table
from tests.lab_fixtures import ROOT, Lab

PRIMARY, SECONDARY = "border", "border2"
# HTTP over the shaped path is at least this many times slower than over the primary one, measured
# before the shift; back on the primary path, at least this many times faster than while shifted.
# The shaping adds its delay to each packet, several round trips of which make a request, so the
# real factor is far larger: these only tell a path from the other on a busy machine.
SLOWER = 3


def host(lab: Lab, node: str):
    return testinfra.get_host(f"docker://{lab.container(node)}")


@pytest.fixture(scope="module")
def link(lab: Lab) -> dict:
    """The secondary border's shaping, as the topology gives it."""
    shaped = lab.view.node(SECONDARY).link
    assert shaped and shaped["delay_ms"] > 0 and shaped["rate_kbit"] > 0, shaped
    return shaped


def outside_flows(lab: Lab) -> list:
    return [f for f in expand(load_contract(ROOT / "contract.yaml"), lab.view)
            if f.vantage == "client" and f.must == "work"]


def http_ms(results: list[Result]) -> list[float]:
    return [r.latency_ms for r in results if r.flow.kind == "http"]


def test_only_the_secondary_border_is_shaped(lab: Lab, link: dict) -> None:
    secondary = host(lab, SECONDARY)
    for address in lab.view.node(SECONDARY).addresses.values():
        device = secondary.check_output(f"ip -o -4 addr show to {address}").split()[1]
        qdisc = json.loads(secondary.check_output(f"tc -j qdisc show dev {device} root"))[0]
        assert qdisc["kind"] == "tbf", qdisc
        assert qdisc["options"]["rate"] == link["rate_kbit"] * 1000 // 8, qdisc
    assert "RUNNING" in secondary.check_output("supervisorctl status link-shaper")
    primary = host(lab, PRIMARY)
    assert "tbf" not in primary.check_output("tc qdisc show")
    assert primary.run("supervisorctl status link-shaper").rc != 0   # no such program


@pytest.mark.parametrize("peer,network", [("firewall", "transit"), ("client", "internet")])
def test_secondary_border_sends_at_most_its_rate(lab: Lab, link: dict, peer: str,
                                                 network: str) -> None:
    """A flood of full-size pings from border2 itself (never delayed) is held to the rate."""
    count, payload = 200, 1400
    out = host(lab, SECONDARY).check_output(
        f"ping -q -f -c {count} -l 20 -s {payload} -W 2 {lab.address(peer, network)}")
    received = int(re.search(r"(\d+) received", out).group(1))
    took_s = int(re.search(r"time (\d+)ms", out).group(1)) / 1000
    kbit_s = received * (payload + 28) * 8 / 1000 / took_s
    assert received >= count * 0.95, out
    assert kbit_s <= link["rate_kbit"] * 1.1, (kbit_s, out)


@pytest.mark.usefixtures("breaks_the_lab")
def test_shift_onto_the_slow_path_and_back(lab: Lab, link: dict) -> None:
    flows = outside_flows(lab)
    before = run_flows(flows)
    assert all(r.ok for r in before), results_table(before)
    paths.shift(lab.view, SECONDARY)
    try:
        client = host(lab, "client")
        dmz = lab.view.networks["dmz"].subnet
        assert f"via {lab.address(SECONDARY, 'internet')}" in client.check_output(
            f"ip route show {dmz}")
        shifted = run_flows(flows)
        # Every outside flow still works, over a path that is slow in each direction: each
        # request waits at least the shaping's delay, and takes far longer than before the shift.
        assert all(r.ok for r in shifted), results_table(shifted)
        assert min(http_ms(shifted)) > link["delay_ms"], results_table(shifted)
        assert statistics.median(http_ms(shifted)) >= \
            SLOWER * statistics.median(http_ms(before)), results_table(before + shifted)
    finally:
        paths.restore(lab.view)
    for name, routes in paths.topology_routes(lab.view).items():
        live = host(lab, name).check_output("ip route")
        assert all(f"{prefix} via {gateway}" in live for prefix, gateway in routes), (name, live)
    after = run_flows(flows)
    assert all(r.ok for r in after), results_table(after)
    assert SLOWER * statistics.median(http_ms(after)) <= statistics.median(http_ms(shifted)), \
        results_table(shifted + after)
