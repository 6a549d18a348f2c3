"""Benchmark: warm setup, `pulumi up` and `pulumi destroy` of the reference lab (issue: lab up).

Usage: .venv/bin/python bench/lab_lifecycle.py [--runs N]
"""

from __future__ import annotations

import argparse
import subprocess

from common import ROOT, bench_stack, report, timed, write_results

from edge import stack

STACK, SLOT = "bench-life", 29


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    figures: dict[str, list[float]] = {"setup_warm_s": [], "pulumi_up_s": [],
                                       "pulumi_up_no_change_s": [], "pulumi_destroy_s": []}
    with bench_stack(STACK, SLOT) as backend:
        for run in range(1, runs + 1):
            figures["setup_warm_s"].append(timed(subprocess.run, [str(ROOT / "scripts/setup")],
                                                 check=True, capture_output=True))
            figures["pulumi_up_s"].append(timed(stack.up, STACK, backend, stream=False))
            figures["pulumi_up_no_change_s"].append(timed(stack.up, STACK, backend, stream=False))
            figures["pulumi_destroy_s"].append(timed(stack.destroy, STACK, backend, stream=False))
            report(run, runs, figures)
    write_results("lab_lifecycle", runs, figures)


if __name__ == "__main__":
    main()
