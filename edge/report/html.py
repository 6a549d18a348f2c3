"""The preview as a page people would rather look at: the topology drawn, broken paths marked.

Pure rendering (data in, HTML text out), with an inline SVG so the report is one file that any
browser or CI artifact viewer shows without fetching anything.
"""

from __future__ import annotations

import html

from edge.model.lab import Lab
from edge.workflow.staged import Preview, address_names, said

NETWORK_ORDER = ["internet", "transit", "dmz", "paas"]
COLUMN_W, ROW_H, TOP, LEFT = 150, 62, 70, 40
BOX_W, BOX_H = 120, 36
BROKEN = {"outage": "#c62828", "partial-outage": "#d84315", "redundancy-lost": "#ef6c00",
          "security-regression": "#6a1b9a"}


def _layout(lab: Lab) -> tuple[dict[str, int], dict[str, tuple[float, float]]]:
    """x of each network's bus; (x, y) of each node, placed between the networks it joins."""
    names = list(lab.networks)
    order = [n for n in NETWORK_ORDER if n in names] + [n for n in names if n not in NETWORK_ORDER]
    bus_x = {net: LEFT + 20 + i * 3 * COLUMN_W for i, net in enumerate(order)}
    slots: dict[float, int] = {}
    where = {}
    for name, node in sorted(lab.nodes.items()):
        xs = [bus_x[n] for n in node.addresses if n in bus_x]
        # A node on one network hangs right of its bus; a node joining two sits between them.
        x = sum(xs) / len(xs) if len(xs) > 1 else xs[0] + COLUMN_W * 0.55
        row = slots.get(x, 0)
        slots[x] = row + 1
        where[name] = (x, TOP + 30 + row * ROW_H)
    return bus_x, where


def topology_svg(lab: Lab, broken: list[tuple[str, str, str, str]],
                 marked: frozenset[str] = frozenset()) -> str:
    """SVG of networks (vertical buses), nodes, and broken flows as coloured arrows.

    `broken` holds (vantage, target, kind, label) tuples; `marked` nodes lost something no
    flow shows (a redundant set's member, the zone's agreement) and are filled as broken."""
    bus_x, where = _layout(lab)
    height = max((y for _, y in where.values()), default=TOP) + BOX_H + 20
    width = max(bus_x.values(), default=LEFT) + COLUMN_W + LEFT
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" '
             'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="context-stroke"/></marker></defs>']
    for net, x in bus_x.items():
        subnet = lab.networks[net].subnet
        parts.append(f'<line x1="{x}" y1="{TOP}" x2="{x}" y2="{height - 20}" stroke="#90a4ae" '
                     f'stroke-width="4"/><text x="{x}" y="{TOP - 22}" text-anchor="middle" '
                     f'font-weight="bold">{html.escape(net)}</text><text x="{x}" y="{TOP - 8}" '
                     f'text-anchor="middle" fill="#607d8b">{html.escape(subnet)}</text>')
    for name, node in sorted(lab.nodes.items()):
        x, y = where[name]
        for net in node.addresses:
            if net in bus_x:
                parts.append(f'<line x1="{bus_x[net]}" y1="{y}" x2="{x}" y2="{y}" '
                             'stroke="#90a4ae" stroke-width="2"/>')
    for vantage, target, kind, label in broken:
        if vantage in where and target in where:
            (x1, y1), (x2, y2) = where[vantage], where[target]
            colour = BROKEN.get(kind, "#c62828")
            parts.append(f'<path d="M{x1},{y1} C{(x1 + x2) / 2},{y1 - 50} {(x1 + x2) / 2},'
                         f'{y2 + 50} {x2},{y2}" fill="none" stroke="{colour}" stroke-width="2.5" '
                         f'stroke-dasharray="6,4" marker-end="url(#arrow)">'
                         f'<title>{html.escape(label)}</title></path>')
    down = {t for _, t, k, _ in broken if k != "security-regression"} | marked
    for name, node in sorted(lab.nodes.items()):
        x, y = where[name]
        fill = "#ffebee" if name in down else "#e3f2fd"
        parts.append(f'<rect x="{x - BOX_W / 2}" y="{y - BOX_H / 2}" width="{BOX_W}" '
                     f'height="{BOX_H}" rx="6" fill="{fill}" stroke="#37474f"/>'
                     f'<text x="{x}" y="{y - 2}" text-anchor="middle" font-weight="bold">'
                     f'{html.escape(name)}</text><text x="{x}" y="{y + 12}" '
                     f'text-anchor="middle" fill="#546e7a">{html.escape(node.role)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _table(rows: list[tuple[str, ...]]) -> str:
    head, *body = rows
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    lines = [f"<tr>{cells}</tr>"]
    for row in body:
        lines.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return "<table>" + "".join(lines) + "</table>"


def live_config_said(p: Preview) -> str:
    """What the preview measured of the live stack's configuration. "untouched" only when it
    was digested before and after and both agree: a preview that stopped early (ERROR, or a
    failed static check) never measured it again, and one whose live stack changed meanwhile
    must say so rather than reassure."""
    if not p.live_digest:
        return "configuration not measured: the preview stopped before it started"
    if not p.live_digest_after:
        return (f"configuration digest {p.live_digest} before; not measured again, the preview "
                "stopped early")
    if p.live_digest_after != p.live_digest:
        return (f"configuration digest {p.live_digest} before, {p.live_digest_after} after: "
                "CHANGED while the preview ran")
    return f"configuration digest {p.live_digest}, untouched"


def preview_html(p: Preview) -> str:
    """The whole report: verdict, reasons, topology with broken paths, and the flow matrix."""
    broken = [(d.vantage, d.target, d.kind, d.describe()) for d in p.deltas if d.kind in BROKEN]
    marked = frozenset(f.node for f in p.invariants if f.node)
    colour = {"SAFE": "#2e7d32", "UNSAFE": "#c62828"}.get(p.verdict, "#6d4c41")
    before = {r.flow.name: r for r in p.baseline}
    names = address_names(p.topology)
    matrix = [("flow", "from", "must", "before", "after", "verdict")]
    for r in p.after:
        was = before.get(r.flow.name)
        matrix.append((r.flow.name, r.flow.vantage, r.flow.must,
                       said(was, names) if was else "-", said(r, names),
                       "ok" if r.ok else r.reason))
    reasons = "".join(f"<li>{html.escape(x)}</li>" for x in p.reasons) or "<li>no flow broke</li>"
    held = ("<p>" + ("; ".join(html.escape(f.reason) for f in p.invariants)
                     or "no member of a redundant set the roles declare was lost, and the name "
                     "servers agree") + "</p>") if p.after else ""
    legend = " ".join(f'<span style="color:{c}">&#9632; {k}</span>' for k, c in BROKEN.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>edge preview {p.change.digest}: {p.verdict}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#263238}}
table{{border-collapse:collapse}}td,th{{border:1px solid #cfd8dc;padding:3px 8px;font-size:13px}}
th{{background:#eceff1}}.verdict{{color:#fff;background:{colour};padding:4px 10px}}</style>
</head><body>
<h1><span class="verdict">{p.verdict}</span> {html.escape(p.change.description)}</h1>
<p>change {p.change.digest} from {html.escape(str(p.change.path))}; live stack
<b>{html.escape(p.live)}</b> ({html.escape(live_config_said(p))}), staged on
<b>{html.escape(p.staging)}</b>; {", ".join(f"{k} {v:.1f}s" for k, v in p.seconds.items())}</p>
<ul>{reasons}</ul>
<h2>Topology and broken paths</h2><p>{legend}</p>
{topology_svg(p.topology, broken, marked) if p.topology
   else "<p>(the preview stopped before staging)</p>"}
<h2>Besides the flows: redundancy and agreement the roles declare</h2>
{held}
<h2>Contract flows, before and after the change</h2>
{_table(matrix)}
</body></html>
"""
