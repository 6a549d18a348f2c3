"""Benchmark: warm setup, `pulumi up` and `pulumi destroy` of the reference lab (issue: lab up).

Usage: .venv/bin/python bench/lab_lifecycle.py [--runs N]
"""

from __future__ import annotations

import subprocess

from common import ROOT, Figures, bench_stack, main, report, timed

from edge.engines import stack

NAME = "lab_lifecycle"
# Slots 24-31 belong to the lab test suites (tests/lab_fixtures.py), which may run meanwhile.
STACK, SLOT = "bench-life", 21


def measure(runs: int) -> Figures:
    """Warm setup, up, up again (no change) and destroy, `runs` times."""
    figures: Figures = {"setup_warm_s": [], "pulumi_up_s": [], "pulumi_up_no_change_s": [],
                        "pulumi_destroy_s": []}
    with bench_stack(STACK, SLOT) as backend:
        for run in range(1, runs + 1):
            figures["setup_warm_s"].append(timed(subprocess.run, [str(ROOT / "scripts/setup")],
                                                 check=True, capture_output=True))
            figures["pulumi_up_s"].append(timed(stack.up, STACK, backend, stream=False))
            figures["pulumi_up_no_change_s"].append(timed(stack.up, STACK, backend, stream=False))
            figures["pulumi_destroy_s"].append(timed(stack.destroy, STACK, backend, stream=False))
            report(run, runs, figures)
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
