"""An incident replay or watch session as a picture, as terminal lines, and as one HTML file.

Probes sample every flow from every vantage again and again; an outage is then a band of failed
marks across lanes that starts near the fault marker and ends near the restore marker, and the
gaps between the markers are the times to detect and to recover. The chart bins samples into
pixel columns so thousands of them stay one readable picture, and a column holding any failure is
drawn failed: one lost answer among thousands of good ones is exactly what must not vanish.

Samples, alarms and events are the watcher's data (edge/lab/events.py); this module only draws them.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable

from edge.lab.events import Event, Sample
from edge.report.table import text_table

# Okabe-Ito blue and vermillion stay apart for colour-blind readers; failed marks are also taller,
# so the chart still reads when printed in grey.
OK, FAILED, LATENCY = "#0072b2", "#d55e00", "#37474f"
EVENT_STYLE = {"baseline": ("#78909c", "2,3"), "fault": ("#c62828", "6,4"),
               "restore": ("#2e7d32", "6,4"), "alarm": ("#e69f00", ""),
               "recovering": ("#56b4e9", "2,2"), "clear": ("#1565c0", ""),
               "green": ("#2e7d32", "")}
VANTAGE_ORDER = {"client": "from client (outside)", "inside": "from inside"}
LABEL_W, PLOT_W, RIGHT_W, TOP = 230, 900, 80, 36
LANE_H, HEAD_H, COL_PX, ROW_H, MAX_ROWS = 20, 18, 2, 13, 5
CHAR_W = 6.2   # rough width of an 11px sans-serif character, to keep event labels apart


def _lanes(samples: list[Sample]) -> dict[tuple[str, str], list[Sample]]:
    """Samples in time order per (vantage, flow); outside vantages first, as users see those."""
    lanes: dict[tuple[str, str], list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.t):
        lanes.setdefault((s.vantage, s.flow), []).append(s)
    order = list(VANTAGE_ORDER)
    return {key: lanes[key] for key in sorted(
        lanes, key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k))}


def _pct(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when it is empty."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _tick_step(span: float) -> float:
    """1, 2 or 5 times a power of ten: about eight round-numbered ticks whatever the span."""
    raw = span / 8
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))


def _stroke(kind: str) -> str:
    colour, dash = EVENT_STYLE.get(kind, ("#546e7a", ""))
    return (f'stroke="{colour}" stroke-width="{2 if kind == "alarm" else 1.5}"'
            + (f' stroke-dasharray="{dash}"' if dash else ""))


def _columns(lane: list[Sample], span: float) -> dict[int, tuple[bool, float | None]]:
    """Per occupied pixel column: whether any sample failed, and the highest ok latency."""
    cols: dict[int, tuple[bool, float | None]] = {}
    ncols = PLOT_W // COL_PX
    for s in lane:
        c = min(ncols - 1, max(0, int(s.t / span * ncols)))
        failed, top = cols.get(c, (False, None))
        if s.ok:
            top = s.latency_ms if top is None else max(top, s.latency_ms)
        cols[c] = (failed or not s.ok, top)
    return cols


def _lane_svg(lane: list[Sample], y: float, span: float) -> list[str]:
    """Status marks and the latency line of a lane.

    A column's state holds until the lane's next sample unless that gap is over twice the lane's
    usual one: sparse probing still draws a band, while a stalled probe leaves a hole."""
    cols = _columns(lane, span)
    occupied = sorted(cols)
    bridge = 2 * (_pct(sorted(b - a for a, b in zip(occupied, occupied[1:])), 0.5) or 1)
    runs: list[list] = []   # [first column, last column, failed]
    for c in occupied:
        if runs and c - runs[-1][1] <= bridge and runs[-1][2] == cols[c][0]:
            runs[-1][1] = c
        else:
            if runs and c - runs[-1][1] <= bridge:
                runs[-1][1] = c - 1
            runs.append([c, c, cols[c][0]])
    parts = []
    for first, last, failed in runs:
        top, height = (y + 1, LANE_H - 2) if failed else (y + LANE_H - 7, 5)
        parts.append(f'<rect class="{"failed" if failed else "ok"}" x="{LABEL_W + first * COL_PX}"'
                     f' y="{top}" width="{(last - first + 1) * COL_PX}" height="{height}" '
                     f'fill="{FAILED if failed else OK}"/>')
    peak = max((lat for _, lat in cols.values() if lat is not None), default=None)
    path, pen = [], "M"
    for c in occupied:
        failed, lat = cols[c]
        if failed or lat is None:   # a failure breaks the line rather than bridging it
            pen = "M"
            continue
        path.append(f"{pen}{LABEL_W + (c + 0.5) * COL_PX:.1f},"
                    f"{y + LANE_H - 8 - lat / (peak or 1.0) * (LANE_H - 10):.1f}")
        pen = "L"
    if path:
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{LATENCY}" '
                     'stroke-width="1"/>')
    parts.append(f'<text x="{LABEL_W + PLOT_W + 6}" y="{y + LANE_H - 6}" fill="{LATENCY}">'
                 f'{"max " + _ms(peak) + " ms" if peak is not None else "no ok"}</text>')
    return parts


def _event_labels(events: list[Event], x: Callable[[float], float],
                  width: float) -> tuple[list, int]:
    """(event, baseline y, text, anchor) per event, and how many label rows that takes.

    Labels of close events go on separate rows so they stay legible, at most MAX_ROWS; an event
    with no free row left keeps its line and tooltip but no label (text ""), rather than a
    label written over another."""
    placed, ends = [], []   # ends: right end of the last label in each row
    for e in events:
        text, ex = _short(e.label, 32), x(e.t)
        w = len(text) * CHAR_W + 3
        lo, hi, anchor = (ex, ex + w, "start") if ex + w <= width else (ex - w, ex, "end")
        free = [i for i, end in enumerate(ends) if end < lo]
        if not free and len(ends) < MAX_ROWS:
            ends.append(0.0)
            free = [len(ends) - 1]
        if not free:
            placed.append((e, TOP + (len(ends) - 1) * ROW_H + 10, "", anchor))
            continue
        ends[free[0]] = hi + 6
        placed.append((e, TOP + free[0] * ROW_H + 10, text, anchor))
    return placed, len(ends)


def _legend(y: float) -> list[str]:
    items = [(f'<rect y="6" width="8" height="5" fill="{OK}"/>', "ok"),
             (f'<rect width="8" height="12" fill="{FAILED}"/>',
              "failed (any failure in the column)"),
             (f'<path d="M0,10 L4,3 L8,7" fill="none" stroke="{LATENCY}"/>',
              "latency of ok samples, scaled per lane")]
    items += [(f'<line x1="4" x2="4" y2="12" {_stroke(kind)}/>', kind) for kind in EVENT_STYLE]
    parts, x = [], 10.0
    for icon, words in items:
        parts.append(f'<g transform="translate({x:.0f},{y})">{icon}<text x="12" y="10">'
                     f'{html.escape(words)}</text></g>')
        x += 30 + len(words) * CHAR_W
    return parts


def timeline_svg(samples: list[Sample], events: list[Event], title: str) -> str:
    """Self-contained SVG: a lane per flow grouped by vantage, event markers, axis and legend.

    Latency is that of ok samples only (a failed probe's latency is mostly its timeout), drawn
    on each lane's own scale with the lane's maximum written at its right."""
    lanes, events = _lanes(samples), sorted(events, key=lambda e: e.t)
    span = max([s.t for s in samples] + [e.t for e in events], default=0.0) or 1.0
    width = LABEL_W + PLOT_W + RIGHT_W

    def x(t: float) -> float:
        return LABEL_W + max(0.0, min(t, span)) / span * PLOT_W

    placed, label_rows = _event_labels(events, x, width)
    y = plot_top = TOP + label_rows * ROW_H + 6
    rows, vantage = [], None   # (y, lane key or None for a vantage heading, text)
    for key in lanes:
        if key[0] != vantage:
            vantage = key[0]
            rows.append((y, None, VANTAGE_ORDER.get(vantage, f"from {vantage}")))
            y += HEAD_H
        rows.append((y, key, key[1]))
        y += LANE_H
    bottom, height = y, y + 64
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<title>{html.escape(title)}</title>'
             f'<rect width="{width}" height="{height}" fill="#fff"/>',
             f'<text x="10" y="20" font-size="15" font-weight="bold">{html.escape(title)}</text>',
             f'<text x="{width - 10}" y="20" text-anchor="end" fill="#607d8b">{len(samples)} '
             f'samples, {len(lanes)} lanes, {span:.0f} s</text>']
    shade = {key: i % 2 for i, key in enumerate(lanes)}   # every other lane, to follow it across
    for ry, key, name in rows:
        if key is None:
            parts.append(f'<text x="10" y="{ry + 13}" font-weight="bold">'
                         f'{html.escape(name)}</text>')
            continue
        failed = sum(not s.ok for s in lanes[key])
        if shade[key]:
            parts.append(f'<rect y="{ry}" width="{width}" height="{LANE_H}" fill="#f3f5f6"/>')
        parts.append(f'<text class="lane" x="{LABEL_W - 6}" y="{ry + LANE_H - 6}" '
                     f'text-anchor="end">{html.escape(_short(name, 36))}<title>'
                     f'{html.escape(f"{name} from {key[0]}: {len(lanes[key])} samples, ")}'
                     f'{failed} failed</title></text>')
    step = _tick_step(span)
    for i in range(int(span / step + 1e-9) + 1):
        tx = x(i * step)
        parts.append(f'<line x1="{tx:.1f}" y1="{plot_top}" x2="{tx:.1f}" y2="{bottom + 4}" '
                     f'stroke="#cfd8dc" stroke-width="0.5"/><text x="{tx:.1f}" y="{bottom + 16}" '
                     f'text-anchor="middle" fill="#607d8b">{i * step:g}</text>')
    parts.append(f'<text x="{LABEL_W + PLOT_W / 2}" y="{bottom + 30}" text-anchor="middle" '
                 'fill="#607d8b">seconds since the session started</text>')
    for ry, key, _ in rows:
        if key is not None:
            parts += _lane_svg(lanes[key], ry, span)
    for e, ly, text, anchor in placed:
        ex = x(e.t)
        colour = EVENT_STYLE.get(e.kind, ("#546e7a", ""))[0]
        parts.append(f'<line class="event" x1="{ex:.1f}" y1="{ly + 3}" x2="{ex:.1f}" '
                     f'y2="{bottom}" {_stroke(e.kind)}><title>'
                     f'{html.escape(f"+{e.t:.2f}s {e.kind}: {e.label}")}</title></line>'
                     + (f'<text x="{ex + (3 if anchor == "start" else -3):.1f}" y="{ly}" '
                        f'text-anchor="{anchor}" fill="{colour}">{html.escape(text)}</text>'
                        if text else ""))
    parts += _legend(bottom + 44)
    parts.append("</svg>")
    return "\n".join(parts)


def timeline_text(events: list[Event], samples: list[Sample]) -> str:
    """Events as `+  1.23s  ALARM     label` lines, then one summary row per flow and vantage.

    Latency percentiles are over ok samples, as in the chart."""
    lines = [f"+{e.t:6.2f}s  {e.kind.upper():<8}  {e.label}"
             for e in sorted(events, key=lambda e: e.t)]
    rows = [("FLOW", "FROM", "SAMPLES", "FAILED", "P50 MS", "P95 MS", "MAX MS")]
    for (vantage, flow), lane in _lanes(samples).items():
        lat = sorted(s.latency_ms for s in lane if s.ok)
        rows.append((flow, vantage, str(len(lane)), str(sum(not s.ok for s in lane)),
                     *(_ms(_pct(lat, q)) for q in (0.5, 0.95, 1.0))))
    if len(rows) > 1:
        lines += ([""] if lines else []) + [text_table(rows)]
    return "\n".join(lines)


def timeline_html(title: str, svg: str, text: str, extra_html: str = "") -> str:
    """One file to attach to an incident: the chart, whatever the caller adds, the text.

    `svg` and `extra_html` go in as they are (the caller built and escaped them); `text` is
    escaped here."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#263238}}.chart{{overflow-x:auto}}
pre{{background:#f5f7f8;padding:10px;font-size:12px;overflow-x:auto}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<div class="chart">{svg}</div>
{extra_html}
<pre>{html.escape(text)}</pre>
</body></html>
"""
