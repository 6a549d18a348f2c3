"""The watcher's alarm logic without a lab: synthetic probe results, at the agent's own cadence,
fed through the pure `AlarmMachine` with their own clock.

- a flapping recovery pages once per service and class, with ONE "recovering" per service,
  where the logic without hysteresis paged a dozen times;
- the first alarm of each class comes at the very sample it came at without hysteresis;
- a must-block flow that gets through is a SECURITY EXPOSURE naming it, cleared once blocked
  again; one that times out is blocked;
- must-block flows are probed every 5 s by default, must-work ones every 200 ms.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter, deque
from pathlib import Path
from typing import Callable, Iterator

import pytest

from edge.lab.events import Event, Sample
from edge.lab.probe_agent import schedule
from edge.lab.probes import judge
from edge.lab.watch import (
    DEGRADED,
    EXPOSED,
    EXTERNAL,
    INTERNAL,
    SECURITY,
    AlarmMachine,
    FlowState,
    Thresholds,
    Watcher,
    WatchError,
    classify,
)
from edge.model.contract import Contract, Flow

TH = Thresholds()       # the defaults: what `edge watch` and the apply watchdog run with
CONTRACT = Contract(Path("contract.yaml"), 2.0, 1.0, ())


def flow(rule: str, vantage: str, target: str, service: str, must: str = "work") -> Flow:
    kind, timeout = ("http", 2.0) if must == "work" else ("tcp", 1.0)
    return Flow(f"{rule}@{target}", rule, vantage, f"c-{vantage}", kind, must,
                {"address": target, "port": 80, "timeout": timeout}, {}, target, service)


LB1, LB2, DEA, NS1, NS2 = (flow("http-app-at-lb", "client", "lb1", "apps"),
                           flow("http-app-at-lb", "client", "lb2", "apps"),
                           flow("inside-app", "inside", "dea1", "apps"),
                           flow("dns-at-ns", "client", "ns1", "dns"),
                           flow("dns-at-ns", "client", "ns2", "dns"))
STATS = flow("no-lb-stats-from-outside", "client", "lb1", "", must="block")
WORK = [LB1, LB2, DEA, NS1, NS2]
FLOWS = WORK + [STATS]

Outcome = Callable[[float, Flow], bool]


def feed(seconds: float, ok: Outcome, latency: Callable[[float, Flow], float] | None = None,
         flows: list[Flow] = FLOWS) -> list[Sample]:
    """The samples the agents would send for `seconds`, in the order they start: each flow at
    its rate, as the probe agent's own scheduler times them."""
    periods = [TH.interval_s if f.must == "work" else TH.block_interval_s for f in flows]
    samples = []
    for when, ready in schedule(periods, 0.0):
        if when >= seconds:
            return samples
        for i in ready:
            f = flows[i]
            good = ok(round(when, 3), f)
            samples.append(Sample(f.name, f.vantage, round(when, 3), good,
                                  "answered" if good else "timeout",
                                  latency(when, f) if latency else 5.0))
    raise AssertionError("unreachable: the schedule never ends")


def run(samples: list[Sample], flows: list[Flow] = FLOWS,
        th: Thresholds = TH) -> tuple[list[tuple[int, Event]], AlarmMachine]:
    """Each sample into the machine, evaluated at its time: (sample index, event) of every
    event, and the machine at the end."""
    machine = AlarmMachine(flows, CONTRACT, th)
    out = []
    for i, sample in enumerate(samples):
        machine.add(sample)
        out += [(i, e) for e in machine.evaluate(sample.t)]
    return out, machine


def without_hysteresis(samples: list[Sample],
                       flows: list[Flow] = WORK) -> list[tuple[int, str, str, str]]:
    """The alarm logic as it was before hysteresis, as the oracle: plain N-of-M flow states, a
    failure's start forgotten at the first good probe, every change of `classify` paged at
    once. Returns (sample index, kind, service, class) per alarm and clear."""
    oks = {f.name: deque(maxlen=TH.window) for f in flows}
    lat = {f.name: deque(maxlen=TH.slow_window) for f in flows}
    last_ok = {f.name: float("-inf") for f in flows}
    since = {f.name: float("inf") for f in flows}
    raised: dict[str, str] = {}
    out = []
    for i, s in enumerate(samples):
        oks[s.flow].append(s.ok)
        if s.ok:
            lat[s.flow].append(s.latency_ms)
            last_ok[s.flow], since[s.flow] = max(last_ok[s.flow], s.t), float("inf")
        else:
            since[s.flow] = min(since[s.flow], s.t)
        states = {n: "down" if w.count(False) >= TH.down else "degraded" if False in w else
                  "slow" if len(lat[n]) == TH.slow_window and statistics.median(lat[n]) >
                  CONTRACT.latency_objective_ms else "ok" for n, w in oks.items()}
        now = {a.service: a.cls for a in classify(flows, states, ("inside",), last_ok, since)}
        out += [(i, "clear", gone, raised.pop(gone)) for gone in sorted(raised.keys() - now.keys())]
        for service, cls in now.items():
            if raised.get(service) != cls:
                raised[service] = cls
                out.append((i, "alarm", service, cls))
    return out


def firsts(events: list[tuple[int, str, str, str]]) -> dict[tuple[str, str], int]:
    """The sample index of the first alarm of each (service, class)."""
    found: dict[tuple[str, str], int] = {}
    for i, kind, service, cls in events:
        if kind == "alarm":
            found.setdefault((service, cls), i)
    return found


def flat(events: list[tuple[int, Event]]) -> list[tuple[int, str, str, str]]:
    return [(i, e.kind, e.alarm.service, e.alarm.cls) for i, e in events if e.alarm]


def down_between(start: float, end: float, *targets: str) -> Outcome:
    return lambda t, f: f.must == "block" or not (f.target in targets and start <= t < end)


def test_a_flow_recovers_only_after_k_good_probes_in_a_row() -> None:
    state = FlowState(TH)
    for t, ok in enumerate((True, False, False)):
        state.add(ok, 5.0, t)
    assert state.state(100) == "down" and state.failing_since == 1
    for t, ok in enumerate((True, False, True, True), start=3):
        state.add(ok, 5.0, t)   # 2 of 3 no longer failed, yet only 2 good in a row
    assert state.state(100) == "down" and state.failing_since == 1
    state.add(True, 5.0, 7)
    assert state.state(100) == "ok" and state.failing_since == float("inf")


def flapping(seed: int) -> Outcome:
    """The keystroke incident's recovery: lb1, lb2 and ns1 dead from 2 s, coming back from 6 s
    through 3 s of flapping (each probe good with a chance rising from 20 % to 80 %)."""
    rng = random.Random(seed)
    memo: dict[tuple[float, str], bool] = {}

    def ok(t: float, f: Flow) -> bool:
        if f.must == "block" or f.target not in ("lb1", "lb2", "ns1") or not 2 <= t < 9:
            return True
        if t < 6:
            return False
        return memo.setdefault((t, f.name), rng.random() < 0.2 + 0.2 * (t - 6))
    return ok


@pytest.mark.parametrize("seed", range(12))
def test_a_flapping_recovery_pages_once_per_service_and_class(seed: int) -> None:
    samples = feed(20.0, flapping(seed), flows=WORK)
    restore = next(i for i, s in enumerate(samples) if s.t >= 6)
    events, machine = run(samples, WORK)
    recovery = [(kind, service, cls) for i, kind, service, cls in flat(events) if i >= restore]
    assert max(Counter(recovery).values()) == 1, recovery
    assert sorted(service for kind, service, _ in recovery if kind == "recovering") == \
        ["apps", "dns"]
    assert [kind for kind, service, _ in recovery if service == "apps"][-1] == "clear"
    assert [kind for kind, service, _ in recovery if service == "dns"][-1] == "clear"
    assert machine.active() == [] and machine.green
    for service in ("apps", "dns"):   # a recovering service changes once per settle period
        times = [e.t for i, e in events if i >= restore and e.kind in ("alarm", "clear")
                 and e.alarm.service == service]
        assert all(b - a >= TH.settle_s for a, b in zip(times, times[1:])), times
    if seed == 0:   # what this replaces: the same probes paged 13 times after the restore
        old = [e for e in without_hysteresis(samples) if e[0] >= restore]
        assert len(old) == 13, old


def slow_path(t: float, f: Flow) -> float:
    """Latency (ms) of the network shift: the balancers' paths slow from 3 s."""
    return 300.0 if f.target in ("lb1", "lb2") and t >= 3 else 5.0


def test_the_first_alarm_of_each_class_comes_at_the_same_sample_as_before() -> None:
    """Detection is not delayed: for each incident shape, the first alarm of every (service,
    class) is raised at the very sample the logic without hysteresis raised it."""
    shapes: dict[str, tuple[Outcome, Callable[[float, Flow], float] | None]] = {
        "keystroke": (down_between(2.0, 99.0, "lb1", "lb2", "ns1"), None),
        "keystroke, lb2 a round late": (
            lambda t, f: not ((f.target == "lb1" and t >= 2.0) or (f.target == "lb2" and
                                                                   t >= 2.2)), None),
        "partial dns": (down_between(1.0, 99.0, "ns1"), None),
        "storage": (down_between(1.4, 99.0, "dea1", "lb1", "lb2"), None),
        "network shift": (lambda t, f: True, slow_path),
        "flapping": (flapping(3), None),
    }
    for name, (ok, latency) in shapes.items():
        samples = feed(6.0, ok, latency, flows=WORK)
        new = firsts(flat(run(samples, WORK)[0]))
        assert new and new == firsts(without_hysteresis(samples)), name


def test_keystroke_is_raised_by_the_second_failed_probe_of_the_last_balancer() -> None:
    samples = feed(4.0, down_between(2.0, 99.0, "lb1", "lb2"))
    events, _ = run(samples)
    second_lb2 = [i for i, s in enumerate(samples) if s.flow == LB2.name and not s.ok][1]
    assert [(i, e.label) for i, e in events if e.kind == "alarm"] == [
        (second_lb2 - 1, "DEGRADED (apps): http-app-at-lb@lb1"),
        (second_lb2, "EXTERNAL OUTAGE (apps): http-app-at-lb@lb1, http-app-at-lb@lb2 "
                     "(was DEGRADED)")]


def apps_events(ok: Outcome, seconds: float) -> list[tuple[float, str, str, str]]:
    """(time, kind, class, was) of every alarm event on apps."""
    events, machine = run(feed(seconds, ok))
    assert machine.active() == []
    return [(e.t, e.kind, e.alarm.cls, e.was) for _, e in events
            if e.alarm and e.alarm.service == "apps"]


def test_a_relapse_while_recovering_is_told_once_it_held_a_settle_period() -> None:
    """lb1 and lb2 dead at 2 s; lb1 back at 6 s, dead again from 10 s to 16 s; lb2 back at
    20 s. A worsening while recovering waits a settle period, as a getting better does."""
    def ok(t: float, f: Flow) -> bool:
        return f.must == "block" or not ((f.target == "lb1" and (2 <= t < 6 or 10 <= t < 16))
                                         or (f.target == "lb2" and 2 <= t < 20))
    assert apps_events(ok, 30.0) == [
        (2.2, "alarm", DEGRADED, ""), (2.2, "alarm", EXTERNAL, DEGRADED),
        (6.4, "recovering", EXTERNAL, ""),
        (8.4, "alarm", DEGRADED, EXTERNAL),     # lb1 back, held 2 s
        (12.2, "alarm", EXTERNAL, DEGRADED),    # lb1 dead again at 10.2 s, held 2 s
        (18.4, "alarm", DEGRADED, EXTERNAL),    # lb1 back at 16.4 s
        (22.4, "clear", DEGRADED, "")]          # lb2 back at 20.4 s


def test_internal_recovers_through_the_class_it_holds() -> None:
    """Storage back at 6 s: the inside flow comes back before the outside ones (the balancers'
    health checks rise 3 s later). INTERNAL turns EXTERNAL, which held a settle period; the
    balancers both come back in one probe round: no DEGRADED in between."""
    def ok(t: float, f: Flow) -> bool:
        return f.must == "block" or not ((f.target == "dea1" and 2 <= t < 6) or
                                         (f.target in ("lb1", "lb2") and 2 <= t < 9))
    assert apps_events(ok, 20.0) == [
        (2.2, "alarm", DEGRADED, ""), (2.2, "alarm", INTERNAL, DEGRADED),
        (6.4, "recovering", INTERNAL, ""), (8.4, "alarm", EXTERNAL, INTERNAL),
        (11.4, "clear", EXTERNAL, "")]


def exposure(opened: float, closed: float, outcome: str = "open") -> Outcome:
    """The must-block flow gets through (`outcome`) from `opened` to `closed`, judged as
    `edge verify` judges it; everything else is fine."""
    def ok(t: float, f: Flow) -> bool:
        if f.must == "work":
            return True
        return judge(f, {"outcome": outcome if opened <= t < closed else "timeout"})[0]
    return ok


def test_a_must_block_flow_that_opens_is_a_security_exposure_until_it_closes() -> None:
    samples = feed(60.0, exposure(12.0, 22.0))
    events, machine = run(samples)
    raised = [(samples[i].t, e.kind, e.label) for i, e in events if e.alarm]
    # probed at 15 s (open): raised at once; blocked again at 25, 30, 35 s: cleared at the third
    assert raised == [
        (15.0, "alarm", f"{SECURITY} ({EXPOSED}): no-lb-stats-from-outside@lb1"),
        (35.0, "clear", f"{SECURITY} ({EXPOSED}) cleared")]
    alarm = next(e for _, e in events if e.kind == "alarm")
    assert alarm.to_json() == {"t": 15.0, "kind": "alarm", "label": raised[0][2],
                               "class": SECURITY, "service": EXPOSED, "flows": [STATS.name],
                               "was": ""}      # the log's and the webhook's fields
    assert machine.active() == []


def test_an_exposure_that_comes_and_goes_pages_once() -> None:
    """Open at 10, 20 and 30 s, blocked in between (a firewall reloading its rules): one alarm,
    and its clear after three blocked probes in a row."""
    def ok(t: float, f: Flow) -> bool:
        return f.must == "work" or not (10 <= t < 40 and t % 10 == 0)
    samples = feed(90.0, ok)
    assert [(samples[i].t, e.kind) for i, e in run(samples)[0] if e.alarm] == \
        [(10.0, "alarm"), (45.0, "clear")]   # blocked at 35, 40 and 45 s


@pytest.mark.parametrize("outcome", ["refused", "answered"])
def test_anything_that_gets_through_is_an_exposure(outcome: str) -> None:
    events, machine = run(feed(12.0, exposure(0.0, 99.0, outcome)))
    assert [e.alarm.cls for _, e in events if e.kind == "alarm"] == [SECURITY]
    assert [a.flows for a in machine.active()] == [(STATS.name,)]


def test_a_must_block_flow_that_times_out_is_blocked() -> None:
    assert judge(STATS, {"outcome": "timeout"}) == (True, "")
    assert judge(STATS, {"outcome": "unreachable"}) == (True, "")
    events, machine = run(feed(60.0, exposure(0.0, 0.0)))
    assert [e.kind for _, e in events] == ["green"] and machine.active() == []


class Agents:
    """Stands in for the Docker client: keeps what each agent was started with."""

    def __init__(self) -> None:
        self.api, self.started = self, {}

    def exec_create(self, container: str, cmd: list[str], **options: object) -> dict:
        self.started[container] = cmd
        return {"Id": container}

    def exec_start(self, exec_id: str, stream: bool) -> Iterator[bytes]:
        return iter(())

    def exec_inspect(self, exec_id: str) -> dict:
        return {}


def started_with(th: Thresholds) -> dict[str, list[dict]]:
    """The flows each vantage's agent is given, by container."""
    agents = Agents()
    with Watcher(FLOWS, CONTRACT, th, client=agents):
        pass
    return {container: json.loads(cmd[3]) for container, cmd in agents.started.items()}


def test_must_block_flows_are_probed_every_5_s_by_default() -> None:
    payload = started_with(TH)
    client = payload["c-client"]
    assert [f.get("every") for f in client] == [None, None, None, None, 5.0]
    assert [f["timeout"] for f in client] == \
        [CONTRACT.watch_timeout_s] * 4 + [STATS.params["timeout"]]
    # the agent's scheduler, given these flows, over 20 s
    periods = [f.get("every", TH.interval_s) for f in client]
    probes: Counter[int] = Counter()
    times = []
    for when, ready in schedule(periods, 100.0):
        if when >= 120.0:
            break
        probes.update(ready)
        times += [round(when - 100.0, 6)] if 4 in ready else []
    assert times == [0.0, 5.0, 10.0, 15.0]
    assert [probes[i] for i in range(5)] == [100, 100, 100, 100, 4]
    assert "every" not in json.dumps(payload["c-inside"])


def test_must_block_probing_can_be_turned_off() -> None:
    assert all("every" not in f for flows in started_with(Thresholds(block_interval_s=0)).values()
               for f in flows)


@pytest.mark.parametrize(("change", "option"), [
    ({"down": 4}, "--down 4 is more than --window 3"), ({"recover": 0}, "--recover 0"),
    ({"settle_s": -1.0}, "--settle -1.0"), ({"block_interval_s": -5}, "--block-interval -5"),
    ({"window": 2.5}, "--window 2.5"), ({"interval_s": 0}, "--interval 0")])
def test_thresholds_that_cannot_work_are_refused_naming_the_option(change: dict,
                                                                   option: str) -> None:
    with pytest.raises(WatchError, match="^edge watch: " + option.replace(".", r"\.")):
        Thresholds(**change)
