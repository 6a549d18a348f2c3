"""A preview's verdict for people (terminal table) and for machines (JSON, JUnit XML for CI)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from xml.etree import ElementTree as ET

from edge.report.html import preview_html
from edge.report.table import text_table
from edge.workflow.staged import BROKE, HEADS, FlowDelta, Preview, accepted


def _cells(d: FlowDelta) -> tuple[str, str, str]:
    """A delta's before and after in words, and the share of the entry's addresses it
    affects (for breakage only)."""
    return d.was or d.before, d.now or d.after, d.share if d.kind in BROKE else ""


def preview_table(p: Preview) -> str:
    """The verdict, its reasons, and every flow whose result changed."""
    lines = [f"{p.verdict}: {p.change.description} (change {p.change.digest}, "
             f"live '{p.live}', staged on '{p.staging}')"]
    lines += [f"  - {reason}" for reason in p.reasons]
    lines += [f"  - note: {note}" for note in p.notes]
    if p.watched():
        lines.append(p.watched())
    if p.infra_steps:
        lines.append("pulumi preview on the live stack: " + ", ".join(p.infra_steps))
    if p.scope is not None:
        lines.append("checked the hosts whose roles the change touches: "
                     + (", ".join(p.scope) or "none (it changes no role's variables)"))
    if p.static_diffs:
        lines.append("would change on the live stack: " + ", ".join(
            f"{host} ({n})" for host, n in sorted(p.static_diffs.items())))
    if p.deltas:
        rows = [("FLOW", "FROM", "MUST", "CHANGE", "BEFORE", "AFTER", "AFFECTS",
                 "WHERE IT DIES")]
        rows += [(d.flow, d.vantage, d.must, d.kind, *_cells(d), d.where) for d in p.deltas]
        lines.append(text_table(rows))
    elif p.after:
        lines.append(f"no flow changed ({len(p.after)} contract flows measured before and after)")
    if p.after and not p.invariants:
        lines.append("besides the flows: no member of a redundant set the roles declare was "
                     "lost, and the name servers agree")
    lines += [f"not compared (unreadable on '{p.staging}' before the change): {note}"
              for note in p.unread]
    lines.append("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in p.seconds.items()))
    return "\n".join(lines)


def preview_json(p: Preview) -> dict:
    """Everything the preview found, as plain data."""
    def result(r) -> dict:
        return {"flow": r.flow.name, "vantage": r.flow.vantage, "must": r.flow.must,
                "outcome": r.outcome, "ok": r.ok, "reason": r.reason,
                "latency_ms": r.latency_ms, "detail": r.detail}
    return {
        "verdict": p.verdict, "reasons": p.reasons, "exit_code": p.exit_code,
        "change": {"path": str(p.change.path), "description": p.change.description,
                   "digest": p.change.digest, "vars": p.change.vars, "stop": list(p.change.stop),
                   "tree": p.change.tree},
        "live": p.live, "live_revision": p.live_revision, "live_digest": p.live_digest,
        "live_digest_after": p.live_digest_after,
        "staging": p.staging, "infra_steps": p.infra_steps, "scope": p.scope,
        "policy": p.policy, "static_diffs": p.static_diffs,
        "deltas": [asdict(d) for d in p.deltas], "notes": p.notes,
        "watch": None if p.window is None else {
            "said": p.watched(), "window_s": p.window.seconds, "why": p.window.why,
            "longest_timer_s": p.window.longest_s, "capped": p.window.capped,
            "unreadable": list(p.window.unreadable), "watched_s": p.watched_s,
            "rounds": p.rounds},
        "latency_ms": p.latency,
        "invariants": [asdict(f) for f in p.invariants], "unread": p.unread,
        "baseline": [result(r) for r in p.baseline], "after": [result(r) for r in p.after],
        "seconds": p.seconds,
    }


def preview_junit(p: Preview) -> str:
    """One test case per contract flow after the change (a broken one carries its reason), one
    per broken invariant the roles declare, one per firewall policy finding, and the verdict
    itself, so the suite is red exactly when
    `edge preview` exits non-zero: an UNSAFE change that breaks no flow (it does not apply)
    fails the verdict case, and an ERROR is an `<error>`, whatever was measured before it.
    The counts are taken from the cases written, so `tests`, `failures` and `errors` always
    match the file."""
    suite = ET.Element("testsuite", name=f"edge-preview {p.change.digest}",
                       time=f"{sum(p.seconds.values()):.2f}")
    deltas = {d.flow: d for d in p.deltas}
    for r in p.after:
        case = ET.SubElement(suite, "testcase", classname=f"contract.{r.flow.vantage}",
                             name=r.flow.name, time=f"{r.latency_ms / 1000:.3f}")
        delta = deltas.get(r.flow.name)
        if delta and delta.kind in HEADS and not accepted(delta, p.change.accept):
            ET.SubElement(case, "failure", type=delta.kind,
                          message=delta.describe()).text = delta.reason
    for held in p.invariants:
        case = ET.SubElement(suite, "testcase", classname=f"invariants.{held.kind}",
                             name=f"{held.node or held.subject}: {held.subject}")
        ET.SubElement(case, "failure", type=held.kind, message=held.message).text = held.reason
    for finding in p.policy:
        case = ET.SubElement(suite, "testcase", classname="policy", name="firewall-allow-list")
        ET.SubElement(case, "failure", type="security-regression",
                      message="must-block flow accepted").text = finding
    verdict = ET.SubElement(suite, "testcase", classname="preview", name="verdict")
    problem = {1: "failure", 2: "error"}.get(p.exit_code)    # as `edge preview` exits
    if problem:
        ET.SubElement(verdict, problem, type=p.verdict,
                      message=p.verdict).text = "\n".join(p.reasons)
    for attribute, counted in (("tests", "testcase"), ("failures", "testcase/failure"),
                               ("errors", "testcase/error")):
        suite.set(attribute, str(len(suite.findall(counted))))
    return ET.tostring(suite, encoding="unicode")


def write_reports(p: Preview, out: Path) -> list[Path]:
    """index.html, preview.json and junit.xml in `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "index.html", out / "preview.json", out / "junit.xml"]
    files[0].write_text(preview_html(p))
    files[1].write_text(json.dumps(preview_json(p), indent=2) + "\n")
    files[2].write_text(preview_junit(p) + "\n")
    return files
