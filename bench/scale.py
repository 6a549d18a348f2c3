"""Benchmark: cost as the lab grows. The reference lab generated at 13, 26 and 52 nodes (more
load balancers, name servers and execution nodes, edge/model/topogen.py); at each size `edge up`
(pulumi up, converge, verify, timed by the same function the command runs), a second converge
(idempotent) and `pulumi destroy`, on a fresh stack each time.

Growth should be linear or better: each figure at 26 and 52 nodes is compared with its 13-node
value (the ratio column; 2× and 4× are linear). Sizes run smallest first within each run, so a
run that cannot finish (the machine out of memory at 52 nodes) still leaves the smaller sizes.

Usage: .venv/bin/python bench/scale.py [--runs N]
  EDGE_BENCH_SCALE_STACK / EDGE_BENCH_SCALE_SLOT run it on another stack name and slot (a
  lab user's own lane on a shared machine); default bench-scale at slot 20.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from common import Figures, bench_stack, edge_up, main, report, timed
from figures import SCALE_SIZES

from edge.engines import stack
from edge.model import topogen
from edge.workflow import rollout
from edge.workflow.up import target_revision

NAME = "scale"
# Slot 20 is edge_up's: benchmarks run one after another, never two at once.
STACK = os.environ.get("EDGE_BENCH_SCALE_STACK", "bench-scale")
SLOT = int(os.environ.get("EDGE_BENCH_SCALE_SLOT", "20"))


def converge_again_ok(backend: stack.Backend) -> None:
    result = rollout.configuration(STACK, target_revision(backend.state, STACK).revision, backend)
    if not result.ok or result.changed:
        raise SystemExit(f"second converge: {result.status}, {result.changed} changed")


def measure_size(nodes: int, folder: Path, backend: stack.Backend, figures: Figures) -> None:
    """One fresh lab of `nodes` nodes: up (its three stages), converge again, destroy."""
    path = folder / f"scale-{nodes}.yaml"
    topology = topogen.write(path, *topogen.counts_for(nodes))
    if len(topology.nodes) != nodes:
        raise SystemExit(f"{path}: {len(topology.nodes)} nodes generated, not {nodes}")
    stack.set_config(STACK, {"topology": str(path)})
    started = time.monotonic()
    up = edge_up(STACK, backend)
    figures[f"up_{nodes}_s"].append(round(time.monotonic() - started, 2))
    figures[f"pulumi_up_{nodes}_s"].append(round(up.timings["pulumi up"], 2))
    figures[f"converge_{nodes}_s"].append(round(up.timings["converge"], 2))
    figures[f"verify_{nodes}_s"].append(round(up.timings["verify"], 2))
    figures[f"flows_{nodes}"].append(len(up.results))
    figures[f"converge_again_{nodes}_s"].append(timed(converge_again_ok, backend))
    figures[f"destroy_{nodes}_s"].append(timed(stack.destroy, STACK, backend, stream=False))


def measure(runs: int) -> Figures:
    """Every size, smallest first, `runs` times."""
    keys = ("up_{}_s", "pulumi_up_{}_s", "converge_{}_s", "verify_{}_s", "flows_{}",
            "converge_again_{}_s", "destroy_{}_s")
    figures: Figures = {key.format(n): [] for n in SCALE_SIZES for key in keys}
    with bench_stack(STACK, SLOT) as backend, tempfile.TemporaryDirectory() as folder:
        for run in range(1, runs + 1):
            for nodes in SCALE_SIZES:
                measure_size(nodes, Path(folder), backend, figures)
                report(run, runs, {k: v for k, v in figures.items() if f"_{nodes}" in k})
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
