"""The benchmark harness's rendering: statistics, ratios, the terminal table and the README's
generated timings section (bench/tables.py, bench/figures.py), without running a benchmark."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from figures import BENCHMARKS, NAMES, Figure, benchmark  # noqa: E402
from tables import (  # noqa: E402
    BEGIN,
    END,
    ResultsError,
    load_results,
    number,
    ratio,
    readme_section,
    replace_section,
    stats,
    terminal_table,
)

FLOOR = {
    "benchmark": "floor", "when": "2026-12-02T04:10:00Z", "runs": 3,
    "machine": {"cores": 2, "cpu_model": "Test CPU", "memory_gb": 7.8, "kernel": "6.1.0",
                "docker": "26.1.5", "pulumi": "v3.274.1", "python": "3.11.7",
                "load_avg_before": [3.14, 2.0, 1.0], "load_avg_after": [4.0, 2.0, 1.0]},
    "raw": {"floor_up_s": [2.0, 2.0, 4.0], "pulumi_up_s": [4.0, 5.0, 6.0],
            "floor_down_s": [1.0, 1.0, 1.0], "pulumi_destroy_s": [2.0, 2.0, 2.0],
            "extra_figure_s": [0.5, 0.5, 0.5]},
}
# A results file as written before min/max and the machine's description were recorded.
OLD = {"benchmark": "lab_lifecycle", "when": "2026-11-26T08:01:10Z", "runs": 5,
       "machine": {"cores": 2, "python": "3.11.7", "load_avg_at_end": [2.5, 4.6, 7.4]},
       "median": {"pulumi_up_s": 4.7}, "raw": {"pulumi_up_s": [4.61, 4.7, 4.66, 4.8, 4.73],
                                                "setup_warm_s": [5.2, 0.26, 0.25, 0.25, 0.25]}}


def test_stats_are_median_min_max_and_count():
    s = stats([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.low, s.high, s.runs) == (2.5, 1.0, 10.0, 4)


def test_ratio_pairs_runs_of_the_same_benchmark():
    figure = Figure("pulumi_up_s", "up", peer="floor_up_s")
    r = ratio(FLOOR["raw"], figure)
    assert (r.median, r.low, r.high, r.runs) == (2.0, 1.5, 2.5, 3)   # 4/2, 5/2, 6/4


def test_ratio_of_medians_when_runs_do_not_pair():
    figure = Figure("a", "a", peer="b")
    r = ratio({"a": [2.0, 4.0, 6.0], "b": [2.0, 2.0]}, figure)
    assert (r.median, r.runs) == (2.0, 1)


def test_no_ratio_without_a_measured_peer():
    assert ratio(FLOOR["raw"], Figure("floor_up_s", "floor")) is None
    assert ratio(FLOOR["raw"], Figure("floor_up_s", "floor", peer="missing_s")) is None


@pytest.mark.parametrize("value, unit, text", [
    (0.25, "s", "0.25 s"), (4.7, "s", "4.7 s"), (18.24, "s", "18.2 s"), (4.51, "%", "4.5 %"),
    (0, "", "0"), (39039, "", "39 039"), (1.5, "", "1.5")])
def test_numbers_as_the_readme_prints_them(value, unit, text):
    assert number(value, unit) == text


def test_terminal_table_has_every_measured_figure_and_its_ratio():
    table = terminal_table({"floor": FLOOR}).splitlines()
    assert table[0].split() == ["FIGURE", "MEDIAN", "MIN", "MAX", "RUNS", "RATIO"]
    up = next(line for line in table if line.startswith("floor.pulumi_up_s "))
    assert up.split() == ["floor.pulumi_up_s", "5.0", "s", "4.0", "s", "6.0", "s", "3",
                          "2.00×", "(1.50–2.50)"]
    # described figures first, in figures.py order; an undescribed one still shown, last
    keys = [line.split()[0] for line in table[1:]]
    assert keys == ["floor.floor_up_s", "floor.floor_down_s", "floor.pulumi_up_s",
                    "floor.pulumi_destroy_s", "floor.extra_figure_s"]


def test_readme_section_is_generated_between_the_markers():
    section = readme_section({"floor": FLOOR, "lab_lifecycle": OLD})
    lines = section.splitlines()
    assert lines[0] == BEGIN and lines[-1] == END
    # results measured on two machines: each machine named with its benchmarks
    named = {"- Test CPU, 2 cores, 7.8 GB memory, kernel 6.1.0, Docker 26.1.5, Pulumi v3.274.1, "
             "Python 3.11.7: `floor`.", "- 2 cores, Python 3.11.7: `lab_lifecycle`."}
    at = lines.index("Machines:")
    assert set(lines[at + 1:at + 3]) == named, lines[at:at + 3]
    assert ("Machine: Test CPU, 2 cores, 7.8 GB memory, kernel 6.1.0, Docker 26.1.5, "
            "Pulumi v3.274.1, Python 3.11.7.") in readme_section({"floor": FLOOR}).splitlines()
    assert any(line.startswith("**`bench/floor.py`**") and "3 runs, 2026-12-02 04:10:00 UTC, "
               "load average 3.1 → 4.0." in line for line in lines)
    assert ("| `pulumi up` of the same stack (`edge.engines.stack.up`) | `pulumi_up_s` | 5.0 s | "
            "4.0 s – 6.0 s | 3 | 2.00× (1.50–2.50) ÷ `floor_up_s` |  |") in lines
    # an older results file (no min/max, load only at the end) renders from its raw figures
    assert "| setup, warm (everything already there) | `setup_warm_s` | 0.25 s | " \
           "0.25 s – 5.2 s | 5 |  |  |" in lines
    assert any("load average ? → 2.5." in line for line in lines)
    # a note of the results file follows the line saying when it ran
    noted = readme_section({"floor": FLOOR | {"note": "Runs 1-2 of 3."}})
    assert "load average 3.1 → 4.0. Runs 1-2 of 3." in noted
    # a benchmark without results says how to measure it
    assert any(line.startswith("**`bench/watch.py`**") and "Not measured yet "
               "(`bench/run.py --only watch`)." in line for line in lines)


def test_replace_section_keeps_everything_outside_the_markers():
    readme = f"# T\n\n## Timings\n\nintro\n\n{BEGIN}\nold table\n{END}\n\nafter\n"
    new = replace_section(readme, f"{BEGIN}\nnew\n{END}", Path("README.md"))
    assert new == f"# T\n\n## Timings\n\nintro\n\n{BEGIN}\nnew\n{END}\n\nafter\n"
    assert replace_section(new, f"{BEGIN}\nnew\n{END}", Path("README.md")) == new


def test_replace_section_without_markers_says_what_to_add():
    with pytest.raises(ResultsError) as err:
        replace_section("# T\n\n## Timings\n", "x", Path("README.md"))
    assert str(err.value).startswith("README.md:1: ")
    assert BEGIN in str(err.value) and END in str(err.value)


def test_a_broken_results_file_names_file_line_and_fix(tmp_path):
    (tmp_path / "floor.json").write_text('{"raw": {\n  "x": [1,]\n}}')
    with pytest.raises(ResultsError, match=r"floor\.json:2: not valid JSON .*--only floor"):
        load_results(tmp_path)
    (tmp_path / "floor.json").write_text(json.dumps({"median": {}}))
    with pytest.raises(ResultsError, match=r"floor\.json:1: no `raw` figures"):
        load_results(tmp_path)


def test_every_benchmark_is_a_script_and_its_figures_are_consistent():
    assert len(set(NAMES)) == len(NAMES)
    for bench in BENCHMARKS:
        keys = [f.key for f in bench.figures]
        assert len(set(keys)) == len(keys), bench.name
        assert all(f.peer in keys for f in bench.figures if f.peer), bench.name
        assert all(f.unit in ("s", "ms", "%", "") for f in bench.figures), bench.name
        tree = ast.parse((ROOT / "bench" / f"{bench.name}.py").read_text())
        names = {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)
                 and isinstance(node.value, ast.Constant)}
        assert names.get("NAME") == bench.name
        assert any(isinstance(n, ast.FunctionDef) and n.name == "measure" for n in tree.body)
    assert benchmark("floor").name == "floor"


def test_the_readme_timings_are_the_generated_ones():
    """README.md's section is what `bench/run.py --readme` makes of bench/results today."""
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    assert readme[start:end] == readme_section(load_results(ROOT / "bench" / "results")), \
        "README.md's timings are stale: run `.venv/bin/python bench/run.py --readme`"
