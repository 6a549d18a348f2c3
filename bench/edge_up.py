"""Benchmark: the full "up" (pulumi up + converge + verify), the converge alone, a second
(idempotent) converge, and the outside-in e2e suite (pytest tests/e2e), on a fresh lab each run.

Usage: .venv/bin/python bench/edge_up.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from common import ROOT, bench_stack, report, timed, write_results

from edge import configure, stack
from edge.contract import expand, load_contract
from edge.cli import SETTLE_S
from edge.probes import settle

STACK, SLOT = "bench-edge", 26


def converge_ok(backend: stack.Backend) -> None:
    result = configure.converge(STACK, backend.state, progress=None)
    if not result.ok:
        raise SystemExit("converge failed:\n" + "\n".join(result.errors))


def verify_ok(backend: stack.Backend) -> None:
    failed = [r for r in settle(expand(load_contract(ROOT / "contract.yaml"),
                                       stack.outputs(STACK, backend)), SETTLE_S) if not r.ok]
    if failed:
        raise SystemExit(f"contract failing: {[r.flow.name for r in failed]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    figures: dict[str, list[float]] = {"pulumi_up_s": [], "converge_s": [],
                                       "converge_again_s": [], "verify_s": [], "full_up_s": [],
                                       "e2e_suite_s": []}
    with bench_stack(STACK, SLOT) as backend:
        for run in range(1, runs + 1):
            figures["pulumi_up_s"].append(timed(stack.up, STACK, backend, stream=False))
            figures["converge_s"].append(timed(converge_ok, backend))
            figures["verify_s"].append(timed(verify_ok, backend))
            figures["full_up_s"].append(round(figures["pulumi_up_s"][-1]
                                              + figures["converge_s"][-1]
                                              + figures["verify_s"][-1], 2))
            figures["converge_again_s"].append(timed(converge_ok, backend))
            figures["e2e_suite_s"].append(timed(
                subprocess.run, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 str(ROOT / "tests" / "e2e")],
                env=os.environ | {"EDGE_TEST_REUSE": STACK, "EDGE_STATE": str(backend.state)},
                cwd=ROOT, check=True, capture_output=True))
            report(run, runs, figures)
            stack.destroy(STACK, backend, stream=False)
    write_results("edge_up", runs, figures)


if __name__ == "__main__":
    main()
