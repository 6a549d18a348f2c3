"""Benchmark: the full "up" (pulumi up + converge + verify), the converge alone, a second
(idempotent) converge, and the outside-in e2e suite (pytest tests/e2e), on a fresh lab each run.

Usage: .venv/bin/python bench/edge_up.py [--runs N]
"""

from __future__ import annotations

import os
import subprocess
import sys

from common import ROOT, Figures, bench_stack, edge_up, main, report, timed

from edge.engines import stack
from edge.workflow import rollout
from edge.workflow.up import target_revision

NAME = "edge_up"
# Slots 24-31 belong to the lab test suites (tests/lab_fixtures.py), which may run meanwhile.
STACK, SLOT = "bench-edge", 20


def converge_again_ok(backend: stack.Backend) -> None:
    result = rollout.configuration(STACK, target_revision(backend.state, STACK).revision, backend)
    if not result.ok or result.changed:
        raise SystemExit(f"second converge: {result.status}, {result.changed} changed")


def measure(runs: int) -> Figures:
    """`edge up` on a fresh lab, a second converge and the e2e suite, `runs` times."""
    figures: Figures = {"pulumi_up_s": [], "converge_s": [], "converge_again_s": [],
                        "verify_s": [], "full_up_s": [], "e2e_suite_s": []}
    with bench_stack(STACK, SLOT) as backend:
        for run in range(1, runs + 1):
            timings = edge_up(STACK, backend).timings
            figures["pulumi_up_s"].append(round(timings["pulumi up"], 2))
            figures["converge_s"].append(round(timings["converge"], 2))
            figures["verify_s"].append(round(timings["verify"], 2))
            figures["full_up_s"].append(round(sum(timings.values()), 2))
            figures["converge_again_s"].append(timed(converge_again_ok, backend))
            figures["e2e_suite_s"].append(timed(
                subprocess.run, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 str(ROOT / "tests" / "e2e")],
                env=os.environ | {"EDGE_TEST_REUSE": STACK, "EDGE_STATE": str(backend.state)},
                cwd=ROOT, check=True, capture_output=True))
            report(run, runs, figures)
            stack.destroy(STACK, backend, stream=False)
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
