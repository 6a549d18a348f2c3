"""How long a staged preview watches after a change: the settle window, from the roles' timers.

Some changes break nothing at once. A health check that now fails marks its server down only
after `fall` failed checks `inter` apart; a BGP peer that stops answering loses its routes after
the hold time; a secondary that can no longer transfer serves its old zone until refresh, retry
and expire run out; a resolver keeps a changed answer for its TTL. A preview that measures once,
right after the converge, calls such a change SAFE. So the "after" measurement lasts as long as
the longest timer of the roles the change touches, as the change leaves it (the role's default,
the inventory's value, the change's own, per host), capped at `CAP_S` so that a zone's refresh of
hours does not hold a preview for hours (the report then says what was not watched out).

Each role declares its timers as data, in `roles/<role>/meta/edge_timers.yml`, so a new role
brings its own:

    timers:
      - name: health checks            # what the timer is, in the report's words
        factors:                       # the timer is the product of these variables' values
          - {var: loadbalancer_check_fall, label: haproxy fall}
          - {var: loadbalancer_check_interval_ms, label: inter, unit: ms}

Exactly one factor has a `unit` (s or ms): the others are counts. The window names the timer that
set it: "haproxy fall 3 × inter 2 s on lb1".

A timer that staging can make run out at once is declared `hastened:`, and the window does not
wait for it. A resolver's cache is flushed instead of waiting out the TTL; a secondary is sent a
NOTIFY by the primary instead of waiting for its SOA refresh (and the name servers' agreement,
edge/workflow/invariants.py, checks that it followed):

      - name: resolvers' cached answers expire
        factors: [{var: dns_ttl, label: DNS TTL, unit: s}]
        hastened:
          words: resolver cache flushed on staging instead of waiting   # what the report says
          role: resolver                      # optional: the nodes of this role (on staging)...
          run: [unbound-control, flush_zone, .]   # ...run this once the change is converged

A hastening whose command fails is no hastening: the preview then waits for the timer (capped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.model.change import ChangeError, render_vars
from edge.model.datafile import Reader, load_checked

DECLARATION = "edge_timers.yml"
UNITS = {"s": 1.0, "ms": 0.001}
# The longest a preview watches after a change, whatever the timers say: effects later than this
# are named in the report as not watched out.
CAP_S = 30.0


class TimerError(ValueError):
    """A timer declaration that cannot be used; the message names file, line and fix."""


@dataclass(frozen=True)
class Factor:
    """One variable of a timer: a count (unit "") or a duration in `unit`."""

    var: str
    label: str
    unit: str = ""


@dataclass(frozen=True)
class Hastening:
    """How staging makes a timer run out at once instead of waiting: `words` for the report, and
    the command (argv) the nodes of `role` run after the change (none: a daemon does it by
    itself, e.g. a primary's NOTIFY)."""

    words: str
    role: str = ""
    run: tuple[str, ...] = ()


@dataclass(frozen=True)
class Timer:
    """A role's timer: the product of its factors' values, in seconds."""

    role: str
    name: str
    factors: tuple[Factor, ...]
    hastened: Hastening | None = None

    def value(self, values: dict[str, Any]) -> tuple[float, str]:
        """(seconds, words) for one host's `values`, e.g. (6.0, "haproxy fall 3 × inter 2 s").
        ValueError when a factor is not a number there."""
        seconds, words = 1.0, []
        for factor in self.factors:
            raw = values.get(factor.var)
            try:
                number = float(raw) if not isinstance(raw, bool) else float("nan")
            except (TypeError, ValueError):
                number = float("nan")
            if not number >= 0:         # also NaN: not a number at all
                raise ValueError(f"{factor.var} is {raw!r}, not a number")
            seconds *= number * UNITS.get(factor.unit, 1.0)
            shown = number * UNITS.get(factor.unit, 1.0) if factor.unit else number
            words.append(f"{factor.label} {shown:g}" + (" s" if factor.unit else ""))
        return seconds, " × ".join(words)

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(f.var for f in self.factors)


def _load_one(path: Path, role: str) -> list[Timer]:
    doc, r = load_checked(path, "timer declaration", f"roles/{role}", TimerError)
    if doc is None:
        return []
    if not isinstance(doc, dict) or set(doc) != {"timers"} or not isinstance(doc["timers"], list):
        r.fail(doc, "timers", "expected a mapping with one key, `timers:`, holding a list",
               "See roles/loadbalancer/meta/edge_timers.yml for the format.", None)
    found = []
    for i, entry in enumerate(doc["timers"]):
        where = f"timers[{i}]"
        if not isinstance(entry, dict) or set(entry) - {"name", "factors", "hastened"}:
            r.fail(entry if isinstance(entry, dict) else doc, where,
                   "expected a mapping with `name:`, `factors:` and optionally `hastened:`",
                   "Write `- name: ...` followed by `factors:`.", None)
        if not isinstance(entry.get("name"), str) or not entry["name"].strip():
            r.fail(entry, f"{where}.name", "missing", "Say what the timer is, e.g. "
                   "`name: health checks`.", "name")
        factors = entry.get("factors")
        if not isinstance(factors, list) or not factors:
            r.fail(entry, f"{where}.factors", "expected a list of variables",
                   "Write e.g. `factors: [{var: frr_hold_s, label: BGP hold time, unit: s}]`.",
                   "factors")
        parsed = []
        for j, factor in enumerate(factors):
            at = f"{where}.factors[{j}]"
            if not isinstance(factor, dict) or set(factor) - {"var", "label", "unit"} or \
                    not all(isinstance(factor.get(k), str) and factor[k]
                            for k in ("var", "label")):
                r.fail(factor if isinstance(factor, dict) else entry, at,
                       "expected `var:` and `label:` (and `unit:` for the duration)",
                       "Write e.g. `{var: loadbalancer_check_fall, label: haproxy fall}`.", None)
            unit = factor.get("unit", "")
            if unit not in ("", *UNITS):
                r.fail(factor, f"{at}.unit", f"'{unit}' is not a unit",
                       f"Use one of: {', '.join(UNITS)} (or no unit for a count).", "unit")
            parsed.append(Factor(factor["var"], factor["label"], unit))
        if sum(bool(f.unit) for f in parsed) != 1:
            r.fail(entry, f"{where}.factors", "exactly one factor must be a duration (have a "
                   "`unit:`)", "Give the duration's variable `unit: s` or `unit: ms`; the "
                   "others are counts.", "factors")
        found.append(Timer(role, entry["name"].strip(), tuple(parsed),
                           _hastening(r, entry, where)))
    return found


def _hastening(r: Reader, entry: dict, where: str) -> Hastening | None:
    """A timer's `hastened:` mapping (see the module's docstring), or None."""
    given = entry.get("hastened")
    if given is None:
        return None
    at = f"{where}.hastened"
    if not isinstance(given, dict) or set(given) - {"words", "role", "run"} or \
            not isinstance(given.get("words"), str) or not given["words"].strip():
        r.fail(given if isinstance(given, dict) else entry, at,
               "expected `words:` (and `role:` with `run:` for a command)",
               "Write e.g. `hastened: {words: resolver cache flushed on staging instead of "
               "waiting, role: resolver, run: [unbound-control, flush_zone, .]}`.", None)
    run, role = given.get("run", []), given.get("role", "")
    if not isinstance(run, list) or not all(isinstance(a, str) and a for a in run) or \
            not isinstance(role, str) or bool(run) != bool(role):
        r.fail(given, at, "`run:` is a list of words, given together with the node `role:`",
               "Write e.g. `role: resolver` and `run: [unbound-control, flush_zone, .]`, or "
               "neither when a daemon hastens the timer by itself.", None)
    return Hastening(given["words"].strip(), role, tuple(run))


def load_timers(roles: Path) -> tuple[Timer, ...]:
    """Every `roles/<role>/meta/edge_timers.yml` of a tree's roles folder."""
    return tuple(timer for path in sorted(roles.glob(f"*/meta/{DECLARATION}"))
                 for timer in _load_one(path, path.parents[1].name))


@dataclass(frozen=True)
class Window:
    """How long to watch after a change, and why, in words for the report."""

    seconds: float                 # capped at CAP_S
    why: str                       # the timer that set it: "haproxy fall 3 × inter 2 s on lb1"
    longest_s: float = 0.0         # that timer uncapped (more than `seconds`: capped)
    unreadable: tuple[str, ...] = ()   # timers that are not a number somewhere: watched the cap
    # The timers staging hastens instead of waiting for them, in words ("DNS TTL 300 s: resolver
    # cache flushed on staging instead of waiting"), and the commands that do it: (timer name,
    # node role, argv).
    hastened: tuple[str, ...] = ()
    commands: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    @property
    def capped(self) -> bool:
        return self.longest_s > self.seconds

    def words(self) -> str:
        """"haproxy fall 3 × inter 2 s on lb1", plus what the cap leaves unwatched and what
        staging hastened instead of waiting."""
        text = self.why
        if self.capped:
            text += (f" (capped at {self.seconds:g} s: effects that take the whole "
                     f"{self.longest_s:g} s are not watched out)")
        return text + "".join(f"; {note}" for note in self.hastened + self.unreadable)


@dataclass(frozen=True)
class Watched:
    """What a change can set going on one host: the roles it touches there."""

    host: str
    roles: frozenset[str] = field(default_factory=frozenset)


def watched_roles(nodes: dict[str, str], hosts: Iterable[str], changed: set[str] | None,
                  runs: dict[str, set[str]], restarted: Iterable[str] = ()) -> list[Watched]:
    """The roles whose timers count, per host (pure).

    `nodes`: node -> its Ansible role; `hosts`: the change's scope; `changed`: the roles whose
    variables or files it edits (None: anything); `runs`: Ansible role -> every role a node of it
    runs. On a host of the scope, a changed role counts with every role it configures (border ->
    frr); a node the change stops or starts again takes all its roles with it."""
    reach = None if changed is None else set().union(*(runs.get(r, {r}) for r in changed))
    found = []
    for host in sorted(set(hosts) | set(restarted)):
        roles = runs.get(nodes[host], {nodes[host]})
        if host not in set(restarted) and reach is not None:
            roles = roles & reach
        if roles:
            found.append(Watched(host, frozenset(roles)))
    return found


def host_values(timers: Iterable[Timer], defaults: dict[str, Any], host_vars: dict[str, dict],
                variables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """host -> the timers' variables as a converge would see them there (pure): the roles'
    `defaults`, then the host's inventory variables, then the revision's `variables` (the
    change's and those applied before it), rendered with the host's variables as edge renders
    a change. A value that cannot be rendered stays as written (then it is not a number)."""
    names = {v for t in timers for v in t.variables}
    found = {}
    for host, own in host_vars.items():
        merged = {n: defaults[n] for n in names if n in defaults}
        merged |= {n: own[n] for n in names if n in own}
        merged |= {n: variables[n] for n in names if n in variables}
        for name, value in merged.items():
            try:
                merged[name] = render_vars({name: value}, {host: own})[host][name]
            except ChangeError:
                pass
        found[host] = merged
    return found


def window(timers: Iterable[Timer], watched: list[Watched], values: dict[str, dict[str, Any]],
           cap_s: float = CAP_S, failed: dict[str, str] | None = None) -> Window:
    """The settle window: the longest timer of the watched roles on their hosts, capped (pure).
    A timer that is not a number on some host counts as the cap: it may be anything. A timer
    declared `hastened` does not count; it is named with its hastening instead, unless `failed`
    (timer name -> why its hastening failed) says staging could not hasten it."""
    timers, failed = list(timers), failed or {}
    longest, why, unreadable = 0.0, "", []
    hastened: dict[str, tuple[float, str, Hastening]] = {}
    for entry in watched:
        for timer in (t for t in timers if t.role in entry.roles):
            try:
                seconds, words = timer.value(values.get(entry.host, {}))
            except ValueError as err:
                if timer.hastened and timer.name not in failed:
                    seconds, words = 0.0, timer.name
                else:
                    unreadable.append(f"{timer.name} on {entry.host}: {err} (watched the cap)")
                    seconds, words = cap_s, f"{timer.name} on {entry.host} (unknown)"
            if timer.hastened and timer.name not in failed:
                if timer.name not in hastened or seconds > hastened[timer.name][0]:
                    hastened[timer.name] = (seconds, words, timer.hastened)
                continue
            if timer.name in failed:
                words += f" (not hastened: {failed[timer.name]})"
            if seconds > longest:
                longest, why = seconds, f"{words} on {entry.host}"
    if not why:
        roles = sorted({r for entry in watched for r in entry.roles})
        why = ("the roles the change touches (" + ", ".join(roles) + ") declare no timer"
               if roles else "the change touches no role")
        if hastened:
            why = "no timer to wait for"
    said = tuple(f"{words}: {h.words}" for _, words, h in hastened.values())
    commands = tuple((name, h.role, h.run) for name, (_, _, h) in hastened.items() if h.run)
    return Window(min(longest, cap_s), why, longest, tuple(unreadable), said, commands)
