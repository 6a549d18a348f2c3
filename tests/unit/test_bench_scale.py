"""The scale report (edge/report/scale.py) and bench/scale.py's results turned into its series
(bench/tables.py), without running the benchmark."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from figures import SCALE_SIZES, benchmark  # noqa: E402
from tables import scale_series  # noqa: E402

from edge.report.scale import Point, Series, growth_text, scale_html, scale_svg  # noqa: E402

RESULT = {"benchmark": "scale", "runs": 2, "raw": {
    "pulumi_up_13_s": [10.0, 12.0], "pulumi_up_26_s": [20.0, 22.0], "pulumi_up_52_s": [40.0, 44.0],
    "converge_13_s": [30.0, 30.0], "converge_26_s": [90.0, 90.0], "converge_52_s": [300.0, 300.0],
    "verify_13_s": [2.0], "flows_13": [40, 40]}}


def test_results_become_one_series_per_step_measured():
    series = {s.name: s for s in scale_series(RESULT)}
    assert set(series) == {"pulumi up", "converge, fresh containers",
                           "verify (the contract's flows)"}
    assert series["pulumi up"].points == (Point(13, 11.0, 10.0, 12.0), Point(26, 21.0, 20.0, 22.0),
                                          Point(52, 42.0, 40.0, 44.0))
    assert [p.nodes for p in series["verify (the contract's flows)"].points] == [13]


def test_growth_tells_linear_from_worse():
    linear = Series("up", (Point(13, 10.0, 10.0, 10.0), Point(52, 38.0, 38.0, 38.0)))
    worse = Series("converge", (Point(13, 10.0, 10.0, 10.0), Point(52, 80.0, 80.0, 80.0)))
    assert "linear or better" in growth_text(linear)
    assert growth_text(worse) == "2.00 (worse than linear)"
    assert growth_text(Series("x", (Point(13, 1.0, 1.0, 1.0),))) == "-"


def test_the_plot_is_valid_svg_with_a_line_per_step_and_the_linear_guides():
    series = scale_series(RESULT)
    svg = ET.fromstring(scale_svg(series))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(svg.findall(f"{ns}polyline")) == len(series)
    dashed = [e for e in svg.findall(f"{ns}line") if e.get("stroke-dasharray")]
    assert len(dashed) == len(series)
    labels = {e.text for e in svg.findall(f"{ns}text")}
    assert {str(n) for n in SCALE_SIZES} <= labels and "pulumi up" in labels


def test_the_page_has_the_plot_and_a_row_per_step():
    page = scale_html(scale_series(RESULT), "2 runs <now>")
    assert "<svg" in page and "2 runs &lt;now&gt;" in page
    assert page.count("<tr><td>") == 3 and "worse than linear" in page   # converge: 10× for 4×


def test_the_scale_benchmark_describes_every_figure_it_records():
    keys = {f.key for f in benchmark("scale").figures}
    assert {f"{step}_{n}_s" for step in ("up", "pulumi_up", "converge", "converge_again",
                                         "verify", "destroy") for n in SCALE_SIZES} <= keys
    assert all(f.peer.endswith(f"_{SCALE_SIZES[0]}_s") for f in benchmark("scale").figures
               if f.peer)
