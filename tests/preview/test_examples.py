"""Every shipped example change, previewed on a staged copy: the verdict its author expects.

The live stack is the session's configured lab (t-lab); the staged copy is t-staging at slot 24
in the same state folder. A preview must never touch the live stack: its configuration digest
is the same before and after every preview.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import stack
from edge.change import load_change
from edge.preview import SAFE, UNSAFE, Preview, config_digest, run_preview
from edge.html_report import preview_html
from edge.preview_report import preview_junit, preview_table
from tests.conftest import ROOT, Lab

STAGING, STAGING_SLOT = "t-staging", 24
EXAMPLES = sorted((ROOT / "changes" / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def staging(lab: Lab):
    backend = stack.Backend(state=lab.state)
    yield backend
    stack.destroy(STAGING, backend, stream=False)
    stack.remove_stack(STAGING, backend)


@pytest.fixture(scope="module")
def live_digest(lab: Lab) -> str:
    return config_digest(lab.outputs)


@pytest.fixture(scope="module")
def previews(lab: Lab, staging: stack.Backend) -> dict[str, Preview]:
    """Each example previewed once (a preview takes most of a minute), on demand."""
    class Lazy(dict):
        def __missing__(self, name: str) -> Preview:
            change = load_change(ROOT / "changes" / "examples" / f"{name}.yaml",
                                 set(lab.outputs["nodes"]))
            self[name] = run_preview(change, lab.stack, STAGING, ROOT / "contract.yaml",
                                     staging, {"slot": str(STAGING_SLOT), "purpose": "test"},
                                     progress=lambda _: None)
            return self[name]
    return Lazy()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_change_gets_the_expected_verdict(lab: Lab, previews: dict[str, Preview],
                                                  live_digest: str, path: Path) -> None:
    result = previews[path.stem]
    expected = {"safe": SAFE, "unsafe": UNSAFE}[result.change.expect]
    assert result.verdict == expected, preview_table(result)
    assert result.live_digest == live_digest == config_digest(lab.outputs), "live was touched"
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
