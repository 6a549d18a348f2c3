"""`--timings`: the step recorder and the process start-up parsing (edge/report/timings.py)."""

from __future__ import annotations

import pytest

from edge.report.timings import (
    NAME_WIDTH,
    STARTUP,
    Timings,
    is_stage,
    seconds_since_start,
    stage_name,
    stat_start_ticks,
)


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# /proc/<pid>/stat of a process whose command name holds spaces and a parenthesis.
STAT = ("4242 (python3 x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 12 3 0 0 20 0 1 0 "
        "987654 123456789 5000 18446744073709551615 1 1 0 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0")


def test_start_time_is_read_after_the_command_name() -> None:
    assert stat_start_ticks(STAT) == 987654
    assert seconds_since_start(STAT, 9876.54 + 2.5, 100) == pytest.approx(2.5)


def test_a_clock_behind_the_start_time_gives_no_negative_age() -> None:
    assert seconds_since_start(STAT, 9000.0, 100) == 0.0


def test_steps_run_from_the_process_start_to_finish() -> None:
    clock = Clock()
    timings = Timings(age_s=1.5, clock=clock)
    clock.now += 0.5
    timings.mark("recover")
    clock.now += 3.0
    timings.mark("pulumi")
    clock.now += 10.0
    timings.finish()
    clock.now += 99.0   # after finish: counted nowhere
    steps = timings.steps()
    assert [(s.name, s.seconds) for s in steps] == [(STARTUP, 2.0), ("recover", 3.0),
                                                    ("pulumi", 10.0)]
    table = timings.table()
    assert "15.00" in table.splitlines()[-1] and "wall time" in table
    assert "67%" in table   # pulumi's 10 s of 15


def test_stage_lines_mark_steps_and_task_lines_do_not() -> None:
    clock, said = Clock(), []
    timings = Timings(clock=clock)
    sink = timings.progress(said.append)
    clock.now += 1.0
    sink("preview: [1/3] static: pulumi preview --diff")
    clock.now += 2.0
    sink("  ns1: write the zone: changed")
    clock.now += 2.0
    sink("preview: [2/3] staged: baseline")
    timings.finish()
    assert said == ["preview: [1/3] static: pulumi preview --diff",
                    "  ns1: write the zone: changed", "preview: [2/3] staged: baseline"]
    assert [(s.name, s.seconds) for s in timings.steps()] == [
        (STARTUP, 1.0), ("preview: [1/3] static: pulumi preview --diff", 4.0),
        ("preview: [2/3] staged: baseline", 0.0)]


def test_stage_names_are_one_short_line() -> None:
    assert not is_stage("  lb1: task: changed") and not is_stage("") and is_stage("apply: x")
    long = stage_name("apply: " + "x" * 200 + "\nsecond line")
    assert len(long) == NAME_WIDTH and long.endswith("…") and "\n" not in long
