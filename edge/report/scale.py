"""Cost as the lab grows, as a page: a table and a line plot of each step's seconds against the
number of nodes (bench/scale.py measures them; `bench/run.py --readme` writes the page).

Pure rendering (data in, HTML text out) with an inline SVG, like the preview's report. Each step
is drawn with the straight line of linear growth from its smallest size (dashed, same colour):
a step whose points climb above its dashed line grows faster than the lab.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 400, 60, 220, 20, 50
COLOURS = ("#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037")


@dataclass(frozen=True)
class Point:
    """One step at one lab size: the median of its runs, and their range."""

    nodes: int
    median: float
    low: float
    high: float


@dataclass(frozen=True)
class Series:
    """One step of the benchmark across the lab sizes, smallest first."""

    name: str
    points: tuple[Point, ...]

    def growth(self) -> float | None:
        """Largest over smallest, divided by how much the lab grew: 1 is linear, above 1 is
        worse than linear (None when the smallest took no time)."""
        first, last = self.points[0], self.points[-1]
        if not first.median or first.nodes == last.nodes:
            return None
        return (last.median / first.median) / (last.nodes / first.nodes)


def _nice_top(value: float) -> float:
    """A round axis maximum at or above `value`."""
    step = 1.0
    while step * 10 < value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return step * 10


def scale_svg(series: list[Series]) -> str:
    """Seconds against nodes, one coloured line per step, its linear line dashed beside it."""
    nodes = sorted({p.nodes for s in series for p in s.points})
    top = _nice_top(max([p.high for s in series for p in s.points] + [1.0]))
    x_max = nodes[-1] if nodes else 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(n: float) -> float:
        return LEFT + plot_w * n / x_max

    def y(v: float) -> float:
        return TOP + plot_h * (1 - min(v, top) / top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="scale" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">',
             f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{x(x_max):.1f}" y2="{y(0):.1f}" '
             'stroke="#455a64"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{y(0):.1f}" stroke="#455a64"/>']
    for i in range(5):
        value = top * i / 4
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
                     f'{value:g}</text><line x1="{LEFT}" y1="{y(value):.1f}" x2="{x(x_max):.1f}" '
                     f'y2="{y(value):.1f}" stroke="#eceff1"/>')
    for n in nodes:
        parts.append(f'<text x="{x(n):.1f}" y="{y(0) + 16:.1f}" text-anchor="middle">{n}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                 'nodes</text><text x="14" y="{0:.1f}" transform="rotate(-90 14 {0:.1f})" '
                 'text-anchor="middle">seconds (median, bar: min–max)</text>'
                 .format(TOP + plot_h / 2))
    for number, s in enumerate(series):
        colour = COLOURS[number % len(COLOURS)]
        first = s.points[0]
        line = " ".join(f"{x(p.nodes):.1f},{y(p.median):.1f}" for p in s.points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<line x1="{x(first.nodes):.1f}" y1="{y(first.median):.1f}" '
                     f'x2="{x(x_max):.1f}" y2="{y(first.median * x_max / first.nodes):.1f}" '
                     f'stroke="{colour}" stroke-dasharray="4 4" stroke-opacity="0.6"/>')
        for p in s.points:
            parts.append(f'<circle cx="{x(p.nodes):.1f}" cy="{y(p.median):.1f}" r="3" '
                         f'fill="{colour}"><title>{html.escape(s.name)}, {p.nodes} nodes: '
                         f'{p.median:.1f} s</title></circle><line x1="{x(p.nodes):.1f}" '
                         f'y1="{y(p.low):.1f}" x2="{x(p.nodes):.1f}" y2="{y(p.high):.1f}" '
                         f'stroke="{colour}"/>')
        label_y = TOP + 14 + 18 * number
        parts.append(f'<line x1="{WIDTH - RIGHT + 16}" y1="{label_y - 4}" '
                     f'x2="{WIDTH - RIGHT + 36}" y2="{label_y - 4}" stroke="{colour}" '
                     f'stroke-width="2"/><text x="{WIDTH - RIGHT + 42}" y="{label_y}">'
                     f'{html.escape(s.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def growth_text(s: Series) -> str:
    """How a step grows, in words a reader checks at a glance."""
    g = s.growth()
    if g is None:
        return "-"
    word = "linear or better" if g <= 1.1 else "worse than linear"
    return f"{g:.2f} ({word})"


def scale_html(series: list[Series], about: str) -> str:
    """The page: what was measured on what, the plot, then the table of medians and ranges."""
    nodes = sorted({p.nodes for s in series for p in s.points})
    head = "".join(f"<th>{n} nodes</th>" for n in nodes)
    rows = []
    for s in series:
        by_nodes = {p.nodes: p for p in s.points}
        cells = "".join(
            f"<td>{by_nodes[n].median:.1f} s <small>({by_nodes[n].low:.1f}–"
            f"{by_nodes[n].high:.1f})</small></td>" if n in by_nodes else "<td>-</td>"
            for n in nodes)
        rows.append(f"<tr><td>{html.escape(s.name)}</td>{cells}<td>{growth_text(s)}</td></tr>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>edge: cost as the lab grows</title>
<style>body{{font-family:sans-serif;margin:24px;color:#263238}}
table{{border-collapse:collapse}}td,th{{border:1px solid #cfd8dc;padding:3px 8px;font-size:13px}}
th{{background:#eceff1}}svg{{display:block;max-width:100%;height:auto}}</style>
</head><body>
<h1>Cost as the lab grows</h1>
<p>{html.escape(about)}</p>
{scale_svg(series)}
<p>Dashed: linear growth from the smallest lab. Growth: (seconds at the largest ÷ at the
smallest) ÷ (nodes at the largest ÷ at the smallest); 1 is linear.</p>
<table><tr><th>step</th>{head}<th>growth</th></tr>
{"".join(rows)}
</table>
</body></html>
"""
