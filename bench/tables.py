"""Render benchmark results (bench/results/*.json) as the terminal table and the README section.

Pure functions over the results files and bench/figures.py, so the README's "## Timings" table is
generated, never typed: `bench/run.py --readme` rewrites what lies between the two marker
comments, and tests/unit/test_bench.py checks the rendering without running a benchmark.
Statistics are taken from the raw figures, so results files written before min/max were recorded
render the same way.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from figures import BENCHMARKS, SCALE_SIZES, SCALE_STEPS, Benchmark, Figure

from edge.report.scale import Point, Series
from edge.report.table import text_table

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
Result = dict[str, Any]


class ResultsError(ValueError):
    """A results file or the README cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Stats:
    """Median, smallest and largest of a figure's runs."""

    median: float
    low: float
    high: float
    runs: int


def stats(values: list[float]) -> Stats:
    return Stats(statistics.median(values), min(values), max(values), len(values))


def ratio(raw: dict[str, list[float]], figure: Figure) -> Stats | None:
    """The figure over its peer. Both measured in the same runs (alternating): the ratio of each
    run's pair, so machine load that drifts between runs cancels out; otherwise the ratio of the
    medians."""
    mine, peer = raw.get(figure.key) or [], raw.get(figure.peer) or []
    if not figure.peer or not mine or not peer:
        return None
    if len(mine) == len(peer) and all(peer):
        return stats([m / p for m, p in zip(mine, peer)])
    base = statistics.median(peer)
    return stats([statistics.median(mine) / base]) if base else None


def number(value: float, unit: str) -> str:
    """A figure as the README prints it: seconds to two significant decimals below 1 s."""
    if unit == "":
        return f"{value:,.0f}".replace(",", " ") if float(value).is_integer() else f"{value:g}"
    text = f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}"
    return f"{text} {unit}"


def ratio_text(r: Stats | None) -> str:
    if r is None:
        return ""
    if r.runs == 1 or r.low == r.high:
        return f"{r.median:.2f}×"
    return f"{r.median:.2f}× ({r.low:.2f}–{r.high:.2f})"


def range_text(s: Stats, unit: str) -> str:
    return number(s.low, unit) if s.runs == 1 else f"{number(s.low, unit)} – {number(s.high, unit)}"


def figures_of(bench: Benchmark, result: Result) -> list[Figure]:
    """The benchmark's described figures that were measured, then any measured but undescribed
    (shown by key, so nothing recorded is hidden)."""
    raw = result.get("raw") or {}
    known = [f for f in bench.figures if raw.get(f.key)]
    described = {f.key for f in bench.figures}
    return known + [Figure(k, k) for k in raw if k not in described and raw[k]]


def load_results(folder: Path) -> dict[str, Result]:
    """Every benchmark's results file that exists, by benchmark name."""
    results = {}
    for bench in BENCHMARKS:
        path = folder / f"{bench.name}.json"
        if not path.exists():
            continue
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ResultsError(f"{path}:{err.lineno}: not valid JSON ({err.msg}). Run "
                               f"`bench/run.py --only {bench.name}` again to rewrite it.") from None
        if not isinstance(result, dict) or not isinstance(result.get("raw"), dict):
            raise ResultsError(f"{path}:1: no `raw` figures. Run `bench/run.py --only "
                               f"{bench.name}` again to rewrite it.")
        results[bench.name] = result
    return results


def terminal_table(results: dict[str, Result]) -> str:
    """One table for every benchmark given: figure, median, min, max, runs, ratio to its peer."""
    rows = [("FIGURE", "MEDIAN", "MIN", "MAX", "RUNS", "RATIO")]
    for bench in BENCHMARKS:
        if bench.name not in results:
            continue
        raw = results[bench.name]["raw"]
        for figure in figures_of(bench, results[bench.name]):
            s = stats(raw[figure.key])
            rows.append((f"{bench.name}.{figure.key}", number(s.median, figure.unit),
                         number(s.low, figure.unit), number(s.high, figure.unit), str(s.runs),
                         ratio_text(ratio(raw, figure))))
    return text_table(rows)


def machine_text(machine: dict[str, Any]) -> str:
    """The machine a result was measured on, in one phrase."""
    parts = [machine.get("cpu_model"), machine.get("cores") and f"{machine['cores']} cores",
             machine.get("memory_gb") and f"{machine['memory_gb']} GB memory",
             machine.get("kernel") and f"kernel {machine['kernel']}",
             machine.get("docker") and f"Docker {machine['docker']}",
             machine.get("pulumi") and f"Pulumi {machine['pulumi']}",
             machine.get("python") and f"Python {machine['python']}"]
    return ", ".join(str(p) for p in parts if p)


def machines_text(results: dict[str, Result]) -> list[str]:
    """The README's lines naming the machine(s) the results were measured on: one line when all
    ran on one, else one line per machine with its benchmarks (results are re-measured one
    benchmark at a time, so a table may mix machines; naming only one would misattribute)."""
    machines: dict[str, list[str]] = {}
    for bench in BENCHMARKS:
        if bench.name in results:
            text = machine_text(results[bench.name].get("machine") or {})
            if text:
                machines.setdefault(text, []).append(f"`{bench.name}`")
    if len(machines) <= 1:
        return [line for text in machines for line in (f"Machine: {text}.", "")]
    return ["Machines:"] + [f"- {text}: {', '.join(names)}." for text, names in machines.items()] \
        + [""]


def _load(values: Any) -> str:
    return f"{values[0]:.1f}" if isinstance(values, list) and values else "?"


def run_text(bench: Benchmark, result: Result) -> str:
    """When and under what load a benchmark ran, and its results file's `note` if it has one
    (how figures were obtained when a run could not finish normally)."""
    machine = result.get("machine") or {}
    load = f"load average {_load(machine.get('load_avg_before'))} → " \
           f"{_load(machine.get('load_avg_after') or machine.get('load_avg_at_end'))}"
    note = f" {result['note']}" if result.get("note") else ""
    return (f"**`bench/{bench.name}.py`**: {bench.text}. {result.get('runs', '?')} runs, "
            f"{str(result.get('when', '?')).replace('T', ' ').replace('Z', ' UTC')}, {load}."
            + note)


def readme_section(results: dict[str, Result]) -> str:
    """The generated part of the README's "## Timings": per benchmark, a line saying when it ran
    and a table of its figures (median, range, runs, ratio to its peer figure, target)."""
    lines = [BEGIN, "<!-- generated by `bench/run.py --readme` from bench/results/ and "
             "bench/figures.py: edit those, not this -->", ""] + machines_text(results)
    for bench in BENCHMARKS:
        result = results.get(bench.name)
        if result is None:
            lines += [f"**`bench/{bench.name}.py`**: {bench.text}. Not measured yet "
                      f"(`bench/run.py --only {bench.name}`).", ""]
            continue
        raw = result["raw"]
        lines += [run_text(bench, result), "",
                  "| figure | key | median | min – max | runs | ratio | target |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for figure in figures_of(bench, result):
            s = stats(raw[figure.key])
            r = ratio(raw, figure)
            versus = f"{ratio_text(r)} ÷ `{figure.peer}`" if r else ""
            lines.append(f"| {figure.text} | `{figure.key}` | {number(s.median, figure.unit)} | "
                         f"{range_text(s, figure.unit)} | {s.runs} | {versus} | "
                         f"{figure.target} |")
        lines.append("")
    return "\n".join(lines + [END])


def replace_section(readme: str, section: str, path: Path) -> str:
    """`readme` with the text between the markers (included) replaced by `section`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < 0 or end < start:
        line = readme[:max(start, 0)].count("\n") + 1
        raise ResultsError(f"{path}:{line}: the generated timings need the marker lines {BEGIN} "
                           f"and then {END} in its \"## Timings\" section. Add them where the "
                           "table goes and run `bench/run.py --readme` again.")
    return readme[:start] + section + readme[end + len(END):]


def scale_series(result: Result) -> list[Series]:
    """bench/scale.py's results as the scale report's series: one per step, a point per lab
    size measured (median and range of its runs)."""
    raw = result.get("raw") or {}
    series = []
    for key, text in SCALE_STEPS:
        points = tuple(Point(n, s.median, s.low, s.high) for n in SCALE_SIZES
                       if raw.get(key.format(n)) for s in [stats(raw[key.format(n)])])
        if points:
            series.append(Series(text.replace("`", ""), points))
    return series
