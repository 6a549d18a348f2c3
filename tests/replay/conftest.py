"""The replay suite injects real faults into the session's lab and undoes them: never under
EDGE_TEST_REUSE (the user's own stack)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _refused_on_a_reused_stack(breaks_the_lab: None) -> None:
    """Every test of this suite breaks the lab and rolls it back (see breaks_the_lab)."""
