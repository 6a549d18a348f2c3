"""Continuous outside-in probing: notice, within seconds, that users outside lost the service, or
that something which must stay closed opened.

A probe agent runs in each vantage container (edge/lab/probe_agent.py in watch mode: a thread pool,
never a process per probe) and streams one JSON line per probe. Here each line becomes a
`Sample`; each must-work flow keeps its last `window` samples and is *down* when `down` of them
failed, *slow* when it works but the median latency is above the contract's objective. Then, per
service (the contract's `service:`), the outside and the inside views are compared:

- INTERNAL: the PaaS itself fails (an inside flow of the service is down),
- EXTERNAL OUTAGE: inside sees the service, every path of an outside flow is down
  ("we were the only ones who knew the system was up"),
- DEGRADED: users are still served, but half a tier is gone (some flows of an outside rule down)
  or the service is too slow.

The contract's must-block flows are probed too, at a lower rate (`block_interval_s`: they cost a
thread waiting out a timeout each) and judged as `edge verify` judges them: a timeout or no route
is blocked, anything that got through (connected, answered, refused) raises a SECURITY EXPOSURE
naming the flow, at its first open probe.

Alarms an on-call engineer can trust (`AlarmMachine`, pure: samples and the time in, events out).
Getting worse is reported as soon as the N-of-M rule says so: nothing here delays a service's
first alarm. Getting better is reported slowly, because a lab coming back flaps (paths come and go
while routes, health checks and caches settle), and a page that says cleared, raised, cleared
within a second is one nobody believes:

- a flow that was down counts as recovered only after `recover` good probes in a row (an exposed
  must-block flow as closed after `recover` blocked ones);
- when a service's flows say better than its alarm, ONE "recovering" event says so; from then
  until it clears, a change of its class either way must hold for `settle_s` (it then changes to
  the class its flows held all along that period), so it changes at most once per `settle_s`, and
  it clears after a whole `settle_s` with nothing to raise. A relapse while recovering is told
  `settle_s` late: the price of not paging for every flap.

Alarms travel as events carrying the alarm as data (class, service, flows: see edge/lab/events.py);
sinks (terminal, JSON log, webhook) receive them. The change gate (edge apply) runs the same
watcher as its watchdog.

The agents' reader threads feed samples to the machine and append events under the watcher's
lock; every reader from another thread asks under that lock and works on a copy.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import docker

from edge.engines import docker_exec
from edge.engines.processes import OWNER_ENV, owner_mark
from edge.infra.engines import client_for
from edge.lab.drift_watch import DriftWatch
from edge.lab.events import Alarm, Event, Sample
from edge.lab.probes import AGENT, judge
from edge.lab.signing import signed_headers
from edge.model.contract import Contract, Flow

EXTERNAL, DEGRADED, INTERNAL = "EXTERNAL OUTAGE", "DEGRADED", "INTERNAL"
SECURITY = "SECURITY EXPOSURE"
# The `service` of a SECURITY EXPOSURE alarm: a must-block flow serves no one, it protects.
EXPOSED = "security"
# How much worse one class is than another: recovery goes down this scale.
RANK = {DEGRADED: 1, EXTERNAL: 2, INTERNAL: 3}
# The events that carry an alarm (those a person on call is told of).
ALARM_KINDS = ("alarm", "recovering", "clear")
# The agent stops by itself after this long even if nobody stops it.
AGENT_LIMIT_S = 6 * 3600
# Run in a vantage's container on another engine: SIGTERM to each process whose environment holds
# the line {mark} (EDGE_OWNER=pid:start of this edge).
STOP_AGENTS = ("for p in /proc/[0-9]*; do tr '\\0' '\\n' < \"$p/environ\" 2>/dev/null "
               "| grep -qx '{mark}' && kill -TERM \"${{p#/proc/}}\"; done; true")


class WatchError(ValueError):
    """Thresholds that cannot work; the message names the option and what to use."""


# The `edge watch` option that sets each threshold, for error messages.
OPTIONS = {"interval_s": "--interval", "window": "--window", "down": "--down",
           "slow_window": "slow_window", "recover": "--recover", "settle_s": "--settle",
           "block_interval_s": "--block-interval"}


@dataclass(frozen=True)
class Thresholds:
    """N-of-M: a flow is down when `down` of its last `window` samples failed. It is slow when
    the median latency of its last `slow_window` samples is above the objective: a longer
    window, so that a busy moment of this machine (a converge) is not taken for a slow path.

    Recovery (see the module docstring): `recover` good probes in a row, `settle_s` between two
    class changes of a recovering service. Must-block flows are probed every `block_interval_s`
    (0: not at all)."""

    interval_s: float = 0.2
    window: int = 3
    down: int = 2
    slow_window: int = 10
    recover: int = 3
    settle_s: float = 2.0
    block_interval_s: float = 5.0

    def __post_init__(self) -> None:
        least = {"interval_s": 0.01, "window": 1, "down": 1, "slow_window": 1, "recover": 1,
                 "settle_s": 0.0, "block_interval_s": 0.0}
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or value < least[f.name] or \
                    (f.type == "int" and not isinstance(value, int)):
                kind = "a whole number" if f.type == "int" else "a number of seconds"
                raise WatchError(f"edge watch: {OPTIONS[f.name]} {value!r} is not usable: use "
                                 f"{kind} of at least {least[f.name]:g}")
        if self.down > self.window:
            raise WatchError(f"edge watch: --down {self.down} is more than --window "
                             f"{self.window}, so no flow could ever be down: use a --down "
                             "between 1 and --window")


class FlowState:
    """The last samples of one flow and what they say.

    A flow goes down when `down` of its last `window` samples failed, and stays down until
    `recover` good probes in a row; its failure began at its first failed probe and lasts until
    then."""

    def __init__(self, th: Thresholds) -> None:
        self.down_at, self.recover = th.down, th.recover
        self.oks: deque[bool] = deque(maxlen=th.window)
        self.latencies: deque[float] = deque(maxlen=th.slow_window)
        self.streak = 0                     # good probes in a row
        self.latched = False                # went down, has not recovered yet
        self.last_ok = float("-inf")        # when the last good probe started (watch time)
        self.failing_since = float("inf")   # when the current failure started

    def add(self, ok: bool, latency_ms: float, t: float = 0.0) -> None:
        self.oks.append(ok)
        if ok:
            self.streak += 1
            self.latencies.append(latency_ms)
            self.last_ok = max(self.last_ok, t)
            self.latched = self.latched and self.streak < self.recover
            if not self.is_down():
                self.failing_since = float("inf")
        else:
            self.streak = 0
            self.failing_since = min(self.failing_since, t)
            self.latched = self.latched or self.is_down()

    def is_down(self) -> bool:
        return self.latched or sum(not ok for ok in self.oks) >= self.down_at

    def state(self, objective_ms: float) -> str:
        """ok, slow, degraded (some recent failures) or down (N of M failed, not recovered)."""
        if self.is_down():
            return "down"
        if not all(self.oks):
            return "degraded"
        if len(self.latencies) == self.latencies.maxlen and \
                statistics.median(self.latencies) > objective_ms:
            return "slow"
        return "ok"


def assess(flows: list[Flow], states: dict[str, str], inside: tuple[str, ...],
           last_ok: dict[str, float] | None = None,
           failing_since: dict[str, float] | None = None) -> tuple[list[Alarm], set[str]]:
    """The alarms that the flows' states add up to (pure: see the module docstring), and the
    services whose class is not known yet.

    With the probes' times given, an EXTERNAL OUTAGE needs proof that inside still sees the
    service: a good inside probe that started after the outside flows began to fail. Until the
    inside view has caught up, the service is undecided: it raises nothing rather than the wrong
    class, and keeps whatever it had raised."""
    alarms, undecided = [], set()
    for service in sorted({f.service for f in flows if f.service}):
        mine = [f for f in flows if f.service == service]
        inner_down = [f.name for f in mine if f.vantage in inside and states[f.name] == "down"]
        outer = [f for f in mine if f.vantage not in inside]
        outer_down = [f.name for f in outer if states[f.name] == "down"]
        rules: dict[str, list[Flow]] = {}
        for f in outer:
            rules.setdefault(f.rule, []).append(f)
        cut = [f.name for rule in rules.values() if all(states[f.name] == "down" for f in rule)
               for f in rule]
        slow = [f.name for f in outer if states[f.name] == "slow"]
        inner = [f.name for f in mine if f.vantage in inside]
        if inner_down:
            alarms.append(Alarm(INTERNAL, service, tuple(inner_down + outer_down)))
        elif cut:
            began = min((failing_since or {}).get(name, float("-inf")) for name in cut)
            if all((last_ok or {}).get(name, float("inf")) >= began for name in inner):
                alarms.append(Alarm(EXTERNAL, service, tuple(cut)))
            else:
                undecided.add(service)
        elif outer_down or slow:
            alarms.append(Alarm(DEGRADED, service, tuple(outer_down + slow)))
    return alarms, undecided


def classify(flows: list[Flow], states: dict[str, str], inside: tuple[str, ...],
             last_ok: dict[str, float] | None = None,
             failing_since: dict[str, float] | None = None) -> list[Alarm]:
    """The alarms that the flows' states add up to, without hysteresis (see `assess`)."""
    return assess(flows, states, inside, last_ok, failing_since)[0]


def _rank(alarm: Alarm | None) -> int:
    return 0 if alarm is None else RANK[alarm.cls]


@dataclass
class ServiceAlarm:
    """One service's raised alarm, and its recovery (the module docstring's rules).

    While it is recovering, the flows' verdicts since they began to differ from the alarm (one
    way) are a run; after `settle_s` of run the class becomes the verdict closest to the alarm
    that held during the run. A verdict that did not outlast a probe round does not count: it
    is the order in which one round's results came in (lb1 back a line before lb2), not a
    state of the service."""

    alarm: Alarm
    recovering: bool = False            # "recovering" said: changes must hold for settle_s
    since: float | None = None          # when the run began (None: no run)
    saying: Alarm | None = None         # the run's verdict now...
    said_at: float = 0.0                # ...since then
    bound: Alarm | None = None          # the run's verdict closest to `alarm` that held...
    bounded: bool = False               # ...if any did

    def step(self, verdict: Alarm | None, now: float, th: Thresholds) -> list[Event]:
        """The events of one evaluation; `verdict` is what the flows say now. After a "clear"
        event the service has no alarm any more: the caller drops this object."""
        was = self.alarm
        if _rank(verdict) == _rank(was):        # the flows agree with the alarm (again)
            self.since = None
            return []
        better = _rank(verdict) < _rank(was)
        if not better and not self.recovering:  # getting worse: at once
            self.alarm, self.since = verdict, None
            return [Event(now, "alarm", alarm=verdict, was=was.cls)]
        events = []
        if better and not self.recovering:
            self.recovering = True
            events.append(Event(now, "recovering", alarm=was))
        if self.since is None or (_rank(self.saying) < _rank(was)) != better:
            self.since, self.saying, self.said_at, self.bounded = now, verdict, now, False
        elif _rank(verdict) != _rank(self.saying):
            self._held(now - self.said_at >= th.interval_s)
            self.saying, self.said_at = verdict, now
        if now - self.since < th.settle_s:
            return events
        self._held(True)                        # what the flows say now counts, however new
        target = self.bound
        self.since = None
        if target is None:
            return events + [Event(now, "clear", alarm=was)]
        self.alarm = target
        return events + [Event(now, "alarm", alarm=target, was=was.cls)]

    def _held(self, counts: bool) -> None:
        """The run's current verdict ends (or is judged): into the bound if it `counts`."""
        distance = abs(_rank(self.saying) - _rank(self.alarm))
        if counts and (not self.bounded or distance < abs(_rank(self.bound) -
                                                          _rank(self.alarm))):
            self.bound, self.bounded = self.saying, True


class AlarmMachine:
    """Samples in, events out: flow states, alarm classes and their hysteresis.

    Pure: no thread, no I/O, no clock of its own (`evaluate` is given the time), so that any
    sequence of probe results can be replayed through it without a lab."""

    def __init__(self, flows: list[Flow], contract: Contract, th: Thresholds) -> None:
        self.th, self.contract = th, contract
        self.work = [f for f in flows if f.must == "work"]
        self.block = [f for f in flows if f.must == "block"]
        # a must-block flow is exposed from its first open probe: 1 of 1
        self.flows = {f.name: FlowState(th) for f in self.work} | \
            {f.name: FlowState(replace(th, window=1, down=1)) for f in self.block}
        self.services: dict[str, ServiceAlarm] = {}
        self.exposures: dict[str, Alarm] = {}      # by must-block flow
        self.green = False

    def add(self, sample: Sample) -> None:
        self.flows[sample.flow].add(sample.ok, sample.latency_ms, sample.t)

    def states(self) -> dict[str, str]:
        """Every must-work flow's state."""
        return {f.name: self.flows[f.name].state(self.contract.latency_objective_ms)
                for f in self.work}

    def active(self) -> list[Alarm]:
        return [s.alarm for s in self.services.values()] + list(self.exposures.values())

    def evaluate(self, now: float) -> list[Event]:
        """Raise, change and clear alarms after new samples; `now` in the samples' time."""
        states = self.states()
        alarms, undecided = assess(
            self.work, states, self.contract.inside,
            {f.name: self.flows[f.name].last_ok for f in self.work},
            {f.name: self.flows[f.name].failing_since for f in self.work})
        verdicts = {a.service: a for a in alarms}
        events = []
        for service in sorted(verdicts.keys() | self.services.keys()):
            raised = self.services.get(service)
            verdict = raised.alarm if raised and service in undecided else verdicts.get(service)
            if raised is None:
                self.services[service] = ServiceAlarm(verdict)
                events.append(Event(now, "alarm", alarm=verdict))
                continue
            changes = raised.step(verdict, now, self.th)
            if changes and changes[-1].kind == "clear":
                del self.services[service]
            events += changes
        for flow in self.block:
            exposed = self.flows[flow.name].is_down()
            if exposed and flow.name not in self.exposures:
                self.exposures[flow.name] = Alarm(SECURITY, EXPOSED, (flow.name,))
                events.append(Event(now, "alarm", alarm=self.exposures[flow.name]))
            elif not exposed and flow.name in self.exposures:
                events.append(Event(now, "clear", alarm=self.exposures.pop(flow.name)))
        green = all(len(self.flows[f.name].oks) == self.th.window for f in self.work) \
            and all(v == "ok" for v in states.values())
        if green and not self.green:
            events.append(Event(now, "green", f"all {len(states)} must-work flows ok"))
        self.green = green
        return events


Sink = Callable[[Event, list[Alarm]], None]


def terminal_sink(stream: Any = sys.stdout) -> Sink:
    """Alarm lines for a person at a terminal."""
    def sink(event: Event, active: list[Alarm]) -> None:
        print(f"{time.strftime('%H:%M:%S')} +{event.t:7.2f}s  {event.kind.upper():8} "
              f"{event.label}", file=stream, flush=True)
    return sink


def json_sink(path: str) -> Sink:
    """Every event as one JSON line (an alarm's class, service and flows as fields of their
    own), with the alarms active after it."""
    def sink(event: Event, active: list[Alarm]) -> None:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"time": time.time(), **event.to_json(),
                                  "active": [a.to_json() for a in active]}) + "\n")
    return sink


def webhook_sink(url: str, key: bytes | None = None, timeout_s: float = 2.0) -> Sink:
    """POST each alarm, recovering and clear as JSON to `url`, off the probing path (a thread
    per post). With a `key` each POST is signed (edge/lab/signing.py: X-Edge-Timestamp and
    X-Edge-Signature), so the receiver can refuse forged and replayed alarms."""
    def post(body: bytes) -> None:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers |= signed_headers(key, body)   # signed when sent, not when queued
        request = urllib.request.Request(url, body, headers)
        try:
            urllib.request.urlopen(request, timeout=timeout_s).close()
        except OSError as err:
            print(f"edge watch: webhook {url}: {err}", file=sys.stderr)

    def sink(event: Event, active: list[Alarm]) -> None:
        if event.kind in ALARM_KINDS:
            body = json.dumps({**event.to_json(), "active": [str(a) for a in active]}).encode()
            threading.Thread(target=post, args=(body,), daemon=True).start()
    return sink


@dataclass
class Watcher:
    """Probe `flows` continuously from their vantage containers until stopped: the must-work
    ones (`flows` after construction; not those the contract marks `watch: false`) every
    `interval_s`, the must-block ones (`block_flows`,
    none when `block_interval_s` is 0) every `block_interval_s`. With `drift`, nodes changed by
    hand raise DRIFT alarms through the same sinks (edge/lab/drift_watch.py)."""

    flows: list[Flow]
    contract: Contract
    thresholds: Thresholds = Thresholds()
    sinks: list[Sink] = field(default_factory=list)
    client: docker.DockerClient = field(default_factory=docker.from_env)
    samples: list[Sample] = field(default_factory=list)     # of the must-work flows
    events: list[Event] = field(default_factory=list)
    started: float = 0.0
    drift: DriftWatch | None = None

    def __post_init__(self) -> None:
        self.block_flows = [f for f in self.flows if f.must == "block"] \
            if self.thresholds.block_interval_s else []
        self.flows = [f for f in self.flows if f.must == "work" and f.watched]
        self._machine = AlarmMachine(self.flows + self.block_flows, self.contract,
                                     self.thresholds)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._execs: list[str] = []                   # the agents on the local engine
        self._remote: list[tuple[Flow, docker.DockerClient]] = []   # one per vantage elsewhere
        self._threads: list[threading.Thread] = []
        self._green = threading.Event()

    def start(self) -> Watcher:
        """Start an agent per vantage point (and the drift check). Interrupted or failing
        halfway, what was started is stopped again before the error goes on."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Watcher:
        self.started = time.time()
        by_vantage: dict[str, list[Flow]] = {}
        for flow in self.flows + self.block_flows:
            by_vantage.setdefault(flow.container, []).append(flow)
        for container, flows in by_vantage.items():
            payload = json.dumps([self._agent_flow(f) for f in flows])
            # The owner mark: an agent whose edge was killed (SIGKILL gives the watcher no
            # chance to stop it) is found and stopped by the next edge command.
            # As `nobody`: the agent only opens sockets to lab addresses (no low port, no raw
            # socket), so it needs no privilege in the container.
            # A vantage on another engine (a spread stack) gets a client of its own there.
            engine = self.client
            if not flows[0].endpoint.local:
                engine = client_for(flows[0].endpoint)
                self._remote.append((flows[0], engine))
            exec_id = engine.api.exec_create(container, [
                "python3", "-c", AGENT, payload, str(self.thresholds.interval_s),
                str(AGENT_LIMIT_S)], environment={OWNER_ENV: owner_mark()}, user="nobody")["Id"]
            if engine is self.client:
                self._execs.append(exec_id)
            stream = engine.api.exec_start(exec_id, stream=True)
            thread = threading.Thread(target=self._read, args=(flows, stream), daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.drift is not None:
            self.drift.start(self.raise_alarm)
        return self

    def _agent_flow(self, flow: Flow) -> dict[str, Any]:
        """A flow as the agent takes it: a must-work flow at the watch's rate with its short
        timeout (a dead path must show within the interval or so); a must-block one at its own
        rate with the contract's block timeout, as `edge verify` probes it."""
        if flow.must == "work":
            return {"kind": flow.kind, **flow.params, "timeout": self.contract.watch_timeout_s}
        return {"kind": flow.kind, **flow.params, "every": self.thresholds.block_interval_s}

    def agent_pids(self) -> list[int]:
        """The host's process ids of the running probe agents on the local engine (for measuring
        their cost)."""
        return [pid for e in self._execs if (pid := self.client.api.exec_inspect(e).get("Pid"))]

    def stop(self) -> None:
        """Stop the agents (their processes are killed, not left to run out their limit)."""
        self._stop.set()
        if self.drift is not None:
            self.drift.stop()
        try:
            pids = self.agent_pids()
        except docker.errors.APIError:      # the engine is gone: so are the agents
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        # Elsewhere a process id means nothing here: the agents carrying this process's mark are
        # stopped from inside their containers.
        mine = f"{OWNER_ENV}={owner_mark()}"
        for flow, engine in self._remote:
            try:
                docker_exec.run(flow.container, STOP_AGENTS.format(mark=mine), check=False,
                                engine=engine, timeout=10)
            except docker_exec.ExecError:    # the container is gone: so are its agents
                pass
            engine.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def now(self) -> float:
        return round(time.time() - self.started, 3)

    def mark(self, kind: str, note: str) -> Event:
        """Put a marker on the timeline (fault injected, restored, change applied...)."""
        with self._lock:
            return self._emit(Event(self.now(), kind, note))

    def raise_alarm(self, kind: str, alarm: Alarm) -> Event:
        """An alarm (or its clear) found outside the probes (a DRIFT), to the same sinks."""
        with self._lock:
            return self._emit(Event(self.now(), kind, alarm=alarm))

    def _emit(self, event: Event) -> Event:
        self.events.append(event)
        active = self._machine.active()
        for sink in self.sinks:
            sink(event, active)
        return event

    def _read(self, flows: list[Flow], stream: Any) -> None:
        buffer = b""
        try:
            for chunk in stream:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                with self._lock:
                    for line in lines:
                        self._sample(flows, line)
                    self._evaluate()
                if self._stop.is_set():
                    break
        except (docker.errors.APIError, OSError, ValueError):
            pass
        if not self._stop.is_set():
            self.mark("error", f"the probe agent in {flows[0].container} stopped")

    def _sample(self, flows: list[Flow], line: bytes) -> None:
        try:
            raw = json.loads(line)
            flow = flows[raw["i"]]
        except (ValueError, KeyError, IndexError):
            return
        ok, _ = judge(flow, raw)
        sample = Sample(flow.name, flow.vantage, round(raw["t"] - self.started, 3), ok,
                        raw.get("outcome", "error"), float(raw.get("latency_ms", 0.0)))
        if flow.must == "work":
            self.samples.append(sample)
        self._machine.add(sample)

    def states(self) -> dict[str, str]:
        """Every must-work flow's state now, from any thread."""
        with self._lock:
            return self._machine.states()

    def recorded(self) -> tuple[list[Event], list[Sample]]:
        """Copies of the events and samples so far (the lists themselves keep growing)."""
        with self._lock:
            return list(self.events), list(self.samples)

    def _evaluate(self) -> None:
        """Raise, change and clear alarms after new samples (the caller holds the lock)."""
        for event in self._machine.evaluate(self.now()):
            self._emit(event)
        if self._machine.green:
            self._green.set()
        else:
            self._green.clear()

    def active(self) -> list[Alarm]:
        with self._lock:
            return self._machine.active()

    def down(self) -> list[str]:
        """The flows that are down right now."""
        return [name for name, state in self.states().items() if state == "down"]

    def failing_since(self, names: list[str]) -> float | None:
        """When the current failure of these flows began (watch time), if they are failing."""
        with self._lock:
            flows = self._machine.flows
            began = min((flows[n].failing_since for n in names if n in flows),
                        default=float("inf"))
        return None if began == float("inf") else began

    def wait_green(self, timeout_s: float) -> bool:
        """Wait until every must-work flow has a full window of good samples."""
        return self._green.wait(timeout_s)

    def wait_quiet(self, timeout_s: float) -> bool:
        """Wait until no alarm is raised (a recovering service clears a settle period or two
        after its flows are back; an exposure after `recover` blocked probes)."""
        deadline = time.monotonic() + timeout_s
        while self.active():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def wait_event(self, kind: str, after: float, timeout_s: float, cls: str = "",
                   service: str = "") -> Event | None:
        """The first event of `kind` at or after `after` (watch time), waiting up to timeout;
        with `cls` or `service`, only an alarm, recovering or clear of that class or on that
        service."""
        def wanted(e: Event) -> bool:
            if e.kind != kind or e.t < after:
                return False
            if not (cls or service):
                return True
            return e.alarm is not None and cls in ("", e.alarm.cls) \
                and service in ("", e.alarm.service)

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                found = next((e for e in self.events if wanted(e)), None)
            if found:
                return found
            time.sleep(0.02)
        return None


def status_line(watcher: Watcher) -> str:
    """One line for a live terminal view: flows per state and the active alarms."""
    states = watcher.states()
    counts = {state: sum(v == state for v in states.values())
              for state in ("ok", "slow", "degraded", "down")}
    alarms = "; ".join(str(a) for a in watcher.active()) or "no alarm"
    return (f"+{watcher.now():7.1f}s  " + "  ".join(f"{k} {v}" for k, v in counts.items())
            + f"  | {alarms}")[:200].ljust(120)
