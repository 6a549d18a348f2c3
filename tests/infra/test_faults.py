"""Faults (edge/lab/faults.py) on the real lab: each breaks the contract flows it should, spares the
ones it should, and undoing it brings the whole contract back to green.

Every flow is measured from inside the vantage containers (edge.lab.probes). Each test clears what it
injected in a `finally` and then waits for the whole contract to be green again, so a failing
test still leaves the lab as it found it for the suites that follow. Breaking the lab on purpose,
they never run on a reused stack (EDGE_TEST_REUSE).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest

from edge.engines import docker_exec, facts
from edge.engines.facts import BgpPeer
from edge.lab import faults
from edge.lab.probes import Result, run_flows, settle
from edge.model.contract import Flow, expand, load_contract
from tests.lab_fixtures import ROOT, Lab

RECOVER_S = 30.0   # undo, then every flow green again: restarts, BGP, health checks (rise 2 x 1s)
BREAK_S = 10.0     # a fault shows within this (health checks fall, named restarts)
Pick = Callable[[Flow], bool]

pytestmark = pytest.mark.usefixtures("breaks_the_lab")


def http_at(node: str) -> Pick:
    return lambda f: f.kind == "http" and f.target == node and f.vantage == "client"


def dns_at(node: str) -> Pick:
    return lambda f: f.rule.startswith("dns-api-at-nameserver") and f.target == node


def named(*names: str) -> Pick:
    return lambda f: f.name in names


@pytest.fixture(scope="module")
def flows(lab: Lab) -> list[Flow]:
    """The contract's flows, once the lab is green: every test below then leaves it green."""
    flows = expand(load_contract(ROOT / "contract.yaml"), lab.view)
    before = settle(flows, RECOVER_S)
    assert all(r.ok for r in before), f"the lab must be green first: {failing(before)}"
    return flows


def failing(results: list[Result]) -> list[str]:
    return [f"{r.flow.name}: {r.reason}" for r in results if not r.ok]


@contextmanager
def injected(lab: Lab, flows: list[Flow], state: Path,
             *specs: tuple[str, str, dict]) -> Iterator[list[faults.Fault]]:
    """Faults (kind, node, options), recorded as `edge fault` would; all cleared on the way out,
    whatever happened, and the contract all green again within RECOVER_S."""
    try:
        for kind, target, options in specs:
            faults.inject(kind, target, lab.view, options, state_dir=state)
        yield faults.active(state)
    finally:
        faults.clear(state, lab.view)
        assert faults.active(state) == []
        after = settle(flows, RECOVER_S, interval_s=0.5)
        assert all(r.ok for r in after), f"not green after undo: {failing(after)}"


def measure_until_broken(flows: list[Flow], broken: list[Flow]) -> dict[str, Result]:
    """Measure `flows` until every one of `broken` fails, or BREAK_S has passed."""
    deadline = time.monotonic() + BREAK_S
    while True:
        results = {r.flow.name: r for r in run_flows(flows)}
        if all(not results[f.name].ok for f in broken) or time.monotonic() > deadline:
            return results
        time.sleep(0.5)


@pytest.mark.parametrize("kind, target, options, breaks, spares", [
    pytest.param("stop", "lb1", {}, http_at("lb1"), http_at("lb2"), id="stop-lb1"),
    pytest.param("kill", "dea1", {}, named("inside-app@dea1"),
                 named("inside-app@dea2", "inside-api@controller"), id="kill-dea1"),
    pytest.param("pause", "ns2", {}, dns_at("ns2"), dns_at("ns1"), id="pause-ns2"),
    # Undo reconnects lb2 with its address, then its routes back to the internet: without them
    # the client's flows through lb2 would stay broken.
    pytest.param("disconnect", "lb2", {"network": "dmz"}, http_at("lb2"), http_at("lb1"),
                 id="disconnect-lb2-dmz"),
    pytest.param("storage", "controller", {"mode": "gone"}, named("inside-api@controller"),
                 named("inside-app@dea1", "inside-app@dea2"), id="storage-gone"),
    pytest.param("storage", "controller", {"mode": "readonly"}, named("inside-api@controller"),
                 named("inside-app@dea1", "inside-app@dea2"), id="storage-readonly"),
    pytest.param("flush-firewall", "firewall", {},
                 named("no-lb-stats-from-outside@lb1", "no-rndc-from-outside@ns1",
                       "no-bgp-at-firewall@firewall"),
                 lambda f: http_at("lb1")(f) or f.name == "no-controller-from-outside@controller",
                 id="flush-firewall"),
    pytest.param("break-zone", "ns1", {}, dns_at("ns1"), dns_at("ns2"), id="break-zone-ns1"),
])
def test_fault_breaks_its_flows_and_undo_restores_the_contract(
        lab: Lab, flows: list[Flow], tmp_path: Path, kind: str, target: str, options: dict,
        breaks: Pick, spares: Pick) -> None:
    broken, spared = [f for f in flows if breaks(f)], [f for f in flows if spares(f)]
    assert broken and spared, "the case names no flow of the contract"
    with injected(lab, flows, tmp_path, (kind, target, options)):
        results = measure_until_broken(broken + spared, broken)
        assert [f.name for f in broken if results[f.name].ok] == []
        assert failing([results[f.name] for f in spared]) == []


def test_netem_delays_one_node_and_drops_everything_at_another(lab: Lab, flows: list[Flow],
                                                              tmp_path: Path) -> None:
    """lb1's flows wait at least the delay; ns1's, on the same network, are not held by it:
    in the same round, every ns1 flow answers faster than every delayed one."""
    delay_ms = 300
    watched = [f for f in flows if http_at("lb1")(f) or http_at("lb2")(f) or dns_at("ns1")(f)]
    before = run_flows(watched)
    assert failing(before) == [], "the lab must be green first"
    without = {r.flow.name: r.latency_ms for r in before}
    with injected(lab, flows, tmp_path,
                  ("netem", "lb1", {"network": "dmz", "delay_ms": delay_ms}),
                  ("netem", "lb2", {"network": "dmz", "loss_pct": 100})):
        results = {r.flow.name: r for r in run_flows(watched)}
    slow = [r for r in results.values() if r.flow.target == "lb1"]
    dropped = [r for r in results.values() if r.flow.target == "lb2"]
    spared = [r for r in results.values() if r.flow.target == "ns1"]   # also on the dmz
    assert slow and dropped and spared, "the contract names no flow at lb1, lb2 or ns1"
    assert failing(slow) == [], "slower, but within the contract's timeout"
    assert all(r.latency_ms > delay_ms for r in slow), [(r.flow.name, r.latency_ms) for r in slow]
    assert [r.flow.name for r in dropped if r.ok] == []
    assert failing(spared) == []
    # Spared: each ns1 flow stays faster than every flow the delay hit, in the same round (no
    # absolute margin, which a busy machine's own slowness could eat).
    added = {r.flow.name: (without[r.flow.name], r.latency_ms) for r in spared}
    assert max(r.latency_ms for r in spared) < min(r.latency_ms for r in slow), \
        (added, [(r.flow.name, r.latency_ms) for r in slow])


def border_view(lab: Lab) -> tuple[str, BgpPeer]:
    """The border's routing table as vtysh shows it, and its BGP session with the firewall.

    vtysh must exit 0 and bgpd must answer with that session Established: with bgpd down (or
    vtysh failing) every BGP route is gone too, so "the prefix is not in the table" would pass
    for the wrong reason."""
    border = lab.container("border")
    table = docker_exec.run(border, ["vtysh", "-c", "show ip route"],
                            what="reading the border's routes").stdout
    peers = facts.BGP_SUMMARY.gather(border)
    firewall = lab.address("firewall", "transit")
    assert firewall in peers, f"bgpd on border has no session with the firewall: {peers}"
    assert peers[firewall].established, f"border's session with the firewall: {peers[firewall]}"
    return table, peers[firewall]


def test_withdrawn_prefix_takes_the_dmz_off_the_internet_until_announced(
        lab: Lab, flows: list[Flow], tmp_path: Path) -> None:
    dmz = lab.view.networks["dmz"].subnet

    def to_dmz(f: Flow) -> bool:
        address = f.params.get("address") or f.params["server"]
        return (f.vantage == "client" and f.must == "work"
                and ipaddress.ip_address(address) in ipaddress.ip_network(dmz))

    broken = [f for f in flows if to_dmz(f)]
    spared = [f for f in flows if f.vantage == "inside"]
    assert broken and spared, "the contract names no flow to the dmz or from inside"
    with injected(lab, flows, tmp_path, ("withdraw-prefix", "firewall", {})) as [fault]:
        assert fault.restore["prefixes"] == [dmz]
        results = measure_until_broken(broken + spared, broken)
        assert [f.name for f in broken if results[f.name].ok] == []
        assert failing([results[f.name] for f in spared]) == []
        table, session = border_view(lab)      # the session stays up; only the prefix goes
        assert dmz not in table and session.prefixes_received == 0, (table, session)
    table, session = border_view(lab)
    assert f"B>* {dmz}" in table and session.prefixes_received >= 1, (table, session)


def test_a_fault_already_active_is_refused(lab: Lab, flows: list[Flow], tmp_path: Path) -> None:
    with injected(lab, flows, tmp_path, ("storage", "controller", {"mode": "gone"})):
        for mode in ("gone", "readonly"):
            with pytest.raises(faults.FaultError, match="already active"):
                faults.inject("storage", "controller", lab.view, {"mode": mode})
        assert len(faults.active(tmp_path)) == 1


def engine_view(lab: Lab) -> dict[str, tuple[str, list[str]]]:
    """Each node's container state and networks: what a wrongly started fault would change."""
    api = docker.from_env().api
    found = {}
    for name, node in lab.view.nodes.items():
        attrs = api.inspect_container(node.container_id)
        found[name] = (attrs["State"]["Status"], sorted(attrs["NetworkSettings"]["Networks"]))
    return found


def test_bad_requests_say_what_is_wrong_and_change_nothing(lab: Lab) -> None:
    bad = [("explode", "lb1", {}, "unknown fault kind 'explode'. Use one of: stop"),
           ("stop", "lb9", {}, "no node 'lb9'"),
           ("storage", "lb1", {"mode": "gone"}, "does not apply to lb1 (role loadbalancer)"),
           ("withdraw-prefix", "border", {}, "applies to nodes of role firewall: firewall"),
           ("break-zone", "ns2", {}, "ns2 is a secondary"),
           ("storage", "controller", {}, "needs option mode: one of gone, readonly"),
           ("storage", "controller", {"mode": "melted"}, "mode 'melted' is unknown"),
           ("disconnect", "lb1", {}, "needs option network: one of lb1's networks (dmz, paas)"),
           ("disconnect", "lb1", {"network": "internet"}, "lb1 is not on network 'internet'"),
           ("netem", "lb1", {"network": "dmz"}, "needs at least one of delay_ms, loss_pct, rate"),
           ("netem", "lb1", {"network": "dmz", "loss_pct": 150}, "loss_pct must be a number"),
           ("netem", "lb1", {"network": "dmz", "rate": "fast"}, "rate 'fast' is not a rate"),
           ("stop", "lb1", {"network": "dmz"}, "stop takes no option network")]
    before = engine_view(lab)
    for kind, target, options, message in bad:
        with pytest.raises(faults.FaultError) as err:
            faults.inject(kind, target, lab.view, options)
        assert message in str(err.value), (kind, target, options)
    assert engine_view(lab) == before
