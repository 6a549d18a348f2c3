"""Continuous outside-in probing: notice, within seconds, that users outside lost the service.

A probe agent runs in each vantage container (edge/probe_agent.py in watch mode: a thread pool,
never a process per probe) and streams one JSON line per probe. Here each line becomes a
`Sample`; each flow keeps its last `window` samples and is *down* when `down` of them failed,
*slow* when it works but the median latency is above the contract's objective. Then, per service
(the contract's `service:`), the outside and the inside views are compared:

- INTERNAL: the PaaS itself fails (an inside flow of the service is down),
- EXTERNAL OUTAGE: inside sees the service, every path of an outside flow is down
  ("we were the only ones who knew the system was up"),
- DEGRADED: users are still served, but half a tier is gone (some flows of an outside rule down)
  or the service is too slow.

Alarms are raised and cleared as events; sinks (terminal, JSON log, webhook) receive them. The
change gate (edge apply) runs the same watcher as its watchdog.
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
from dataclasses import dataclass, field
from typing import Any, Callable

import docker

from edge.contract import Contract, Flow
from edge.probes import AGENT, judge
from edge.timeline import Event, Sample

EXTERNAL, DEGRADED, INTERNAL = "EXTERNAL OUTAGE", "DEGRADED", "INTERNAL"
# The agent stops by itself after this long even if nobody stops it.
AGENT_LIMIT_S = 6 * 3600


@dataclass(frozen=True)
class Thresholds:
    """N-of-M: a flow is down when `down` of its last `window` samples failed. It is slow when
    the median latency of its last `slow_window` samples is above the objective: a longer
    window, so that a busy moment of this machine (a converge) is not taken for a slow path."""

    interval_s: float = 0.2
    window: int = 3
    down: int = 2
    slow_window: int = 10


@dataclass(frozen=True)
class Alarm:
    """One alarm class raised for one service, and the flows that raised it."""

    cls: str
    service: str
    flows: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.cls} ({self.service}): {', '.join(self.flows)}"


class FlowState:
    """The last samples of one flow and what they say."""

    def __init__(self, th: Thresholds) -> None:
        self.oks: deque[bool] = deque(maxlen=th.window)
        self.latencies: deque[float] = deque(maxlen=th.slow_window)
        self.last_ok = float("-inf")        # when the last good probe started (watch time)
        self.failing_since = float("inf")   # when the current run of failures started

    def add(self, ok: bool, latency_ms: float, t: float = 0.0) -> None:
        self.oks.append(ok)
        if ok:
            self.latencies.append(latency_ms)
            self.last_ok = max(self.last_ok, t)
            self.failing_since = float("inf")
        else:
            self.failing_since = min(self.failing_since, t)

    def state(self, th: Thresholds, objective_ms: float) -> str:
        """ok, slow, degraded (some recent failures) or down (N of M failed)."""
        failed = sum(not ok for ok in self.oks)
        if failed >= th.down:
            return "down"
        if failed:
            return "degraded"
        if len(self.latencies) == th.slow_window and \
                statistics.median(self.latencies) > objective_ms:
            return "slow"
        return "ok"


def classify(flows: list[Flow], states: dict[str, str], inside: tuple[str, ...],
             last_ok: dict[str, float] | None = None,
             failing_since: dict[str, float] | None = None) -> list[Alarm]:
    """The alarms that the flows' states add up to (pure: see the module docstring).

    With the probes' times given, an EXTERNAL OUTAGE needs proof that inside still sees the
    service: a good inside probe that started after the outside flows began to fail. Until the
    inside view has caught up, the service raises nothing, rather than the wrong class."""
    alarms = []
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
        elif outer_down or slow:
            alarms.append(Alarm(DEGRADED, service, tuple(outer_down + slow)))
    return alarms


Sink = Callable[[Event, list[Alarm]], None]


def terminal_sink(stream: Any = sys.stdout) -> Sink:
    """Alarm lines for a person at a terminal."""
    def sink(event: Event, active: list[Alarm]) -> None:
        print(f"{time.strftime('%H:%M:%S')} +{event.t:7.2f}s  {event.kind.upper():8} "
              f"{event.label}", file=stream, flush=True)
    return sink


def json_sink(path: str) -> Sink:
    """Every event as one JSON line, with the alarms active after it."""
    def sink(event: Event, active: list[Alarm]) -> None:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"time": time.time(), "t": event.t, "kind": event.kind,
                                  "label": event.label,
                                  "active": [{"class": a.cls, "service": a.service,
                                              "flows": list(a.flows)} for a in active]}) + "\n")
    return sink


def webhook_sink(url: str, timeout_s: float = 2.0) -> Sink:
    """POST each alarm and clear as JSON to `url`, off the probing path (a thread per post)."""
    def post(body: bytes) -> None:
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=timeout_s).close()
        except OSError as err:
            print(f"edge watch: webhook {url}: {err}", file=sys.stderr)

    def sink(event: Event, active: list[Alarm]) -> None:
        if event.kind in ("alarm", "clear"):
            body = json.dumps({"kind": event.kind, "label": event.label, "t": event.t,
                               "active": [str(a) for a in active]}).encode()
            threading.Thread(target=post, args=(body,), daemon=True).start()
    return sink


@dataclass
class Watcher:
    """Probe `flows` continuously from their vantage containers until stopped."""

    flows: list[Flow]
    contract: Contract
    thresholds: Thresholds = Thresholds()
    sinks: list[Sink] = field(default_factory=list)
    client: docker.DockerClient = field(default_factory=docker.from_env)
    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    started: float = 0.0

    def __post_init__(self) -> None:
        self.flows = [f for f in self.flows if f.must == "work"]
        self._states = {f.name: FlowState(self.thresholds) for f in self.flows}
        self._alarms: dict[str, Alarm] = {}     # by service: one class at a time
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._execs: list[str] = []
        self._threads: list[threading.Thread] = []
        self._green = threading.Event()

    def start(self) -> Watcher:
        self.started = time.time()
        by_vantage: dict[str, list[Flow]] = {}
        for flow in self.flows:
            by_vantage.setdefault(flow.container, []).append(flow)
        for container, flows in by_vantage.items():
            payload = json.dumps([{"kind": f.kind, **f.params,
                                   "timeout": self.contract.watch_timeout_s} for f in flows])
            exec_id = self.client.api.exec_create(container, [
                "python3", "-c", AGENT, payload, str(self.thresholds.interval_s),
                str(AGENT_LIMIT_S)])["Id"]
            self._execs.append(exec_id)
            stream = self.client.api.exec_start(exec_id, stream=True)
            thread = threading.Thread(target=self._read, args=(flows, stream), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def agent_pids(self) -> list[int]:
        """The host's process ids of the running probe agents (for measuring their cost)."""
        return [pid for e in self._execs if (pid := self.client.api.exec_inspect(e).get("Pid"))]

    def stop(self) -> None:
        """Stop the agents (their processes are killed, not left to run out their limit)."""
        self._stop.set()
        try:
            pids = self.agent_pids()
        except docker.errors.APIError:      # the engine is gone: so are the agents
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def now(self) -> float:
        return round(time.time() - self.started, 3)

    def mark(self, kind: str, label: str) -> Event:
        """Put a marker on the timeline (fault injected, restored, change applied...)."""
        with self._lock:
            return self._emit(Event(self.now(), kind, label))

    def _emit(self, event: Event) -> Event:
        self.events.append(event)
        active = list(self._alarms.values())
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
        self.samples.append(sample)
        self._states[flow.name].add(ok, sample.latency_ms, sample.t)

    def states(self) -> dict[str, str]:
        return {name: s.state(self.thresholds, self.contract.latency_objective_ms)
                for name, s in self._states.items()}

    def _evaluate(self) -> None:
        states = self.states()
        now = {a.service: a for a in classify(
            self.flows, states, self.contract.inside,
            {name: s.last_ok for name, s in self._states.items()},
            {name: s.failing_since for name, s in self._states.items()})}
        for service in self._alarms.keys() - now.keys():
            gone = self._alarms.pop(service)
            self._emit(Event(self.now(), "clear", f"{gone.cls} ({service}) cleared"))
        for service, alarm in now.items():
            was = self._alarms.get(service)
            if was is None or was.cls != alarm.cls:
                self._alarms[service] = alarm
                self._emit(Event(self.now(), "alarm", str(alarm)
                                 + (f" (was {was.cls})" if was else "")))
        green = all(len(s.oks) == self.thresholds.window for s in self._states.values()) \
            and all(v == "ok" for v in states.values())
        if green and not self._green.is_set():
            self._green.set()
            self._emit(Event(self.now(), "green", f"all {len(states)} must-work flows ok"))
        elif not green:
            self._green.clear()

    def active(self) -> list[Alarm]:
        with self._lock:
            return list(self._alarms.values())

    def down(self) -> list[str]:
        """The flows that are down right now."""
        with self._lock:
            return [name for name, state in self.states().items() if state == "down"]

    def failing_since(self, names: list[str]) -> float | None:
        """When the current failure of these flows began (watch time), if they are failing."""
        with self._lock:
            began = min((self._states[n].failing_since for n in names if n in self._states),
                        default=float("inf"))
        return None if began == float("inf") else began

    def wait_green(self, timeout_s: float) -> bool:
        """Wait until every must-work flow has a full window of good samples."""
        return self._green.wait(timeout_s)

    def wait_event(self, kind: str, after: float, timeout_s: float,
                   label: str = "") -> Event | None:
        """The first event of `kind` (whose label starts with `label`) at or after `after`
        (watch time), waiting up to timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                found = next((e for e in self.events if e.kind == kind and e.t >= after
                              and e.label.startswith(label)), None)
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
