"""The test tree's top conftest: it only registers the lab suites' fixtures.

The fixtures that drive the Docker engine and the Pulumi CLI live in tests/lab_fixtures.py and
are registered here because pytest takes `pytest_plugins` from the top conftest only; none of them
is autouse, so a run of tests/unit alone needs no engine and touches no other run's objects.
"""

from __future__ import annotations

import pytest

# Imported below before pytest loads it as a plugin: mark it first, so its asserts still explain.
pytest.register_assert_rewrite("tests.lab_fixtures")

# The suites that import these from tests.conftest keep working; new code imports them from
# tests.lab_fixtures.
from tests.lab_fixtures import ROOT, Lab, labels_for  # noqa: E402,F401

pytest_plugins = ["tests.lab_fixtures"]
