"""The staged copy shared by the preview and apply suites, and each example previewed once.

The live stack is the session's configured lab (t-lab); the staged copy is t-staging (slot 24 in
lane 0) in the same state folder: the session's `staging` fixture (tests/lab_fixtures.py), which
the kill suite shares. Previews and applies break a copy or the live lab and roll it back: never
under EDGE_TEST_REUSE (the user's own stack).
"""

from __future__ import annotations

import pytest

from edge.engines import stack
from edge.model.change import load_change
from edge.workflow.apply import record_preview
from edge.workflow.staged import Preview, config_digest, run_preview
from tests.lab_fixtures import ROOT, STAGING, STAGING_SLOT, Lab, stack_config


@pytest.fixture(autouse=True)
def _refused_on_a_reused_stack(breaks_the_lab: None) -> None:
    """Every test of this suite breaks the lab and rolls it back (see breaks_the_lab)."""


# The live lab's configuration digest right before each example's preview, measured here: equal
# to the preview's own two (before and after), it shows those were taken of the live lab. (A
# third, right after the preview, would follow its own last one with nothing in between.)
live_digests: dict[str, str] = {}


@pytest.fixture(scope="session")
def previews(lab: Lab, staging: stack.Backend, tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Preview]:
    """Each example previewed once (on demand) and recorded for the gate, as `edge preview`
    does. A preview made before an apply is stale after it: `del previews[name]` re-previews."""
    reports = tmp_path_factory.mktemp("previews")

    class Lazy(dict):
        def __missing__(self, name: str) -> Preview:
            change = load_change(ROOT / "changes" / "examples" / f"{name}.yaml",
                                 set(lab.view.nodes))
            before = config_digest(lab.view)
            self[name] = run_preview(change, lab.stack, STAGING, ROOT / "contract.yaml",
                                     staging, stack_config(STAGING_SLOT),
                                     progress=lambda _: None)
            live_digests[name] = before
            record_preview(lab.state, self[name], reports / name)
            return self[name]
    return Lazy()
