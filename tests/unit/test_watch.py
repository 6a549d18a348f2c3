"""The watcher's pure parts: N-of-M flow states and the alarm classes they add up to."""

from __future__ import annotations

from edge.contract import Flow
from edge.watch import DEGRADED, EXTERNAL, INTERNAL, FlowState, Thresholds, classify

TH = Thresholds(interval_s=0.2, window=3, down=2, slow_window=4)


def flow(rule: str, vantage: str, target: str, service: str) -> Flow:
    return Flow(f"{rule}@{target}", rule, vantage, f"c-{vantage}", "http", "work", {}, {},
                target, service)


FLOWS = [flow("http-app-at-lb", "client", "lb1", "apps"),
         flow("http-app-at-lb", "client", "lb2", "apps"),
         flow("inside-app", "inside", "dea1", "apps"),
         flow("dns-at-ns", "client", "ns1", "dns"),
         flow("dns-at-ns", "client", "ns2", "dns")]


def states(**down: str) -> dict[str, str]:
    return {f.name: down.get(f.target, "ok") for f in FLOWS}


def test_n_of_m() -> None:
    state = FlowState(TH)
    for ok in (True, True, False):
        state.add(ok, 1.0)
    assert state.state(TH, 100) == "degraded"      # one failure is not an outage
    state.add(False, 1.0)
    assert state.state(TH, 100) == "down"
    slow = FlowState(TH)
    for latency in (1.0, 1.0, 150.0, 150.0):
        slow.add(True, latency)
    assert slow.state(TH, 100) == "ok"             # half the slow window fast: not slow yet
    slow.add(True, 150.0)
    assert slow.state(TH, 100) == "slow"


def test_quiet_lab_raises_nothing() -> None:
    assert classify(FLOWS, states(), ("inside",)) == []


def test_outside_down_inside_up_is_an_external_outage() -> None:
    alarms = classify(FLOWS, states(lb1="down", lb2="down"), ("inside",))
    assert [(a.cls, a.service) for a in alarms] == [(EXTERNAL, "apps")]
    assert set(alarms[0].flows) == {"http-app-at-lb@lb1", "http-app-at-lb@lb2"}


def test_half_a_tier_down_is_degraded() -> None:
    alarms = classify(FLOWS, states(ns1="down"), ("inside",))
    assert [(a.cls, a.service, a.flows) for a in alarms] == [(DEGRADED, "dns", ("dns-at-ns@ns1",))]


def test_inside_down_is_internal() -> None:
    alarms = classify(FLOWS, states(dea1="down", lb1="down", lb2="down"), ("inside",))
    assert [(a.cls, a.service) for a in alarms] == [(INTERNAL, "apps")]


def test_too_slow_is_degraded() -> None:
    alarms = classify(FLOWS, states(lb1="slow", lb2="slow"), ("inside",))
    assert [(a.cls, a.service) for a in alarms] == [(DEGRADED, "apps")]


def test_no_external_outage_before_the_inside_view_confirms_the_service() -> None:
    down = states(lb1="down", lb2="down")
    since = {"http-app-at-lb@lb1": 5.0, "http-app-at-lb@lb2": 5.2}
    stale = {"inside-app@dea1": 4.8}          # inside's last good probe predates the failure
    assert classify(FLOWS, down, ("inside",), stale, since) == []
    fresh = {"inside-app@dea1": 5.4}
    assert [a.cls for a in classify(FLOWS, down, ("inside",), fresh, since)] == [EXTERNAL]
