"""Previews in parallel on a pool of staging stacks (issue 13): two `edge preview` commands at
once, given the same pool `--staging t-staging,t-staging2`, each take a free stack of it and hold
it, so neither measures the other's change: the breaking one is UNSAFE, the benign one SAFE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.engines import stack
from tests.lab_fixtures import (
    STAGING,
    STAGING_SLOT,
    Lab,
    lane_slot,
    lane_stack,
    previews_at_once,
    stack_config,
)

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
    found = previews_at_once(lab.stack, pool, EXAMPLES, lab.state, tmp_path)
    assert sorted(f.staging for f in found.values()) == sorted(pool.split(",")), found
    for name, taken in found.items():
        assert f"preview: staging stack '{taken.staging}' of the pool" in taken.said
