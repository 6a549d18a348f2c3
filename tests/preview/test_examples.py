"""Every shipped example change, previewed on a staged copy: the verdict its author expects.

The live stack is the session's configured lab (t-lab); the staged copy is t-staging at slot 24
in the same state folder (tests/preview/conftest.py). A preview must never touch the live stack:
its configuration digest is the same before and after every preview.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.preview import SAFE, UNSAFE, Preview
from edge.html_report import preview_html
from edge.preview_report import preview_junit, preview_table
from tests.conftest import ROOT, Lab
from tests.preview.conftest import live_digests

EXAMPLES = sorted((ROOT / "changes" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_change_gets_the_expected_verdict(lab: Lab, previews: dict[str, Preview],
                                                  path: Path) -> None:
    result = previews[path.stem]
    expected = {"safe": SAFE, "unsafe": UNSAFE}[result.change.expect]
    assert result.verdict == expected, preview_table(result)
    # Digested right before and right after this preview: the live lab was not touched (other
    # tests change it between previews, through `edge apply`).
    before, after = live_digests[path.stem]
    assert before == after == result.live_digest == result.live_digest_after, "live was touched"
    if expected == UNSAFE:
        assert result.reasons and "<failure" in preview_junit(result)
    else:
        assert not [d for d in result.deltas if d.kind != "fixed"], preview_table(result)


def test_kinds_of_breakage_are_told_apart_and_located(previews: dict[str, Preview]) -> None:
    """Lost redundancy, an outage and a security regression each say what they are, and a
    broken flow says where it dies."""
    found = {name: previews[name] for name in ("ns1-stopped", "border-withdraws-prefix",
                                               "lb-wrong-bind", "firewall-policy-drop",
                                               "open-rndc")}
    kinds = {name: {d.kind for d in p.deltas} for name, p in found.items()}
    assert kinds["ns1-stopped"] == {"redundancy-lost"}
    assert "outage" in kinds["border-withdraws-prefix"]
    assert kinds["open-rndc"] == {"security-regression"}
    where = {name: {d.where for d in p.deltas if d.kind != "security-regression"}
             for name, p in found.items()}
    assert where["ns1-stopped"] == {"ns1 is not running (exited)"}
    assert all("border has no route" in w for w in where["border-withdraws-prefix"])
    assert all(w.startswith("nothing listens on") for w in where["lb-wrong-bind"])
    assert all("default deny of firewall" in w for w in where["firewall-policy-drop"])
    page = preview_html(found["border-withdraws-prefix"])
    assert "<svg" in page and "border has no route" in page
