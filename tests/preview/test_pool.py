"""Previews in parallel on a pool of staging stacks (issue 13): two `edge preview` commands at
once, given the same pool `--staging t-staging,t-staging2`, each take a free stack of it and hold
it, so neither measures the other's change: the breaking one is UNSAFE, the benign one SAFE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.engines import stack
from tests.lab_fixtures import ROOT, STAGING, STAGING_SLOT, Lab, lane_slot, lane_stack, stack_config

STAGING2 = lane_stack("staging2")
EXAMPLES = {"lb-wrong-bind": 1, "dns-ttl": 0}   # example -> the exit code its verdict gives


@pytest.fixture(scope="module")
def pool(lab: Lab, staging: stack.Backend) -> Iterator[str]:
    """The two staging stacks, each configured with its own slot (t-staging is the session's
    and is destroyed with it; t-staging2 at the end of this module)."""
    stack.select_stack(STAGING, staging, stack_config(STAGING_SLOT))
    stack.select_stack(STAGING2, staging, stack_config(lane_slot("staging2")))
    yield f"{STAGING},{STAGING2}"
    stack.destroy(STAGING2, staging, stream=False)
    stack.remove_stack(STAGING2, staging)


def test_two_previews_at_once_take_two_stacks_of_the_pool(lab: Lab, pool: str,
                                                           tmp_path: Path) -> None:
    runs = {name: subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "preview",
         str(ROOT / "changes" / "examples" / f"{name}.yaml"), "--stack", lab.stack,
         "--staging", pool, "--out", str(tmp_path / name)],
        cwd=ROOT, env={**os.environ, "EDGE_STATE": str(lab.state)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in EXAMPLES}
    said = {name: run.communicate(timeout=1800) for name, run in runs.items()}
    for name, code in EXAMPLES.items():
        assert runs[name].returncode == code, f"{name}:\n{said[name][0]}\n{said[name][1][-3000:]}"
    taken = {name: json.loads((tmp_path / name / "preview.json").read_text())["staging"]
             for name in EXAMPLES}
    assert sorted(taken.values()) == sorted(pool.split(",")), taken
    for name in EXAMPLES:
        assert f"preview: staging stack '{taken[name]}' of the pool" in said[name][1]
