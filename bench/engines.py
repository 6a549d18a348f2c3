"""Benchmark (issue 13): the reference lab on this one engine against the same lab split over two
engines of a Swarm (border, firewall and name servers here; load balancers and PaaS on a second
engine, a dockerd in a container of this machine): `pulumi up`, converge, verify, the e2e suite,
and the contract's must-work flows' latency (the overlay's cost), on a fresh lab each run.

Both engines share this machine's two cores and kernel: the split shows what the overlay and the
second engine's API cost, not what more machines would gain.

Usage: .venv/bin/python bench/engines.py [--runs N]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import (
    ROOT,
    Figures,
    bench_stack,
    edge_up,
    main,
    on_two_engines,
    report,
    second_engine,
    timed,
)

from edge.engines import stack

NAME = "engines"
ONE, ONE_SLOT = "bench-edge", 20
TWO, TWO_SLOT = "bench-split", 21


def one_lab(name: str, backend: stack.Backend, key: str, figures: Figures) -> None:
    """`edge up` of stack `name`, then the e2e suite on it, then its destroy; figures under
    `key` (one, two)."""
    up = edge_up(name, backend)
    figures[f"{key}_pulumi_up_s"].append(round(up.timings["pulumi up"], 2))
    figures[f"{key}_converge_s"].append(round(up.timings["converge"], 2))
    figures[f"{key}_verify_s"].append(round(up.timings["verify"], 2))
    figures[f"{key}_latency_ms"].append(round(statistics.median(
        r.latency_ms for r in up.results if r.flow.must == "work"), 2))
    figures[f"{key}_e2e_suite_s"].append(timed(
        subprocess.run, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         str(ROOT / "tests" / "e2e")],
        env=os.environ | {"EDGE_TEST_REUSE": name, "EDGE_STATE": str(backend.state)},
        cwd=ROOT, check=True, capture_output=True))
    stack.destroy(name, backend, stream=False)


def measure(runs: int) -> Figures:
    figures: Figures = {f"{key}_{what}": [] for what in (
        "pulumi_up_s", "converge_s", "verify_s", "e2e_suite_s", "latency_ms")
        for key in ("one", "two")}
    with second_engine() as endpoint, bench_stack(ONE, ONE_SLOT) as backend, \
            tempfile.TemporaryDirectory() as tmp:
        split = on_two_engines(endpoint, Path(tmp) / "split.yaml")
        stack.select_stack(TWO, backend, {"slot": str(TWO_SLOT), "purpose": "bench",
                                          "topology": str(split)})
        try:
            for run in range(1, runs + 1):
                one_lab(ONE, backend, "one", figures)
                one_lab(TWO, backend, "two", figures)
                report(run, runs, figures)
        finally:
            stack.destroy(TWO, backend, stream=False)
            stack.remove_stack(TWO, backend)
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
