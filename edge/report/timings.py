"""Where a command's wall time goes: the steps of `edge preview|apply|converge --timings`.

A recorder of marks ("this step starts now") on one monotonic clock whose origin is the start of
the process, so the table accounts for the whole wall time a user waits, interpreter start and
imports included, not only what the workflow times itself. The workflows already tell their
stages through their `progress` callback; `Timings.progress` wraps that callback and turns each
stage line into a mark, so no workflow needs to know it is timed. The command line adds marks for
what it does itself (recovering stacks, reading the change, writing reports).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.report.table import text_table

Progress = Callable[[str], None]
STARTUP = "start-up: interpreter and imports"
NAME_WIDTH = 78   # a step's name in the table: its stage line, cut to this many characters


@dataclass(frozen=True)
class Step:
    """One step of a command and how long it took."""

    name: str
    seconds: float


def stat_start_ticks(stat: str) -> int:
    """The process's start time (field 22 of /proc/<pid>/stat), in clock ticks since boot. The
    command name (field 2) may hold spaces and parentheses, so fields are counted after its last
    closing parenthesis."""
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])   # field 22 is the 20th after the name (fields 3 onwards)


def seconds_since_start(stat: str, now_since_boot: float, ticks_per_s: int) -> float:
    """How long ago the process described by `stat` started (never negative)."""
    return max(0.0, now_since_boot - stat_start_ticks(stat) / ticks_per_s)


def process_age() -> float:
    """Seconds since this process started (0 when /proc cannot tell, e.g. not on Linux): the
    interpreter's start and the imports happen before any code of edge can look at a clock."""
    try:
        stat = Path("/proc/self/stat").read_text()
        return seconds_since_start(stat, time.clock_gettime(time.CLOCK_BOOTTIME),
                                   os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, AttributeError):
        return 0.0


def is_stage(line: str) -> bool:
    """A workflow's stage line ("preview: [2/3] ...", "apply: converging ..."), as opposed to the
    indented per-host task lines of a converge, which are no step of their own."""
    return bool(line.strip()) and not line[0].isspace()


def stage_name(line: str) -> str:
    """A stage line as a step's name: its first line, cut to NAME_WIDTH characters."""
    first = line.strip().splitlines()[0]
    return first if len(first) <= NAME_WIDTH else first[:NAME_WIDTH - 1] + "…"


class Timings:
    """Marks on one clock whose origin is the process's start; each step lasts until the next
    mark, the last until `finish`."""

    def __init__(self, age_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.marks: list[tuple[float, str]] = [(clock() - age_s, STARTUP)]
        self.ended: float | None = None

    @classmethod
    def since_process_start(cls) -> Timings:
        """A recorder whose first step is the process's own start-up."""
        return cls(process_age())

    def mark(self, name: str) -> None:
        """Step `name` starts now (and the one before it ends)."""
        self.marks.append((self.clock(), name))

    def progress(self, inner: Progress | None = None) -> Progress:
        """A progress callback that marks each stage line, then hands every line to `inner`."""
        def sink(line: str) -> None:
            if is_stage(line):
                self.mark(stage_name(line))
            if inner is not None:
                inner(line)
        return sink

    def finish(self) -> None:
        """The last step ends now."""
        self.ended = self.clock()

    def steps(self) -> list[Step]:
        """Every step in order with its duration (the last one up to `finish`, or now)."""
        end = self.ended if self.ended is not None else self.clock()
        bounds = [t for t, _ in self.marks[1:]] + [end]
        return [Step(name, max(0.0, stop - start))
                for (start, name), stop in zip(self.marks, bounds)]

    def table(self) -> str:
        """The steps as a table (seconds and share of the wall time), then the total."""
        steps = self.steps()
        wall = sum(s.seconds for s in steps)
        rows = [("SECONDS", "SHARE", "STEP")]
        rows += [(f"{s.seconds:7.2f}", f"{100 * s.seconds / wall:4.0f}%" if wall else "",
                  s.name) for s in steps]
        rows.append((f"{wall:7.2f}", " 100%" if wall else "", "wall time"))
        return text_table(rows)
