"""What the watcher records: probe samples, alarms and timeline events, as data.

Alarms are data (`Alarm`: class, service, flows), carried by the alarm, recovering and clear
events: code matches on those fields, and an event's `label` is built from them for people only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One probe result."""
    flow: str          # e.g. "http-app-at-lb@lb1"
    vantage: str       # "client" (outside) or "inside"
    t: float           # seconds since the session started
    ok: bool
    outcome: str       # answered, timeout, refused, unreachable, error
    latency_ms: float


@dataclass(frozen=True)
class Alarm:
    """One alarm class raised for one service, and the flows that raised it."""

    cls: str           # EXTERNAL OUTAGE, DEGRADED, INTERNAL, SECURITY EXPOSURE (edge/lab/watch.py)
    service: str       # the contract's `service:`, e.g. "dns" ("security" for an exposure)
    flows: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.cls} ({self.service}): {', '.join(self.flows)}"

    def to_json(self) -> dict[str, Any]:
        return {"class": self.cls, "service": self.service, "flows": list(self.flows)}


@dataclass(frozen=True)
class Event:
    """A marker on the timeline. An "alarm", "recovering" or "clear" event carries its `alarm`
    as data (and, when it replaces another class on the same service, that class in `was`); any
    other event has only its `note`. `label` is the text people read, never something to parse."""
    t: float
    kind: str          # "baseline", "fault", "restore", "alarm", "recovering", "clear", "green"
    note: str = ""     # e.g. "inject: stop lb1, lb2"
    alarm: Alarm | None = None
    was: str = ""

    @property
    def label(self) -> str:
        if self.alarm is None:
            return self.note
        state = {"clear": "cleared", "recovering": "recovering"}.get(self.kind)
        if state:
            return f"{self.alarm.cls} ({self.alarm.service}) {state}"
        return str(self.alarm) + (f" (was {self.was})" if self.was else "")

    def to_json(self) -> dict[str, Any]:
        """The event for logs and webhooks: its text, and an alarm's fields to match on."""
        return {"t": self.t, "kind": self.kind, "label": self.label,
                **(self.alarm.to_json() | {"was": self.was} if self.alarm else {})}


def detect_time(events: list[Event], after_kind: str = "fault",
                kind: str = "alarm") -> float | None:
    """Seconds from the first `after_kind` event to the first `kind` event after it, else None.

    fault -> alarm is the time to detect; restore -> clear (or green) the time to recover."""
    ordered = sorted(events, key=lambda e: e.t)
    start = next((i for i, e in enumerate(ordered) if e.kind == after_kind), None)
    if start is None:
        return None
    end = next((e for e in ordered[start + 1:] if e.kind == kind), None)
    return None if end is None else end.t - ordered[start].t
