"""The staged preview's measurements in rounds: every flow measured again and again over a window,
and each flow's latency before and after compared.

Why rounds: a change may break a flow only after a timer runs (edge/model/timers.py), or break it
for a while and let it come back; one probe at the end sees neither. Each round measures every
flow. A flow counts as broken when it fails in the last round (the change left it broken), or in
any round that started once the change had SETTLE_S to take hold: a daemon that a converge
restarts (named, HAProxy, FRR) drops a request or two right after the change, and a flow that
fails only then and serves in every later round is that blip, not what the change does (the
preview before rounds waited the same SETTLE_S for flows to recover). While a flow is failing the
rounds go on, up to SETTLE_S, so a blip is told from breakage whatever the window. The rounds
also give each flow several latency samples, before and after, which is what tells "much slower"
from a busy machine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from edge.lab.probes import Result, run_flows
from edge.model.contract import Flow

# How long after the first round a failing flow may still recover (see the module's docstring).
SETTLE_S = 10.0
# The latency rule (see `slower`): at least this many answered samples on each side...
MIN_SAMPLES = 4
# ...the median after at least FACTOR times the median before...
FACTOR = 3.0
# ...and at least FLOOR_MS above the slowest usual answer before (its p95), so that a flow of
# 1 ms that takes 4 ms on a loaded machine is not "slower".
FLOOR_MS = 50.0


@dataclass
class Rounds:
    """Every round's results, per flow: (seconds since the first round started, result)."""

    seen: dict[str, list[tuple[float, Result]]] = field(default_factory=dict)
    count: int = 0
    seconds: float = 0.0

    def add(self, at: float, results: list[Result]) -> None:
        for result in results:
            self.seen.setdefault(result.flow.name, []).append((at, result))
        self.count += 1

    def latencies(self, name: str) -> list[float]:
        """The flow's latency in every round it met the contract."""
        return [r.latency_ms for _, r in self.seen.get(name, []) if r.ok]

    def broken(self, name: str) -> list[float]:
        """When the flow failed its contract (seconds since the first round)."""
        return [at for at, r in self.seen.get(name, []) if not r.ok]


def measure(flows: list[Flow], window_s: float, min_rounds: int,
            run: Callable[[list[Flow]], list[Result]] = run_flows,
            clock: Callable[[], float] = time.monotonic, settle_s: float = SETTLE_S,
            before: Rounds | None = None) -> Rounds:
    """Measure every flow in rounds, back to back, until a round has started after `window_s`
    (so the last round looks after every timer of the window ran out), at least `min_rounds`
    were made, and no flow fails in the last one nor, compared with `before`, looks slower in
    the last `min_rounds` (`looks_slower`), or one started after `settle_s`: a daemon the
    change restarted is slow or drops a request for a moment, which is no verdict."""
    rounds, start = Rounds(), clock()
    while True:
        started = clock() - start
        results = run(flows)
        rounds.add(started, results)
        if started >= window_s and rounds.count >= min_rounds and (started >= settle_s or (
                all(r.ok for r in results) and not looks_slower(before, rounds, min_rounds))):
            rounds.seconds = clock() - start
            return rounds


def settled(rounds: Rounds, name: str, last: int = MIN_SAMPLES) -> list[float]:
    """The flow's latency in the last `last` rounds, where it met the contract: the latency the
    change leaves, once what it restarted warmed up (pure)."""
    return [r.latency_ms for _, r in rounds.seen.get(name, [])[-last:] if r.ok]


def looks_slower(before: Rounds | None, after: Rounds, last: int = MIN_SAMPLES) -> bool:
    """Whether a flow of `before` is much slower (`slower`) in the last rounds of `after`."""
    return before is not None and any(
        slower(before.latencies(name), settled(after, name, last)) for name in before.seen)


def counted(rounds: Rounds, name: str, settle_s: float = SETTLE_S) -> list[float]:
    """When the flow's failures count (pure): every failed round when it failed in the last
    one, else those started after `settle_s` (earlier ones were a blip it recovered from)."""
    seen = rounds.seen.get(name, [])
    if seen and not seen[-1][1].ok:
        return rounds.broken(name)
    return [at for at in rounds.broken(name) if at >= settle_s]


def verdicts(flows: list[Flow], rounds: Rounds, settle_s: float = SETTLE_S) -> list[Result]:
    """One result per flow for the comparison (pure): the first round whose failure counts
    (`counted`), or its last round when none does."""
    picked = []
    for flow in flows:
        seen = rounds.seen[flow.name]
        when = counted(rounds, flow.name, settle_s)
        picked.append(next((r for at, r in seen if when and at == when[0]), seen[-1][1]))
    return picked


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank rule: a value that was measured, never an
    interpolation between two, which with a handful of samples would be a value nobody saw."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Slowdown:
    """A flow that still answers, much slower: its latency percentiles before and after (ms)."""

    p50_before: float
    p95_before: float
    p50_after: float
    p95_after: float
    samples_before: int
    samples_after: int

    @classmethod
    def of(cls, before_ms: list[float], after_ms: list[float]) -> Slowdown:
        """The percentiles of two non-empty lists of samples."""
        return cls(percentile(before_ms, 50), percentile(before_ms, 95),
                   percentile(after_ms, 50), percentile(after_ms, 95),
                   len(before_ms), len(after_ms))

    @property
    def factor(self) -> float:
        return self.p50_after / max(self.p50_before, 0.1)

    def figures(self) -> dict[str, float]:
        """For the report's JSON: the percentiles (ms, rounded) and the sample counts."""
        return {k: round(v, 2) for k, v in asdict(self).items()}


def slower(before_ms: list[float], after_ms: list[float], min_samples: int = MIN_SAMPLES,
           factor: float = FACTOR, floor_ms: float = FLOOR_MS) -> Slowdown | None:
    """The flow's slowdown when it is DEGRADED, else None (pure).

    DEGRADED when, with at least `min_samples` answered samples on each side:
      - the median after is at least `factor` times the median before, and
      - the median after exceeds the 95th percentile before by at least `floor_ms`.
    Medians, not means or maxima: one sample held up by a busy machine moves neither. The factor
    says "much slower" relative to the flow itself (a 2 ms DNS answer and a 30 ms HTTP request
    are judged each against its own past); the floor, against the slowest of the usual answers
    before, keeps a fast flow's jitter (1 ms to 4 ms is "4×") from counting. Fewer samples than
    `min_samples` on either side: no judgement (None), since a handful cannot tell a trend from
    noise.
    """
    if len(before_ms) < min_samples or len(after_ms) < min_samples:
        return None
    found = Slowdown.of(before_ms, after_ms)
    if found.p50_after >= factor * found.p50_before and \
            found.p50_after - found.p95_before >= floor_ms:
        return found
    return None
