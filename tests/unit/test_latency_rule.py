"""Rounds of measurements after a change and the latency rule of the staged preview
(edge/workflow/rounds.py), DEGRADED in the verdict, and `accept: [degraded]` in change files."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.lab.probes import Result
from edge.model.change import ChangeError, load_change
from edge.model.contract import Flow
from edge.workflow.rounds import (
    FLOOR_MS,
    MIN_SAMPLES,
    Rounds,
    counted,
    measure,
    percentile,
    slower,
    verdicts,
)
from edge.workflow.staged import SAFE, UNSAFE, degraded, judge, notes

HTTP = Flow("http-api-at-lb@lb1", "http-api-at-lb", "client", "c-client", kind="http",
            must="work", params={}, target="lb1")
BLOCK = Flow("no-rndc@ns1", "no-rndc", "client", "c-client", kind="tcp", must="block",
             params={}, target="ns1")


def result(flow: Flow, ok: bool = True, ms: float = 5.0) -> Result:
    return Result(flow, "answered" if ok else "timeout", {"status": 200} if ok else {}, ms, ok,
                  "" if ok else "timeout")


def rounds_of(flow: Flow, latencies: list[float]) -> Rounds:
    found = Rounds()
    for i, ms in enumerate(latencies):
        found.add(float(i), [result(flow, ms=ms)])
    return found


def test_percentiles_are_values_that_were_measured() -> None:
    assert percentile([4, 1, 3, 2], 50) == 2 and percentile([4, 1, 3, 2], 95) == 4
    assert percentile([7.5], 95) == 7.5


@pytest.mark.parametrize("before,after,slow", [
    ([10, 11, 12, 10], [170, 180, 175, 190], True),       # the slow path: +160 ms, 17x
    ([10, 11, 12, 10], [25, 26, 24, 25], False),          # 2.5x: not "much slower"
    ([1, 1, 2, 1], [5, 6, 5, 5], False),                  # 5x, but a few ms: jitter
    ([10, 11, 12, 90], [100, 105, 110, 100], False),      # after's median inside before's p95
    ([10, 11, 12], [170, 180, 175, 190], False),          # too few samples before
    ([10, 11, 12, 10], [170, 10, 11, 175, 180], True),    # the median moved, not one outlier
    ([10, 11, 12, 10], [10, 11, 500, 10], False),         # one slow sample is not a trend
])
def test_the_latency_rule(before: list[float], after: list[float], slow: bool) -> None:
    assert (slower(before, after) is not None) == slow


def test_the_rule_needs_the_floor_and_the_factor_both() -> None:
    base = [20.0] * MIN_SAMPLES
    assert slower(base, [20 + FLOOR_MS - 1] * MIN_SAMPLES) is None      # 3.45x, below floor
    assert slower(base, [59.0] * MIN_SAMPLES) is None                   # above floor, < 3x
    assert slower(base, [20 + FLOOR_MS + 10] * MIN_SAMPLES) is not None


def test_rounds_run_until_one_started_after_the_window_and_enough_were_made() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    def run(flows: list[Flow]) -> list[Result]:
        now[0] += 1.5
        return [result(f, ok=now[0] < 4) for f in flows]

    # The flow fails from 3 s on: the rounds go on while it fails, up to the settle time.
    found = measure([HTTP], 5.0, 2, run=run, clock=clock, settle_s=6.0)
    starts = [at for at, _ in found.seen[HTTP.name]]
    assert starts == [0.0, 1.5, 3.0, 4.5, 6.0] and found.count == 5
    assert found.broken(HTTP.name) == [3.0, 4.5, 6.0]
    # Broken in the last round: every failed round counts, the first is its verdict.
    [picked] = verdicts([HTTP], found, settle_s=6.0)
    assert not picked.ok and picked is found.seen[HTTP.name][2][1]
    assert measure([HTTP], 0.0, 3, run=lambda flows: [result(f) for f in flows],
                   clock=clock).count == 3


def test_a_blip_right_after_the_change_is_not_breakage_a_later_failure_is() -> None:
    """A restarted daemon drops a request right after the change and serves after: no
    verdict; a flow that fails after the settle time, even once, or in the last round is."""
    def rounds(oks: list[bool]) -> Rounds:
        found = Rounds()
        for i, ok in enumerate(oks):
            found.add(float(i * 3), [result(HTTP, ok=ok)])
        return found

    blip = rounds([False, True, True, True, True])
    assert counted(blip, HTTP.name, settle_s=10.0) == [] and verdicts([HTTP], blip)[0].ok
    late = rounds([True, True, True, True, False, True])       # at 12 s, after the settle time
    assert counted(late, HTTP.name, settle_s=10.0) == [12.0]
    assert not verdicts([HTTP], late, settle_s=10.0)[0].ok
    stays = rounds([False, False, True, False])                # the change left it broken
    assert counted(stays, HTTP.name, settle_s=10.0) == [0.0, 3.0, 9.0]


def test_rounds_wait_for_a_failing_flow_up_to_the_settle_time() -> None:
    """A window of 0 s still waits for a failing flow to recover (a blip), up to settle_s."""
    now = [0.0]

    def run(flows: list[Flow]) -> list[Result]:
        now[0] += 1.0
        return [result(f, ok=now[0] > 6) for f in flows]

    found = measure([HTTP], 0.0, 2, run=run, clock=lambda: now[0], settle_s=10.0)
    assert found.count == 7 and found.seen[HTTP.name][-1][1].ok
    assert verdicts([HTTP], found)[0].ok


def test_a_much_slower_flow_is_degraded_with_its_percentiles_in_words() -> None:
    before, after = rounds_of(HTTP, [10, 12, 11, 10]), rounds_of(HTTP, [180, 170, 200, 175])
    [delta], figures = degraded([HTTP], before, after)
    assert delta.kind == "degraded" and figures[HTTP.name]["p50_after"] == 175
    assert delta.describe() == ("http-api-at-lb@lb1 answers in 175 ms at the median (p95 200 ms) "
                                "(before: answers in 10 ms (p95 12 ms)); 18× slower at the "
                                "median (4 samples before, 4 after)")
    assert judge([delta], []) == (UNSAFE, ["DEGRADED: " + delta.describe()])
    assert judge([delta], [], accept=("degraded",)) == (SAFE, [])
    assert notes([delta], ("degraded",)) == [
        f"DEGRADED: {delta.describe()} (accepted: the change says `accept: [degraded]`)"]


def test_broken_or_blocked_flows_are_not_judged_for_latency() -> None:
    before = rounds_of(HTTP, [10, 12, 11, 10])
    after = rounds_of(HTTP, [180, 170, 200, 175])
    after.add(5.0, [result(HTTP, ok=False)])
    assert degraded([HTTP], before, after) == ([], {})
    blocked = rounds_of(BLOCK, [1, 1, 1, 1])
    assert degraded([BLOCK], blocked, rounds_of(BLOCK, [900, 900, 900, 900])) == ([], {})


def change_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "change.yaml"
    path.write_text("description: slower on purpose\nvars: {dns_ttl: 60}\n" + text)
    return path


def test_accept_degraded_is_part_of_the_change_and_its_digest(tmp_path: Path) -> None:
    plain = load_change(change_file(tmp_path, ""))
    accepting = load_change(change_file(tmp_path, "accept: [degraded]\n"))
    assert (plain.accept, accepting.accept) == ((), ("degraded",))
    assert plain.digest != accepting.digest


@pytest.mark.parametrize("text,said", [
    ("accept: degraded\n", "accept: expected a list of verdict classes"),
    ("accept: [outage]\n", "'outage' is not a class a change may accept"),
    ("accept: [Degraded]\n", "Did you mean 'degraded'?"),
    ("accept: [degraded, degraded]\n", "a class is listed twice"),
])
def test_a_bad_accept_is_one_clear_message(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(ChangeError) as err:
        load_change(change_file(tmp_path, text))
    assert str(err.value).startswith(f"{tmp_path / 'change.yaml'}:3: accept: ")
    assert said in str(err.value)


def test_a_slow_warm_up_is_measured_out_and_not_degraded() -> None:
    """Right after the change a restarted daemon answers slowly for a moment: the rounds go on
    while the last ones look slower, and the rule judges the last rounds; a flow that stays
    slower is DEGRADED once the settle time has passed."""
    before = rounds_of(HTTP, [10, 12, 11, 10])
    now = [0.0]

    def run_with(slow_until: float):
        def run(flows: list[Flow]) -> list[Result]:
            now[0] += 1.0
            return [result(f, ms=180.0 if now[0] <= slow_until else 11.0) for f in flows]
        return run

    warm = measure([HTTP], 0.0, MIN_SAMPLES, run=run_with(3.0), clock=lambda: now[0],
                   settle_s=10.0, before=before)
    assert warm.count == 5 and degraded([HTTP], before, warm)[0] == []
    now[0] = 0.0
    slow = measure([HTTP], 0.0, MIN_SAMPLES, run=run_with(99.0), clock=lambda: now[0],
                   settle_s=10.0, before=before)
    assert slow.count == 11 and [d.kind for d in degraded([HTTP], before, slow)[0]] == [
        "degraded"]
