"""The preview's HTML page as a reviewer sees it: in a browser 1400 px wide, read in ten seconds.

Why: the page once cut the topology off on the right (the paas network out of view), drew broken
paths as curves through unrelated node boxes, and tabled a flow that went from 200 to 503 as
"answered -> answered". The page is rendered here by headless Chromium (Debian's `chromium`,
which setup installs from scripts/host-packages), a script added to the page writes what the
browser laid out (bounding boxes, classes, colours) into the DOM, and the dumped DOM is checked:
the picture fits the window, every broken flow is drawn and marked in the table with its
status, and the verdict's reasons come first. The geometry of the paths (along the links, never
through a box) is checked on the SVG itself, without a browser.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from edge.model.contract import expand, load_contract
from edge.report.html import BrokenFlow, flow_path, preview_html, topology_svg
from tests.report.previews import BROKEN, ROOT, broken_preview, reference_lab

WIDTH, HEIGHT = 1400, 900
SVG = "{http://www.w3.org/2000/svg}"
# Written into the page before </body>: what the browser laid out, as JSON in <pre id=measured>.
MEASURE = """<script>
(function () {
  const box = e => { const r = e.getBoundingClientRect();
                     return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const svg = document.getElementById('topology');
  const all = (root, sel) => Array.from(root.querySelectorAll(sel));
  const out = {
    viewport: window.innerWidth, client: document.documentElement.clientWidth,
    scroll: document.documentElement.scrollWidth, svg: box(svg),
    buses: Object.fromEntries(all(svg, '.bus').map(e => [e.dataset.network, box(e)])),
    nodes: Object.fromEntries(all(svg, '.node').map(e => [e.dataset.node, box(e)])),
    paths: all(svg, 'path.flow').map(e => ({flow: e.dataset.flow, cls: e.getAttribute('class'),
                                           stroke: getComputedStyle(e).stroke, box: box(e)})),
    dies: all(svg, 'text.dies').map(e => e.dataset.flow),
    rows: all(document, 'table tr').slice(1).map(tr => ({
      cls: tr.className, cells: Array.from(tr.cells).map(c => c.textContent),
      changed: Array.from(tr.cells).map(c => c.classList.contains('changed')),
      mark: getComputedStyle(tr.cells[0]).borderLeftColor})),
    reasons: box(document.querySelector('ul.reasons')),
  };
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def laid_out(page: str, tmp_path: Path) -> dict:
    """What headless Chromium lays out of `page` in a WIDTH x HEIGHT window."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: run `make setup` (scripts/host-packages lists it)"
    file = tmp_path / "index.html"
    file.write_text(page.replace("</body>", MEASURE + "\n</body>"))
    # Its own profile, so runs side by side (test lanes) never share one.
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp_path / 'profile'}",
                           f"--window-size={WIDTH},{HEIGHT}", "--dump-dom", file.as_uri()],
                          capture_output=True, text=True, timeout=300)
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.S)
    assert found, f"chromium laid out nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return laid_out(preview_html(broken_preview()), tmp_path_factory.mktemp("report"))


def test_the_picture_fits_a_1400_px_window(page: dict) -> None:
    assert page["viewport"] == WIDTH
    assert page["scroll"] <= page["client"], "the page scrolls sideways"
    assert 0 <= page["svg"]["left"] and page["svg"]["right"] <= page["client"]
    assert set(page["buses"]) == {"internet", "transit", "dmz", "paas"}
    for name, box in {**page["buses"], **page["nodes"]}.items():
        assert page["svg"]["left"] <= box["left"] and box["right"] <= page["svg"]["right"], name


def test_every_broken_flow_is_drawn_and_marked_in_its_colour(page: dict) -> None:
    drawn = {p["flow"]: p for p in page["paths"]}
    assert set(drawn) == set(BROKEN)
    for flow, path in drawn.items():
        assert path["box"]["right"] > path["box"]["left"], f"{flow}: drawn empty"
        assert page["svg"]["left"] <= path["box"]["left"] <= path["box"]["right"] \
            <= page["svg"]["right"], f"{flow}: drawn outside the picture"
    assert page["dies"] == ["dns-api-at-nameserver@ns1"]   # its `where` names the firewall
    rows = {r["cells"][0]: r for r in page["rows"]}
    for flow, row in rows.items():
        assert ("broken" in row["cls"].split()) == (flow in BROKEN), flow
    for flow in BROKEN:
        assert rows[flow]["mark"] == drawn[flow]["stroke"], flow   # table and picture agree
        assert drawn[flow]["cls"].split()[-1] in rows[flow]["cls"].split()


def test_the_table_says_the_status_that_changed(page: dict) -> None:
    row = {r["cells"][0]: r for r in page["rows"]}["http-api-at-lb@lb2"]
    assert row["cells"][3:5] == ["answers 200", "answers 503 (no healthy backend)"]
    assert row["changed"][4] and not row["changed"][3]
    assert row["cells"][5].startswith("PARTIAL OUTAGE")
    assert not any("answered" in c for r in page["rows"] for c in r["cells"][3:5])


def test_the_reasons_lead_the_page(page: dict) -> None:
    assert page["reasons"]["bottom"] <= page["svg"]["top"]
    assert page["reasons"]["bottom"] <= HEIGHT, "the reasons are below the first screen"


# --- the paths' geometry, on the SVG alone -------------------------------------------------------

def _legs(d: str) -> list[list[tuple[float, float]]]:
    """The points of each subpath of path data written as `M x,y H x V y H x`."""
    legs = []
    for leg in re.findall(r"M[^M]+", d):
        x, y = map(float, re.match(r"M([-\d.]+),([-\d.]+)", leg).groups())
        points = [(x, y)]
        for op, value in re.findall(r"([HV])([-\d.]+)", leg):
            x, y = (float(value), y) if op == "H" else (x, float(value))
            points.append((x, y))
        legs.append(points)
    return legs


def _crosses(a: tuple[float, float], b: tuple[float, float], box: tuple[float, ...]) -> bool:
    """Whether the axis-parallel segment a-b runs through the inside of box (x, y, w, h)."""
    x, y, w, h = box
    (x1, x2), (y1, y2) = sorted((a[0], b[0])), sorted((a[1], b[1]))
    if y1 == y2:
        return y < y1 < y + h and min(x2, x + w) - max(x1, x) > 0.5
    return x < x1 < x + w and min(y2, y + h) - max(y1, y) > 0.5


def test_the_crossing_check_sees_a_line_through_a_box() -> None:
    box = (100.0, 100.0, 110.0, 36.0)
    assert _crosses((50, 110), (300, 110), box) and _crosses((150, 0), (150, 500), box)
    assert not _crosses((50, 110), (100, 110), box)        # ends on the box's edge
    assert not _crosses((50, 90), (300, 90), box) and not _crosses((95, 0), (95, 500), box)


def test_broken_paths_run_along_the_links_and_through_no_box() -> None:
    """Every flow of the contract, drawn as if broken: each hop leaves a node's box along its
    link, runs along the bus of the network both nodes share, and enters the next node's box;
    no segment runs through the inside of any box."""
    lab = reference_lab()
    flows = expand(load_contract(ROOT / "contract.yaml"), lab)
    address = {f.name: f.params.get("address") or f.params.get("server") for f in flows}
    broken = [BrokenFlow(f.name, f.vantage, f.target, "outage", f.name, address[f.name])
              for f in flows]
    svg = ET.fromstring(topology_svg(lab, broken))
    bus = {e.get("data-network"): float(e.get("x1")) for e in svg.iter(f"{SVG}line")
           if e.get("data-network")}
    boxes = {g.get("data-node"): tuple(float(g.find(f"{SVG}rect").get(k))
                                       for k in ("x", "y", "width", "height"))
             for g in svg.iter(f"{SVG}g")}
    paths = {p.get("data-flow"): p.get("d") for p in svg.iter(f"{SVG}path") if p.get("data-flow")}
    assert set(paths) == {f.name for f in flows}
    for b in broken:
        hops = flow_path(lab, b.vantage, b.target, b.address)
        assert hops[0][0] == b.vantage and hops[-1][0] == b.target, b.flow
        legs = _legs(paths[b.flow])
        assert len(legs) == len(hops) - 1, b.flow
        for leg, (_, network) in zip(legs, hops[1:]):
            assert abs(leg[1][0] - bus[network]) <= 6, f"{b.flow}: off the {network} bus"
            for a, z in zip(leg, leg[1:]):
                through = [n for n, box in boxes.items() if _crosses(a, z, box)]
                assert not through, f"{b.flow}: {a}-{z} runs through {through}"


def test_a_flow_takes_the_way_the_static_routes_name() -> None:
    """border and border2 both join the internet and transit; the client routes via border."""
    hops = flow_path(reference_lab(), "client", "lb2", "198.18.18.11")
    assert hops == [("client", ""), ("border", "internet"), ("firewall", "transit"),
                    ("lb2", "dmz")]
