"""The watcher without a lab: N-of-M flow states, the alarm classes they add up to, alarm
events as data, and reading the watcher's state while its reader threads append to it (probe
agents stood in for by prepared streams of their JSON lines)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from edge.lab.watch import (
    DEGRADED,
    EXTERNAL,
    INTERNAL,
    FlowState,
    Thresholds,
    Watcher,
    classify,
    json_sink,
    status_line,
)
from edge.model.contract import Contract, Flow

# No settle period: these streams take milliseconds of real time (tests/unit/
# test_watch_hysteresis.py drives the hysteresis with a clock of its own).
TH = Thresholds(interval_s=0.2, window=3, down=2, slow_window=4, settle_s=0.0)
CONTRACT = Contract(Path("contract.yaml"), 1.0, 1.0, ())


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
    assert state.state(100) == "degraded"      # one failure is not an outage
    state.add(False, 1.0)
    assert state.state(100) == "down"
    slow = FlowState(TH)
    for latency in (1.0, 1.0, 150.0, 150.0):
        slow.add(True, latency)
    assert slow.state(100) == "ok"             # half the slow window fast: not slow yet
    slow.add(True, 150.0)
    assert slow.state(100) == "slow"


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


class Agents:
    """Stands in for the Docker client: the probe agent of each vantage container is a stream
    of prepared lines, `ok(round, flow)` deciding each probe's outcome."""

    def __init__(self, rounds: int, ok: Callable[[int, Flow], bool]) -> None:
        self.api, self.rounds, self.ok = self, rounds, ok

    def exec_create(self, container: str, cmd: list[str], **options: object) -> dict:
        return {"Id": container}

    def exec_start(self, exec_id: str, stream: bool) -> Iterator[bytes]:
        mine = [f for f in FLOWS if f.container == exec_id]
        for n in range(self.rounds):
            for i, f in enumerate(mine):
                yield json.dumps({"i": i, "t": n * 0.2, "outcome": "answered",
                                  "status": 200 if self.ok(n, f) else 503,
                                  "latency_ms": float(n % 7)}).encode() + b"\n"

    def exec_inspect(self, exec_id: str) -> dict:
        return {}


def test_states_can_be_read_while_reader_threads_append() -> None:
    """Each vantage's reader thread appends samples while this thread reads the flows' states,
    switching threads as often as the interpreter can: no 'deque mutated during iteration'."""
    rounds = 1000
    flapping = Agents(rounds, lambda n, f: (n // 5 + len(f.name)) % 3 != 0)
    watcher = Watcher(FLOWS, CONTRACT, TH, client=flapping)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    reads, deadline = 0, time.monotonic() + 60
    try:
        with watcher:
            while len(watcher.recorded()[1]) < rounds * len(FLOWS) and \
                    time.monotonic() < deadline:
                assert set(watcher.states()) == {f.name for f in FLOWS}
                watcher.down()
                status_line(watcher)
                reads += 1
    finally:
        sys.setswitchinterval(switch)
    assert len(watcher.recorded()[1]) == rounds * len(FLOWS) and reads > 10


def test_alarms_are_data_and_their_text_is_for_people(tmp_path: Path) -> None:
    """ns1 fails for six rounds: a DEGRADED alarm on dns, recovering, then its clear, each
    carrying the alarm's fields; waiting matches on the fields; the JSON log has them as fields
    too."""
    log = tmp_path / "watch.jsonl"
    ns1_fails = Agents(12, lambda n, f: not (f.target == "ns1" and 2 <= n < 8))
    with Watcher(FLOWS, CONTRACT, TH, sinks=[json_sink(str(log))], client=ns1_fails) as watcher:
        alarm = watcher.wait_event("alarm", 0.0, 10.0, cls=DEGRADED, service="dns")
        clear = watcher.wait_event("clear", 0.0, 10.0, service="dns")
        assert watcher.wait_event("green", 0.0, 10.0)
        assert watcher.wait_event("alarm", 0.0, 0.1, service="apps") is None
        assert watcher.wait_event("alarm", 0.0, 0.1, cls=EXTERNAL) is None
    assert alarm and clear and alarm.t <= clear.t
    assert (alarm.alarm.cls, alarm.alarm.service, alarm.alarm.flows) == \
        (DEGRADED, "dns", ("dns-at-ns@ns1",))
    assert clear.alarm == alarm.alarm
    assert (alarm.label, clear.label) == ("DEGRADED (dns): dns-at-ns@ns1", "DEGRADED (dns) cleared")
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    raised = next(e for e in logged if e["kind"] == "alarm")
    assert raised | {"class": DEGRADED, "service": "dns", "flows": ["dns-at-ns@ns1"],
                     "label": alarm.label} == raised
    assert raised["active"] == [{"class": DEGRADED, "service": "dns", "flows": ["dns-at-ns@ns1"]}]
    assert "class" not in next(e for e in logged if e["kind"] == "green")
    assert [(e["kind"], e["class"]) for e in logged if e.get("service") == "dns"] == \
        [("alarm", DEGRADED), ("recovering", DEGRADED), ("clear", DEGRADED)]
