"""The incident timeline: lanes, markers, binning, escaping, time to detect, terminal lines,
alarm events as data."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from edge.lab.events import Alarm, Event, Sample, detect_time
from edge.report.timeline import FAILED, LABEL_W, PLOT_W, timeline_html, timeline_svg, timeline_text

SVG = "{http://www.w3.org/2000/svg}"


def ok(flow: str, t: float, vantage: str = "client", latency: float = 5.0) -> Sample:
    return Sample(flow, vantage, t, True, "answered", latency)


def failed(flow: str, t: float, vantage: str = "client") -> Sample:
    return Sample(flow, vantage, t, False, "timeout", 2000.0)


def fabricated_session() -> tuple[list[Sample], list[Event]]:
    """30 flows (20 outside, 10 inside) probed 100 times over 300 s; the 12 flows through the
    load balancers fail from the fault at 100 s until shortly after the restore at 200 s."""
    flows = [(f"{kind}-{i:02d}@lb{i % 2 + 1}" if i < 12 else f"{kind}-{i:02d}@ns{i % 3}", vantage)
             for i, (kind, vantage) in enumerate(
                 [("http-app-at-lb", "client")] * 20 + [("dns-api-via-resolver", "inside")] * 10)]
    samples = []
    for n in range(100):
        for i, (flow, vantage) in enumerate(flows):
            t = n * 3 + i * 0.09
            down = i < 12 and 100 <= t < 206
            samples.append(failed(flow, t, vantage) if down
                           else ok(flow, t, vantage, 4 + (i % 5) * 3 + (n % 7)))
    events = [Event(2, "baseline", "baseline: 30 flows green"),
              Event(100, "fault", "inject: stop lb1, lb2"),
              Event(104.5, "alarm", "EXTERNAL OUTAGE: http-app-at-lb, dns-api-via-resolver"),
              Event(200, "restore", "restore: start lb1, lb2"),
              Event(207, "clear", "outage cleared"), Event(212, "green", "all 30 flows green")]
    return samples, events


def test_lanes_grouped_by_vantage_outside_first_then_by_name() -> None:
    samples = [ok("zeta@lb1", 1), ok("dns@ns1", 2, "inside"), ok("alpha@lb2", 3)]
    root = ET.fromstring(timeline_svg(samples, [], "t"))
    lanes = [t.text for t in root.iter(SVG + "text") if t.get("class") == "lane"]
    assert lanes == ["alpha@lb2", "zeta@lb1", "dns@ns1"]
    headings = [t.text for t in root.iter(SVG + "text") if t.get("font-weight") == "bold"]
    assert headings == ["t", "from client (outside)", "from inside"]


def test_event_markers_in_time_order_with_their_styles() -> None:
    events = [Event(40, "restore", "restore: start lb1"), Event(10, "fault", "inject: stop lb1"),
              Event(12, "alarm", "EXTERNAL OUTAGE: http")]
    svg = timeline_svg([ok("http@lb1", t) for t in range(50)], events, "t")
    lines = [e for e in ET.fromstring(svg).iter(SVG + "line") if e.get("class") == "event"]
    kinds = [e.find(SVG + "title").text.split()[1] for e in lines]
    assert kinds == ["fault:", "alarm:", "restore:"]
    xs = [float(e.get("x1")) for e in lines]
    assert xs == sorted(xs) and abs(xs[0] - (LABEL_W + 10 / 49 * PLOT_W)) < 0.1
    assert [(e.get("stroke"), e.get("stroke-dasharray")) for e in lines] == [
        ("#c62828", "6,4"), ("#e69f00", None), ("#2e7d32", "6,4")]
    assert svg.index(">inject: stop lb1<") < svg.index(">EXTERNAL OUTAGE: http<")


def failed_marks(svg: str) -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(SVG + "rect") if r.get("class") == "failed"]


def test_binning_keeps_one_failure_among_thousands_visible_and_stays_small() -> None:
    samples = [ok("http@lb1", n / 10) for n in range(3000)] + [failed("http@lb1", 150.03)]
    svg = timeline_svg(samples, [], "t")
    (mark,) = failed_marks(svg)
    assert mark.get("fill") == FAILED
    assert abs(float(mark.get("x")) - (LABEL_W + 150.03 / 299.9 * PLOT_W)) <= 2
    assert float(mark.get("height")) > 10 and svg.count("<rect") < 20   # ok columns merge into runs


def test_fabricated_session_fails_only_inside_the_outage_window() -> None:
    samples, events = fabricated_session()
    svg = timeline_svg(samples, events, "lb outage")
    root = ET.fromstring(svg)
    assert sum(t.get("class") == "lane" for t in root.iter(SVG + "text")) == 30
    xs = [float(r.get("x")) for r in failed_marks(svg)]
    assert len(xs) == 12   # one unbroken band per broken flow
    assert all(LABEL_W + 99 / 300 * PLOT_W < x < LABEL_W + PLOT_W / 2 for x in xs)
    assert len(svg) < 100_000


def test_every_text_is_escaped() -> None:
    nasty = "<script>alert(1)</script> & \"q\""
    svg = timeline_svg([failed(nasty, 1, vantage=nasty)], [Event(0, nasty, nasty)], nasty)
    ET.fromstring(svg)   # still well-formed XML
    page = timeline_html(nasty, svg, timeline_text([Event(0, "fault", nasty)], []))
    assert "<script>" not in svg and "<script>" not in page
    assert "&lt;script&gt;" in svg and "&lt;script&gt;" in page


def test_detect_time() -> None:
    events = [Event(3, "alarm", "flap before the fault"), Event(5, "fault", "inject"),
              Event(9, "alarm", "late"), Event(7.5, "alarm", "outage"),
              Event(20, "restore", "start"), Event(23, "clear", "cleared")]
    assert detect_time(events) == 2.5
    assert detect_time(events, "restore", "clear") == 3
    assert detect_time(events, "restore", "green") is None
    assert detect_time([e for e in events if e.kind != "alarm"]) is None
    assert detect_time([]) is None


def test_text_lists_events_in_time_order_then_a_row_per_flow() -> None:
    events = [Event(12.5, "restore", "restore: start lb1"),
              Event(1.234, "alarm", "EXTERNAL OUTAGE: http-app-at-lb")]
    samples = ([ok("http@lb1", n, latency=n + 1) for n in range(100)]
               + [failed("http@lb1", 100), failed("http@lb1", 101), failed("dns@ns1", 1, "inside")])
    lines = timeline_text(events, samples).splitlines()
    assert lines[:3] == ["+  1.23s  ALARM     EXTERNAL OUTAGE: http-app-at-lb",
                         "+ 12.50s  RESTORE   restore: start lb1", ""]
    assert [line.split() for line in lines[3:]] == [
        ["FLOW", "FROM", "SAMPLES", "FAILED", "P50", "MS", "P95", "MS", "MAX", "MS"],
        ["http@lb1", "client", "102", "2", "50", "95", "100"],
        ["dns@ns1", "inside", "1", "1", "-", "-", "-"]]
    assert timeline_text([], []) == ""


def test_an_alarm_event_is_data_and_its_label_is_built_from_it() -> None:
    outage = Alarm("EXTERNAL OUTAGE", "apps", ("http-app-at-lb@lb1", "http-app-at-lb@lb2"))
    raised = Event(4.5, "alarm", alarm=outage, was="DEGRADED")
    assert raised.label == ("EXTERNAL OUTAGE (apps): http-app-at-lb@lb1, http-app-at-lb@lb2 "
                            "(was DEGRADED)")
    assert Event(9.0, "clear", alarm=outage).label == "EXTERNAL OUTAGE (apps) cleared"
    assert raised.to_json() == {"t": 4.5, "kind": "alarm", "label": raised.label,
                                "class": "EXTERNAL OUTAGE", "service": "apps",
                                "flows": ["http-app-at-lb@lb1", "http-app-at-lb@lb2"],
                                "was": "DEGRADED"}
    marker = Event(1.0, "fault", "inject: stop lb1")
    assert marker.label == "inject: stop lb1" and marker.alarm is None
    assert marker.to_json() == {"t": 1.0, "kind": "fault", "label": "inject: stop lb1"}
    assert timeline_text([raised], []).startswith("+  4.50s  ALARM     EXTERNAL OUTAGE (apps)")


def test_a_recovering_event_names_the_alarm_it_is_about() -> None:
    outage = Alarm("EXTERNAL OUTAGE", "apps", ("http-app-at-lb@lb1",))
    recovering = Event(6.4, "recovering", alarm=outage)
    assert recovering.label == "EXTERNAL OUTAGE (apps) recovering"
    assert recovering.to_json() == {"t": 6.4, "kind": "recovering", "label": recovering.label,
                                    "class": "EXTERNAL OUTAGE", "service": "apps",
                                    "flows": ["http-app-at-lb@lb1"], "was": ""}
    svg = timeline_svg([ok("http-app-at-lb@lb1", t) for t in range(10)], [recovering], "t")
    assert "+6.40s recovering: EXTERNAL OUTAGE (apps) recovering" in svg
