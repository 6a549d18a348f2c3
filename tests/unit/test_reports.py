"""A preview's reports (and a replay's replay.json) as CI and people read them, from objects built here (no lab).

JUnit XML is what a CI server turns into red or green: the file is validated against the common
JUnit schema (tests/unit/fixtures/junit.xsd) and its counts must be those of the test cases it
holds, or the CI shows a verdict the preview did not give. `preview.json` is for scripts; the
HTML page for people, and it may only call the live stack untouched when it measured that.

lxml is not a dependency of the project, so the schema is applied by `xsd_check` below: a small
interpreter of exactly the XSD constructs junit.xsd uses, which refuses any other construct (an
edit of the schema can never be silently ignored).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from edge.lab.events import Alarm, Event, Sample
from edge.lab.probes import Result
from edge.model.change import Change
from edge.model.contract import Flow
from edge.report.html import preview_html
from edge.report.preview import preview_json, preview_junit, write_reports
from edge.report.replay import replay_json
from edge.workflow.replay import Incident, ReplayResult
from edge.workflow.staged import ERROR, NOOP, SAFE, UNSAFE, Preview, compare

SCHEMA = Path(__file__).parent / "fixtures" / "junit.xsd"
XS = "{http://www.w3.org/2001/XMLSchema}"
UNBOUNDED = 10**9
TYPES = {"xs:string": re.compile(r".*", re.S),
         "xs:nonNegativeInteger": re.compile(r"\+?\d+"),
         "xs:decimal": re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")}


# --- the schema ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Particle:
    """A place in a content model: one of `names`, between `low` and `high` times."""

    names: frozenset[str]
    low: int
    high: int


@dataclass(frozen=True)
class Declaration:
    """What an element may carry: attributes (name -> (type, required)), children in order,
    and whether text may sit among them."""

    attributes: dict[str, tuple[str, bool]]
    content: tuple[Particle, ...]
    text: bool


def _occurs(node: ET.Element) -> tuple[int, int]:
    high = node.get("maxOccurs", "1")
    return int(node.get("minOccurs", "1")), UNBOUNDED if high == "unbounded" else int(high)


def _particles(group: ET.Element) -> list[Particle]:
    found = []
    for item in group:
        if item.tag == f"{XS}element" and item.get("ref"):
            found.append(Particle(frozenset({item.get("ref")}), *_occurs(item)))
        elif item.tag == f"{XS}choice":
            refs = [e.get("ref") for e in item]
            assert all(e.tag == f"{XS}element" and r for e, r in zip(item, refs)), \
                "junit.xsd: a choice of element refs only"
            found.append(Particle(frozenset(refs), *_occurs(item)))
        else:
            raise AssertionError(f"junit.xsd uses {item.tag}, which xsd_check does not know")
    return found


def load_schema(path: Path = SCHEMA) -> dict[str, Declaration]:
    """The top-level elements of the schema, each as a Declaration."""
    declarations = {}
    for element in ET.parse(path).getroot():
        assert element.tag == f"{XS}element", f"junit.xsd: unexpected top-level {element.tag}"
        if element.get("type") in TYPES:          # text only
            declarations[element.get("name")] = Declaration({}, (), True)
            continue
        [kind] = list(element)
        assert kind.tag == f"{XS}complexType", f"junit.xsd: {element.get('name')} is not typed"
        attributes, content = {}, []
        for part in kind:
            if part.tag == f"{XS}attribute":
                assert part.get("type") in TYPES, f"junit.xsd: unknown type {part.get('type')}"
                attributes[part.get("name")] = (part.get("type"), part.get("use") == "required")
            elif part.tag == f"{XS}sequence":
                content = _particles(part)
            else:
                raise AssertionError(f"junit.xsd uses {part.tag}, which xsd_check does not know")
        declarations[element.get("name")] = Declaration(attributes, tuple(content),
                                                        kind.get("mixed") == "true")
    return declarations


def xsd_check(element: ET.Element, schema: dict[str, Declaration], where: str = "") -> list[str]:
    """Every way `element` and its children break the schema, as sentences (none: valid)."""
    where = f"{where}/{element.tag}"
    declared = schema.get(element.tag)
    if declared is None:
        return [f"{where}: no such element in the schema"]
    problems = []
    for name, (kind, required) in declared.attributes.items():
        value = element.get(name)
        if value is None:
            problems += [f"{where}: attribute {name} is missing"] if required else []
        elif not TYPES[kind].fullmatch(value):
            problems.append(f"{where}: {name}={value!r} is not an {kind}")
    problems += [f"{where}: attribute {name} is not in the schema"
                 for name in element.attrib if name not in declared.attributes]
    if not declared.text and ((element.text or "").strip()
                              or any((c.tail or "").strip() for c in element)):
        problems.append(f"{where}: text where the schema allows only elements")
    place, counts = 0, [0] * len(declared.content)
    for child in element:
        at = next((i for i in range(place, len(declared.content))
                   if child.tag in declared.content[i].names), None)
        if at is None:
            problems.append(f"{where}: {child.tag} is not allowed here")
            continue
        place, counts[at] = at, counts[at] + 1
        problems += xsd_check(child, schema, where)
    for particle, count in zip(declared.content, counts):
        if not particle.low <= count <= particle.high:
            problems.append(f"{where}: {count} of {'/'.join(sorted(particle.names))}, allowed "
                            f"{particle.low}..{particle.high}")
    return problems


def parse_junit(text: str) -> ET.Element:
    """The JUnit document, valid against junit.xsd and with counts that match its cases."""
    suite = ET.fromstring(text)
    assert xsd_check(suite, load_schema()) == []
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in cases)
    assert int(suite.get("errors")) == sum(c.find("error") is not None for c in cases)
    return suite


def test_the_checker_finds_what_breaks_the_schema() -> None:
    """The interpreter is itself checked: each defect of the old report is one problem."""
    broken = ET.fromstring('<testsuite name="s" tests="1" failures="x"><testcase name="a">'
                           '<error message="m"/><failure/></testcase><bogus/></testsuite>')
    assert sorted(xsd_check(broken, load_schema())) == sorted([
        "/testsuite: attribute errors is missing",
        "/testsuite: failures='x' is not an xs:nonNegativeInteger",
        "/testsuite/testcase: attribute classname is missing",
        "/testsuite/testcase: 2 of error/failure/skipped, allowed 0..1",
        "/testsuite: bogus is not allowed here"])


# --- previews built here -------------------------------------------------------------------------

def flow(name: str, must: str = "work", vantage: str = "client") -> Flow:
    rule, _, target = name.partition("@")
    return Flow(name, rule, vantage, f"edge-lab-{vantage}", "http", must, {}, target=target)


def measured(name: str, ok: bool, must: str = "work", outcome: str = "answered") -> Result:
    return Result(flow(name, must), outcome, {"status": 200} if ok and must == "work" else {},
                  12.5, ok, "" if ok else "timed out")


BEFORE = [measured("http-api-at-lb@lb1", True), measured("http-api-at-lb@lb2", True),
          measured("dns-api-at-nameserver@ns1", True),
          measured("no-rndc-from-outside@ns1", True, "block", "timeout")]


def preview(verdict: str = SAFE, after: list[Result] | None = None, **fields) -> Preview:
    """A preview as run_preview would leave it; every field overridable."""
    after = BEFORE if after is None else after
    made = Preview(Change(Path("changes/x.yaml"), "a <test> change", {"dns_ttl": 60}), "lab",
                   "staging", verdict, baseline=BEFORE, after=after,
                   deltas=compare(BEFORE, after), live_revision="rev1", live_digest="d1",
                   live_digest_after="d1", seconds={"static+baseline": 3.0, "change": 2.5})
    for name, value in fields.items():
        setattr(made, name, value)
    return made


OUTAGE = [measured("http-api-at-lb@lb1", False, outcome="timeout"),
          measured("http-api-at-lb@lb2", False, outcome="timeout"), *BEFORE[2:]]


def test_a_safe_preview_is_a_green_suite_with_one_case_per_flow_and_the_verdict() -> None:
    suite = parse_junit(preview_junit(preview()))
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == [r.flow.name for r in BEFORE] + ["verdict"]
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
    assert suite.get("time") == "5.50"


def test_a_no_op_preview_is_a_green_suite_as_its_exit_code_0_says() -> None:
    suite = parse_junit(preview_junit(preview(NOOP)))
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")


def test_broken_flows_are_failures_named_by_their_kind() -> None:
    suite = parse_junit(preview_junit(preview(UNSAFE, OUTAGE, reasons=["OUTAGE: lb1, lb2"])))
    failed = {c.get("name"): c.find("failure") for c in suite.findall("testcase")
              if c.find("failure") is not None}
    assert set(failed) == {"http-api-at-lb@lb1", "http-api-at-lb@lb2", "verdict"}
    assert failed["http-api-at-lb@lb1"].get("type") == "outage"
    assert failed["http-api-at-lb@lb1"].get("message") == (
        "http-api-at-lb@lb1 is silent (timeout) (before: answers 200); outside users lose it: "
        "2 of 2 addresses fail")
    assert failed["verdict"].text == "OUTAGE: lb1, lb2"


def test_a_policy_finding_is_counted_as_a_test_and_a_failure() -> None:
    """Defect: the suite said tests="1" (the flows only, at least 1) while the file held the
    flows and a policy case; CI read one test where there were more."""
    found = preview(UNSAFE, policy=["no-controller-from-outside@controller: rule x accepts it"],
                    reasons=["SECURITY REGRESSION (firewall policy): ..."])
    suite = parse_junit(preview_junit(found))
    assert suite.get("tests") == str(len(BEFORE) + 2)
    [policy] = [c for c in suite.findall("testcase") if c.get("classname") == "policy"]
    assert policy.find("failure").text == found.policy[0]
    assert suite.get("failures") == "2"                    # the policy case and the verdict


def test_a_preview_that_could_not_run_is_an_error_not_a_failure() -> None:
    """Defect: an ERROR verdict wrote <error> but counted it under `failures`, with no `errors`
    attribute at all: CI called a broken preview a failed test."""
    suite = parse_junit(preview_junit(preview(ERROR, [], reasons=["stack 'lab' has no recorded "
                                                                  "revision"])))
    [case] = suite.findall("testcase")
    assert case.find("error").text == "stack 'lab' has no recorded revision"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "1")


def test_an_error_after_the_measurement_still_turns_the_suite_red() -> None:
    """Defect: when the live stack changed during the preview (ERROR with every flow measured
    green), no case failed: the suite was green for a preview that must be run again."""
    suite = parse_junit(preview_junit(preview(ERROR, live_digest_after="d2", reasons=[
        "the live stack 'lab' changed while the preview ran"])))
    assert suite.get("errors") == "1" and suite.get("failures") == "0"


def test_an_unsafe_change_that_breaks_no_flow_fails_the_suite() -> None:
    """Defect: a change that does not apply (UNSAFE, no flow broke) gave a green suite."""
    suite = parse_junit(preview_junit(preview(UNSAFE, reasons=[
        "the change does not apply: lb1: HAProxy configuration: failed to validate"])))
    assert suite.get("failures") == "1"
    [verdict] = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert verdict.get("name") == "verdict" and "does not apply" in verdict.find("failure").text


def test_preview_json_holds_every_field_as_plain_data() -> None:
    found = preview(UNSAFE, OUTAGE, reasons=["OUTAGE"], scope=["lb1", "lb2"],
                    static_diffs={"lb1": 2}, infra_steps=["update lb1"])
    data = json.loads(json.dumps(preview_json(found)))
    assert set(data) == {"verdict", "reasons", "exit_code", "change", "live", "live_revision",
                         "live_digest", "live_digest_after", "staging", "infra_steps", "scope",
                         "policy", "static_diffs", "deltas", "invariants", "unread",
                         "baseline", "after", "seconds", "watch", "notes", "latency_ms"}
    assert (data["verdict"], data["exit_code"], data["scope"]) == (UNSAFE, 1, ["lb1", "lb2"])
    assert data["change"] == {"path": "changes/x.yaml", "description": "a <test> change",
                              "digest": found.change.digest, "vars": {"dns_ttl": 60},
                              "stop": [], "tree": None}
    assert [(d["flow"], d["kind"]) for d in data["deltas"]] == [
        ("http-api-at-lb@lb1", "outage"), ("http-api-at-lb@lb2", "outage")]
    assert data["after"][0] == {"flow": "http-api-at-lb@lb1", "vantage": "client",
                                "must": "work", "outcome": "timeout", "ok": False,
                                "reason": "timed out", "latency_ms": 12.5, "detail": {}}
    assert preview_json(preview(ERROR, [], scope=None))["exit_code"] == 2


def test_replay_json_holds_every_field_as_plain_data() -> None:
    """replay.json is for scripts (CI turns `ok` into red or green): every figure of the replay,
    the expectation it was judged against, and the timeline as data."""
    incident = Incident("ns-both-down", "both name servers stop", (), "EXTERNAL OUTAGE", "dns",
                        2.0, quiet=("apps",), drift=("ns1",))
    outage = Alarm("EXTERNAL OUTAGE", "dns", ("dns-api-at-nameserver@ns1",))
    result = ReplayResult(
        incident, detected=str(outage), detect_s=0.8, drift="DRIFT (ns1)", drift_s=1.5,
        recover_s=4.25, green_after=True,
        events=[Event(0.0, "fault", "inject: stop ns1"), Event(0.8, "alarm", alarm=outage),
                Event(3.0, "restore", "restore: undo every fault"), Event(7.25, "green", "ok")],
        samples=[Sample("dns-api-at-nameserver@ns1", "client", 0.5, False, "timeout", 500.0),
                 Sample("dns-api-at-nameserver@ns1", "client", 7.0, True, "answered", 1.2)])
    data = json.loads(json.dumps(replay_json(result)))
    assert data == {
        "incident": "ns-both-down", "description": "both name servers stop",
        "expected": {"class": "EXTERNAL OUTAGE", "service": "dns", "within_s": 2.0,
                     "quiet": ["apps"]},
        "ok": True, "problems": [], "detected": str(outage), "detect_s": 0.8,
        "drift": "DRIFT (ns1)", "drift_s": 1.5, "recover_s": 4.25, "green_after": True,
        "events": [e.to_json() for e in result.events], "alarm_events": 1, "samples": 2,
        "failed_samples": 1}
    assert data["events"][1] == {"t": 0.8, "kind": "alarm", "label": str(outage),
                                 "class": "EXTERNAL OUTAGE", "service": "dns",
                                 "flows": ["dns-api-at-nameserver@ns1"], "was": ""}
    failed = replay_json(ReplayResult(incident, problems=["detected nothing"]))
    assert (failed["ok"], failed["detected"], failed["detect_s"]) == (False, "", None)


def test_write_reports_writes_the_three_files(tmp_path: Path) -> None:
    files = write_reports(preview(), tmp_path / "out")
    assert [f.name for f in files] == ["index.html", "preview.json", "junit.xml"]
    parse_junit(files[2].read_text())
    assert json.loads(files[1].read_text())["verdict"] == SAFE


# --- the HTML page -------------------------------------------------------------------------------

def rows(page: str) -> list[list[str]]:
    """The flow table of the page, cell texts per row, header first."""
    table = page[page.index("<table>"):page.index("</table>") + len("</table>")]
    return [[html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table)]


def test_the_page_tables_each_flow_before_and_after() -> None:
    page = preview_html(preview(UNSAFE, OUTAGE, reasons=["OUTAGE"]))
    assert rows(page) == [
        ["flow", "from", "must", "before", "after", "verdict"],
        ["http-api-at-lb@lb1", "client", "work", "answers 200", "is silent (timeout)",
         "OUTAGE: timed out"],
        ["http-api-at-lb@lb2", "client", "work", "answers 200", "is silent (timeout)",
         "OUTAGE: timed out"],
        ["dns-api-at-nameserver@ns1", "client", "work", "answers 200", "answers 200", "ok"],
        ["no-rndc-from-outside@ns1", "client", "block", "is silent (timeout)",
         "is silent (timeout)", "ok"]]
    assert "a &lt;test&gt; change" in page and "<test>" not in page


@pytest.mark.parametrize("fields, said", [
    ({}, "configuration digest d1, untouched"),
    ({"live_digest_after": "d2"},
     "configuration digest d1 before, d2 after: CHANGED while the preview ran"),
    ({"live_digest_after": ""},
     "configuration digest d1 before; not measured again, the preview stopped early"),
    ({"live_digest": "", "live_digest_after": ""},
     "configuration not measured: the preview stopped before it started"),
], ids=["measured-equal", "changed", "stopped-early", "never-measured"])
def test_the_page_says_untouched_only_when_it_measured_so(fields: dict, said: str) -> None:
    """Defect: the page said "untouched" for every preview, an ERROR whose live stack changed
    (or that never measured it) included."""
    verdict = SAFE if not fields else ERROR
    page = html.unescape(preview_html(preview(verdict, **fields, reasons=["why"])))
    assert f"({said})" in page
    assert ("untouched" in page) == (not fields)
