"""The preview as a page people would rather look at: the topology drawn, broken paths marked.

Pure rendering (data in, HTML text out), with an inline SVG so the report is one file that any
browser or CI artifact viewer shows without fetching anything. A reviewer reads it in ten
seconds: the verdict's reasons first, then the picture (scaled to the page's width, so no
network is cut off), with each broken flow drawn along the links its packets take (node ->
network -> node, never straight through unrelated boxes), then the table, whose before/after
cells say what the flow answered ("answers 200" -> "answers 503 (no healthy backend)").
"""

from __future__ import annotations

import html
import ipaddress
import math
import re
from collections import deque
from dataclasses import dataclass

from edge.lab.paths import topology_routes
from edge.model.lab import Lab
from edge.workflow.staged import HEADS, Preview, address_names, said

NETWORK_ORDER = ["internet", "transit", "dmz", "paas"]
# Buses GAP apart; a node on one network hangs HANG right of its bus, a node joining two sits
# halfway between them. Each gap between two buses has rows of its own, so no link line (a node's
# stub to its bus) ever runs through another node's box.
GAP, HANG, ROW_H, TOP, LEFT = 380, 16, 54, 52, 40
BOX_W, BOX_H = 110, 36
BROKEN = {"outage": "#c62828", "partial-outage": "#d84315", "redundancy-lost": "#ef6c00",
          "security-regression": "#6a1b9a"}


@dataclass(frozen=True)
class BrokenFlow:
    """A flow to draw: who probes, the node it is about, its class, and what the lab said."""

    flow: str
    vantage: str
    target: str
    kind: str
    label: str
    address: str = ""    # the address the flow probes, to end the path on its network
    where: str = ""      # where it dies, in words ("dropped by the default deny of firewall")


def _layout(lab: Lab) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """x of each network's bus; (x, y) of each node's centre."""
    names = list(lab.networks)
    order = [n for n in NETWORK_ORDER if n in names] + [n for n in names if n not in NETWORK_ORDER]
    bus_x = {net: float(LEFT + 20 + i * GAP) for i, net in enumerate(order)}
    placed: list[tuple[int, bool, str, float]] = []      # (gap, hangs, name, x)
    for name, node in lab.nodes.items():
        columns = sorted(order.index(n) for n in node.addresses if n in bus_x)
        if not columns:
            continue
        hangs = len(columns) == 1
        x = (bus_x[order[columns[0]]] + HANG + BOX_W / 2 if hangs
             else (bus_x[order[columns[0]]] + bus_x[order[columns[-1]]]) / 2)
        placed.append((columns[0], hangs, name, x))
    rows: dict[int, int] = {}
    where = {}
    for gap, _, name, x in sorted(placed):    # per gap: the routers first, then the rest by name
        row = rows.get(gap, 0)
        rows[gap] = row + 1
        where[name] = (x, float(TOP + 30 + row * ROW_H))
    return bus_x, where


def _gateways(routes: list[tuple[str, str]], address: str, names: dict[str, str]) -> set[str]:
    """The nodes a node's static routes (prefix, gateway) send `address` through."""
    found = set()
    for prefix, gateway in routes:
        try:
            if address and ipaddress.ip_address(address) in ipaddress.ip_network(prefix, False):
                found.add(names.get(gateway, ""))
        except ValueError:
            continue
    return found


def flow_path(lab: Lab, vantage: str, target: str, address: str = "") -> list[tuple[str, str]]:
    """The hops a flow's packets take, as (node, network it was reached on): the vantage first
    (network ""), the target last (on the network of `address`, when two ways are as short).

    Shortest along the topology's links, through nodes on two networks or more only (a node on
    one network passes nothing on); among equally short ways, the one the nodes' static routes
    name (the client routes through `border`, not `border2`). [] when no way joins them."""
    if vantage not in lab.nodes or target not in lab.nodes:
        return []
    goal = lab.nodes[target]
    goal_nets = [n for n, a in goal.addresses.items() if a == address] or sorted(goal.addresses)
    goal_address = goal.addresses.get(goal_nets[0], "") if goal_nets else ""
    names, routes = address_names(lab), topology_routes(lab)
    on: dict[str, list[str]] = {}
    for node in lab.nodes.values():
        for net in node.addresses:
            on.setdefault(net, []).append(node.name)
    came: dict[str, tuple[str, str]] = {vantage: ("", "")}
    queue = deque([vantage])
    while queue and target not in came:
        here = queue.popleft()
        node = lab.nodes[here]
        if here != vantage and len(node.addresses) < 2:
            continue
        preferred = _gateways(routes.get(here, []), goal_address, names)
        steps = sorted(((other, net) for net in node.addresses for other in on[net]
                        if other not in came),
                       key=lambda s: (s[0] != target, s[1] not in goal_nets,
                                      s[0] not in preferred, s[0], s[1]))
        for other, net in steps:
            if other not in came:
                came[other] = (here, net)
                queue.append(other)
    if target not in came:
        return []
    hops, here = [], target
    while here != vantage:
        previous, net = came[here]
        hops.append((here, net))
        here = previous
    return [(vantage, ""), *reversed(hops)]


def _path_d(hops: list[tuple[str, str]], bus_x: dict[str, float],
            where: dict[str, tuple[float, float]], offset: float) -> str:
    """SVG path data: from box edge along the node's link to its bus, along the bus, and into the
    next node's box edge, for each hop (one subpath per hop, so no line crosses a box)."""
    legs = []
    for (a, _), (b, net) in zip(hops, hops[1:]):
        (xa, ya), (xb, yb) = where[a], where[b]
        bus = bus_x[net] + offset
        start = xa + math.copysign(BOX_W / 2, bus - xa)
        end = xb + math.copysign(BOX_W / 2, bus - xb)
        legs.append(f"M{start:g},{ya + offset:g} H{bus:g} V{yb + offset:g} H{end:g}")
    return " ".join(legs)


def _dies_at(hops: list[tuple[str, str]], where_text: str) -> str:
    """The node of the path that `where_text` names ("" when it names none)."""
    for node, _ in hops:
        if re.search(rf"(?<![\w-]){re.escape(node)}(?![\w-])", where_text):
            return node
    return ""


def topology_svg(lab: Lab, broken: list[BrokenFlow], marked: frozenset[str] = frozenset()) -> str:
    """SVG of networks (vertical buses), nodes, and broken flows drawn along their links.

    `marked` nodes lost something no flow shows (a redundant set's member, the zone's
    agreement) and are filled as broken. The SVG scales to its container's width (viewBox, width
    100%), so a page narrower than the picture shows all of it."""
    bus_x, where = _layout(lab)
    height = max((y for _, y in where.values()), default=TOP) + BOX_H + 20
    width = max([x + BOX_W / 2 for x, _ in where.values()] + list(bus_x.values())) + LEFT
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="topology" viewBox="0 0 {width:g} '
             f'{height:g}" width="100%" style="max-width:{width:g}px;height:auto" '
             'font-family="sans-serif" font-size="12">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" '
             'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="context-stroke"/></marker></defs>']
    for net, x in bus_x.items():
        subnet = lab.networks[net].subnet
        parts.append(f'<line class="bus" data-network="{html.escape(net)}" x1="{x:g}" '
                     f'y1="{TOP}" x2="{x:g}" y2="{height - 20:g}" stroke="#90a4ae" '
                     f'stroke-width="4"/><text x="{x:g}" y="{TOP - 22}" text-anchor="middle" '
                     f'font-weight="bold">{html.escape(net)}</text><text x="{x:g}" '
                     f'y="{TOP - 8}" text-anchor="middle" fill="#607d8b">'
                     f'{html.escape(subnet)}</text>')
    for name, node in sorted(lab.nodes.items()):
        if name not in where:
            continue
        x, y = where[name]
        for net in node.addresses:
            if net in bus_x:
                parts.append(f'<line x1="{bus_x[net]:g}" y1="{y:g}" x2="{x:g}" y2="{y:g}" '
                             'stroke="#90a4ae" stroke-width="2"/>')
    down = {b.target for b in broken if b.kind != "security-regression"} | marked
    # A target's box takes its first broken flow's colour: marked even where no path is drawn.
    edge = {b.target: BROKEN.get(b.kind, "#c62828") for b in reversed(broken)}
    for name, node in sorted(lab.nodes.items()):
        if name not in where:
            continue
        x, y = where[name]
        fill = "#ffebee" if name in down else "#e3f2fd"
        parts.append(f'<g class="node" data-node="{html.escape(name)}"><rect x="{x - BOX_W / 2:g}" '
                     f'y="{y - BOX_H / 2:g}" width="{BOX_W}" height="{BOX_H}" rx="6" '
                     f'fill="{fill}" stroke="{edge.get(name, "#37474f")}"/>'
                     f'<text x="{x:g}" y="{y - 2:g}" '
                     f'text-anchor="middle" font-weight="bold">{html.escape(name)}</text>'
                     f'<text x="{x:g}" y="{y + 12:g}" text-anchor="middle" fill="#546e7a">'
                     f'{html.escape(node.role)}</text></g>')
    for k, b in enumerate(broken):
        hops = flow_path(lab, b.vantage, b.target, b.address)
        if not hops or any(node not in where for node, _ in hops):
            continue
        colour = BROKEN.get(b.kind, "#c62828")
        parts.append(f'<path class="flow broken {b.kind}" data-flow="{html.escape(b.flow)}" '
                     f'd="{_path_d(hops, bus_x, where, (k % 5 - 2) * 3)}" fill="none" '
                     f'stroke="{colour}" stroke-width="2.5" stroke-dasharray="6,4" '
                     f'marker-end="url(#arrow)"><title>{html.escape(b.label)}</title></path>')
        if dies := _dies_at(hops, b.where):
            x, y = where[dies]
            parts.append(f'<text class="dies" data-flow="{html.escape(b.flow)}" '
                         f'x="{x + BOX_W / 2 - 4:g}" y="{y - BOX_H / 2 + 4:g}" font-size="18" '
                         f'font-weight="bold" fill="{colour}" text-anchor="middle">&#10005;'
                         f'<title>{html.escape(b.flow)}: {html.escape(b.where)}</title></text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _table(rows: list[tuple[str, ...]], marks: list[str]) -> str:
    """The flow table; `marks` holds each body row's class ("" for a flow that kept working),
    and an after cell that differs from its before cell is marked as changed."""
    head, *body = rows
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    lines = [f"<tr>{cells}</tr>"]
    was, now = head.index("before"), head.index("after")
    for row, mark in zip(body, marks):
        tds = [('<td class="changed">' if i == now and cell != row[was] else "<td>")
               + f"{html.escape(cell)}</td>" for i, cell in enumerate(row)]
        lines.append((f'<tr class="{mark}">' if mark else "<tr>") + "".join(tds) + "</tr>")
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
    """The whole report: verdict and its reasons first, then the topology with broken paths,
    what the roles declare besides the flows, and the flow matrix."""
    params = {r.flow.name: r.flow.params for r in [*p.baseline, *p.after]}
    broken = [BrokenFlow(d.flow, d.vantage, d.target, d.kind, d.describe(),
                         str(params.get(d.flow, {}).get("address")
                             or params.get(d.flow, {}).get("server") or ""), d.where)
              for d in p.deltas if d.kind in BROKEN]
    kinds = {b.flow: b.kind for b in broken}
    marked = frozenset(f.node for f in p.invariants if f.node)
    colour = {"SAFE": "#2e7d32", "UNSAFE": "#c62828"}.get(p.verdict, "#6d4c41")
    before = {r.flow.name: r for r in p.baseline}
    names = address_names(p.topology)
    matrix = [("flow", "from", "must", "before", "after", "verdict")]
    for r in p.after:
        was = before.get(r.flow.name)
        verdict = "ok" if r.ok else r.reason
        if r.flow.name in kinds:
            verdict = f"{HEADS[kinds[r.flow.name]]}: {verdict}"
        matrix.append((r.flow.name, r.flow.vantage, r.flow.must,
                       said(was, names) if was else "-", said(r, names), verdict))
    marks = [f"broken {kinds[r.flow.name]}" if r.flow.name in kinds else "" for r in p.after]
    reasons = "".join(f"<li>{html.escape(x)}</li>" for x in p.reasons) or "<li>no flow broke</li>"
    reasons += "".join(f"<li>note: {html.escape(x)}</li>" for x in p.notes)
    reasons += f"<li>{html.escape(p.watched())}</li>" if p.watched() else ""
    held = ("<p>" + ("; ".join(html.escape(f.reason) for f in p.invariants)
                     or "no member of a redundant set the roles declare was lost, and the name "
                     "servers agree") + "</p>") if p.after else ""
    legend = " ".join(f'<span style="color:{c}">&#9632; {k}</span>' for k, c in BROKEN.items())
    rows_css = "".join(f"tr.{k} td:first-child{{border-left:6px solid {c}}}"
                       f"tr.{k} td:last-child{{color:{c};font-weight:bold}}"
                       for k, c in BROKEN.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>edge preview {p.change.digest}: {p.verdict}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#263238}}
table{{border-collapse:collapse}}td,th{{border:1px solid #cfd8dc;padding:3px 8px;font-size:13px}}
th{{background:#eceff1}}.verdict{{color:#fff;background:{colour};padding:4px 10px}}
ul.reasons{{font-size:15px;line-height:1.5}}svg{{display:block}}
td.changed{{background:#fff3e0;font-weight:bold}}{rows_css}</style>
</head><body>
<h1><span class="verdict">{p.verdict}</span> {html.escape(p.change.description)}</h1>
<ul class="reasons">{reasons}</ul>
<p>change {p.change.digest} from {html.escape(str(p.change.path))}; live stack
<b>{html.escape(p.live)}</b> ({html.escape(live_config_said(p))}), staged on
<b>{html.escape(p.staging)}</b>; {", ".join(f"{k} {v:.1f}s" for k, v in p.seconds.items())}</p>
<h2>Topology and broken paths</h2><p>{legend} <span>&#10005; where it dies</span></p>
{topology_svg(p.topology, broken, marked) if p.topology
   else "<p>(the preview stopped before staging)</p>"}
<h2>Besides the flows: redundancy and agreement the roles declare</h2>
{held}
<h2>Contract flows, before and after the change</h2>
{_table(matrix, marks)}
</body></html>
"""
