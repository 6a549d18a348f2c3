"""Change files, and the pure parts of a preview: comparing results and judging them."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.lab.probes import Result
from edge.model.change import ChangeError, load_change
from edge.model.contract import Flow
from edge.workflow.staged import SAFE, UNSAFE, compare, judge

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "change.yaml"
    path.write_text(text)
    return path


def test_every_example_loads_and_says_what_it_expects() -> None:
    examples = sorted((ROOT / "changes" / "examples").glob("*.yaml"))
    assert len(examples) >= 8
    for path in examples:
        assert load_change(path).expect in ("safe", "unsafe"), path


def test_digests_of_the_examples_stay_what_recorded_previews_hold() -> None:
    # A preview records the digest of the change it was made for; an apply compares them.
    assert load_change(ROOT / "changes" / "examples" / "dns-ttl.yaml").digest == "cdd38a6f34183041"
    assert load_change(ROOT / "changes" / "examples" / "dns-record.yaml").digest == \
        "bf6117afd3920910"


def test_digest_covers_what_the_change_does_not_its_words(tmp_path: Path) -> None:
    a = load_change(write(tmp_path, "description: one\nvars: {dns_ttl: 60}\n"))
    b = load_change(write(tmp_path, "description: two\nvars: {dns_ttl: 60}\n"))
    c = load_change(write(tmp_path, "description: one\nvars: {dns_ttl: 61}\n"))
    assert a.digest == b.digest != c.digest


@pytest.mark.parametrize("body,words", [
    ("vars: {dns_ttl: 1}\n", "description: missing"),
    ("description: x\n", "the change changes nothing"),
    ("description: x\nstop: [ns9]\n", "no node ['ns9'] in the stack"),
    ("description: x\nvars: {dns_ttl: 1}\nexpect: maybe\n", "'maybe' is neither safe nor unsafe"),
    ("description: x\nvars: {dns_ttl: 1}\nbogus: 1\n", "bogus: unknown key"),
    ("description: x\nvars: {a: 1}\n", "vars.a: no role default or group_vars defines 'a'"),
])
def test_bad_change_gives_one_clear_error(tmp_path: Path, body: str, words: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ChangeError) as err:
        load_change(path, {"ns1", "ns2"})
    assert str(err.value).startswith(f"{path}:") and words in str(err.value), str(err.value)


def result(name: str, rule: str, must: str, ok: bool, outcome: str = "answered",
           **detail) -> Result:
    flow = Flow(name, rule, "client", "c", "dns", must, {}, target=name.split("@")[-1])
    return Result(flow, outcome, detail, 1.0, ok, "" if ok else "broken")


def test_compare_tells_outage_redundancy_and_security_apart() -> None:
    before = [result("dns@ns1", "dns", "work", True), result("dns@ns2", "dns", "work", True),
              result("web@lb1", "web", "work", True),
              result("rndc@ns1", "rndc", "block", True, "timeout")]
    after = [result("dns@ns1", "dns", "work", False, "timeout"),
             result("dns@ns2", "dns", "work", True),
             result("web@lb1", "web", "work", False, "timeout"),
             result("rndc@ns1", "rndc", "block", False, "refused")]
    kinds = {d.flow: d.kind for d in compare(before, after)}
    assert kinds == {"dns@ns1": "redundancy-lost", "web@lb1": "outage",
                     "rndc@ns1": "security-regression"}
    verdict, reasons = judge(compare(before, after), [])
    assert verdict == UNSAFE and len(reasons) == 3


def test_changed_dns_answers_are_reported_but_safe() -> None:
    before = [result("dns@ns1", "dns", "work", True, answers=["198.18.2.10"])]
    after = [result("dns@ns1", "dns", "work", True, answers=["198.18.2.11"])]
    deltas = compare(before, after)
    assert [d.kind for d in deltas] == ["answers-changed"]
    assert judge(deltas, []) == (SAFE, [])


def test_a_change_that_does_not_apply_is_unsafe() -> None:
    verdict, reasons = judge([], ["lb1: HAProxy configuration: failed to validate"])
    assert verdict == UNSAFE and "does not apply" in reasons[0]


def test_html_report_draws_the_topology_and_marks_broken_paths() -> None:
    from edge.model.change import Change
    from edge.model.lab import Lab, Network, Node
    from edge.report.html import preview_html
    from edge.workflow.staged import Preview

    before = [result("dns@ns1", "dns", "work", True), result("dns@ns2", "dns", "work", True)]
    after = [result("dns@ns1", "dns", "work", False, "timeout"),
             result("dns@ns2", "dns", "work", True)]
    topology = Lab("staging", 1, "paas.test", {
        "internet": Network("internet", "edge-staging-internet", "198.18.0.0/24"),
        "dmz": Network("dmz", "edge-staging-dmz", "198.18.2.0/24"),
    }, {name: Node(name, role, role, role, f"edge-staging-{name}", name, {net: address})
        for name, role, net, address in (("client", "vantage", "internet", "198.18.0.10"),
                                         ("ns1", "dns", "dmz", "198.18.2.53"),
                                         ("ns2", "dns", "dmz", "198.18.2.54"))})
    preview = Preview(Change(Path("c.yaml"), "stop ns1", stop=("ns1",)), "lab", "staging",
                      UNSAFE, ["REDUNDANCY LOST: dns@ns1"], deltas=compare(before, after),
                      baseline=before, after=after, topology=topology)
    page = preview_html(preview)
    assert page.count("<svg") == 1 and ">ns1</text>" in page and ">dmz</text>" in page
    assert 'stroke="#ef6c00"' in page                       # the broken path, marked
    assert '<rect x="' in page and 'fill="#ffebee"' in page  # ns1 drawn as down
    assert "REDUNDANCY LOST: dns@ns1" in page and "UNSAFE" in page
