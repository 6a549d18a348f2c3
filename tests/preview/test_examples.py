"""Every shipped example change, previewed on a staged copy: the verdict its author expects.

The live stack is the session's configured lab (t-lab); the staged copy is t-staging at slot 24
in the same state folder (tests/preview/conftest.py). A preview must never touch the live stack:
its configuration digest is the same before and after every preview.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.report.html import preview_html
from edge.report.preview import preview_junit, preview_table
from edge.workflow.staged import SAFE, UNSAFE, Preview
from tests.conftest import ROOT, Lab
from tests.preview.conftest import live_digests

EXAMPLES = sorted((ROOT / "changes" / "examples").glob("*.yaml"))

# What each example does to the contract, measured on the staged copy: the kinds of its flow
# deltas, and whether the static policy check flags a firewall rule. Why each:
#  - border-withdraws-prefix, firewall-policy-drop, lb-wrong-bind: every client flow into the dmz
#    (or to the load balancers) breaks at once; no flow of the same entry keeps working.
#  - ns1-stopped: ns2 still answers each DNS entry ns1 no longer does.
#  - open-rndc: the client reaches rndc (must-block) through the new rule; the policy check
#    flags the rule too.
#  - open-controller: no route leads from the internet to the PaaS network, so no measured flow
#    changes; only the policy check sees the rule that would expose the controller.
#  - the SAFE ones change no measured flow (answers included: the probes ask other names).
EXPECTED: dict[str, tuple[set[str], bool]] = {
    "border-withdraws-prefix": ({"outage"}, False),
    "dns-record": (set(), False),
    "dns-ttl": (set(), False),
    "firewall-policy-drop": ({"outage"}, False),
    "lb-wrong-bind": ({"outage"}, False),
    "new-app-route": (set(), False),
    "ns1-stopped": ({"redundancy-lost"}, False),
    "open-controller": (set(), True),
    "open-rndc": ({"security-regression"}, True),
}


def test_every_example_has_its_expected_deltas_written_here() -> None:
    assert sorted(EXPECTED) == [p.stem for p in EXAMPLES]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_change_gets_the_expected_verdict(lab: Lab, previews: dict[str, Preview],
                                                  path: Path) -> None:
    result = previews[path.stem]
    expected = {"safe": SAFE, "unsafe": UNSAFE}[result.change.expect]
    assert result.verdict == expected, preview_table(result)
    # Digested right before and right after this preview: the live lab was not touched (other
    # tests change it between previews, through `edge apply`).
    before, after = live_digests[path.stem]
    assert before and before == after == result.live_digest == result.live_digest_after, \
        "live was touched"
    assert result.after, "the preview never measured the staged copy after the change"
    kinds, flagged = EXPECTED[path.stem]
    assert {d.kind for d in result.deltas} == kinds, preview_table(result)
    assert bool(result.policy) == flagged, result.policy
    if expected == UNSAFE:
        assert result.reasons and "<failure" in preview_junit(result)
    else:
        assert result.reasons == [] and "<failure" not in preview_junit(result)


def test_kinds_of_breakage_are_told_apart_and_located(previews: dict[str, Preview]) -> None:
    """Lost redundancy, an outage and a security regression each say what they are, and a
    broken flow says where it dies."""
    found = {name: previews[name] for name in ("ns1-stopped", "border-withdraws-prefix",
                                               "lb-wrong-bind", "firewall-policy-drop",
                                               "open-rndc")}
    kinds = {name: {d.kind for d in p.deltas} for name, p in found.items()}
    assert kinds["ns1-stopped"] == {"redundancy-lost"}
    assert kinds["border-withdraws-prefix"] == {"outage"}
    assert kinds["open-rndc"] == {"security-regression"}
    where = {name: {d.where for d in p.deltas if d.kind != "security-regression"}
             for name, p in found.items()}
    for name in ("ns1-stopped", "border-withdraws-prefix", "lb-wrong-bind",
                 "firewall-policy-drop"):
        assert where[name], f"{name}: no broken flow to locate"
    assert where["ns1-stopped"] == {"ns1 is not running (exited)"}
    assert all("border has no route" in w for w in where["border-withdraws-prefix"])
    assert all(w.startswith("nothing listens on") for w in where["lb-wrong-bind"])
    assert all("default deny of firewall" in w for w in where["firewall-policy-drop"])
    page = preview_html(found["border-withdraws-prefix"])
    assert "<svg" in page and "border has no route" in page
