"""An incident replay's report: index.html (the timeline picture and text) and replay.json."""

from __future__ import annotations

import html
import json
from pathlib import Path

from edge.lab.watch import ALARM_KINDS
from edge.report.timeline import timeline_html, timeline_svg, timeline_text
from edge.workflow.replay import ReplayResult


def replay_json(result: ReplayResult) -> dict:
    """A replay's figures and timeline as plain data."""
    incident = result.incident
    return {
        "incident": incident.name, "description": incident.description,
        "expected": {"class": incident.expect_class, "service": incident.expect_service,
                     "within_s": incident.within_s, "quiet": list(incident.quiet)},
        "ok": result.ok, "problems": result.problems, "detected": result.detected,
        "detect_s": result.detect_s, "drift": result.drift, "drift_s": result.drift_s,
        "recover_s": result.recover_s,
        "green_after": result.green_after,
        "events": [e.to_json() for e in result.events],
        "alarm_events": sum(e.kind in ALARM_KINDS for e in result.events),
        "samples": len(result.samples),
        "failed_samples": sum(not s.ok for s in result.samples),
    }


def write_report(result: ReplayResult, out: Path) -> list[Path]:
    """index.html (the timeline picture and text) and replay.json in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    title = f"replay {result.incident.name}: {'PASS' if result.ok else 'FAIL'}"
    text = timeline_text(result.events, result.samples)
    incident = result.incident
    summary = (f"<p>{html.escape(incident.description)}</p><p>expected "
               f"{html.escape(incident.expect_class)} ({html.escape(incident.expect_service)})"
               f" within {incident.within_s:g}s; detected: "
               f"{html.escape(result.detected or 'nothing')} in {_seconds(result.detect_s)}; "
               f"recovered in {_seconds(result.recover_s)}</p>"
               + "".join(f"<p><b>{html.escape(p)}</b></p>" for p in result.problems))
    files = [out / "index.html", out / "replay.json"]
    files[0].write_text(timeline_html(title, timeline_svg(result.samples, result.events, title),
                                      text, summary))
    files[1].write_text(json.dumps(replay_json(result), indent=2) + "\n")
    return files


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"
