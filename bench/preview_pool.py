"""Benchmark (issue 13): four `edge preview` commands of different one-host changes started at
once, on one staging stack (they take turns on its lock) against a pool of two staging stacks on
two engines of a Swarm (`--staging a,b`, b placed wholly on the second engine by the topology's
`placement.stacks`: two at a time). Each staging stack is brought to the live revision by a
first preview before any figure; the figures are the wall time until all four verdicts.

On this machine the second engine is a dockerd in a container of the same two cores: the pool
overlaps what a preview waits for (Pulumi, Ansible's round trips, probes, timers), not CPU. On
engines of other machines each staging stack brings its own.

Usage: .venv/bin/python bench/preview_pool.py [--runs N]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import ROOT, Figures, bench_stack, edge_up, main, on_two_engines, report, second_engine

from edge.engines import stack

NAME = "preview_pool"
LIVE, LIVE_SLOT = "bench-live", 18
HERE, THERE = "bench-staging", "bench-staging2"    # the pool: THERE on the second engine
POOL = {HERE: 19, THERE: 21}
CHANGES = ["dns-ttl", "lb2-health-checks-slower", "dns-lists-lbs-in-another-order",
           "border2-accepts-transit-too"]    # one-host changes, each SAFE


def previews_at_once(backend: stack.Backend, staging: str, changes: list[str], out: Path) -> float:
    """Start `edge preview` of every change at once on `staging` (a stack or a pool), each its
    own command; the seconds until the last verdict. Any verdict but SAFE stops the benchmark."""
    def preview(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge.cli", "preview",
             str(ROOT / "changes" / "examples" / f"{name}.yaml"), "--stack", LIVE,
             "--staging", staging, "--out", str(out / name)],
            cwd=ROOT, env={**os.environ, "EDGE_STATE": str(backend.state)}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(changes)) as pool:
        done = dict(zip(changes, pool.map(preview, changes)))
    seconds = round(time.monotonic() - started, 2)
    failed = {name: run.stdout[-800:] for name, run in done.items() if run.returncode != 0}
    if failed:
        raise SystemExit(f"previews on {staging} not SAFE: {failed}")
    return seconds


def measure(runs: int) -> Figures:
    figures: Figures = {"one_staging_s": [], "pool_of_two_s": []}
    pool = ",".join(POOL)
    with second_engine() as endpoint, bench_stack(LIVE, LIVE_SLOT) as backend, \
            tempfile.TemporaryDirectory() as tmp:
        # The live stack stays here; the topology only places THERE on the second engine.
        topology = on_two_engines(endpoint, Path(tmp) / "pool.yaml", tiers=(), stacks=(THERE,))
        for name, slot in {LIVE: LIVE_SLOT, **POOL}.items():
            stack.select_stack(name, backend, {"slot": str(slot), "purpose": "bench",
                                               "topology": str(topology)})
        try:
            edge_up(LIVE, backend)
            previews_at_once(backend, pool, CHANGES[:2], Path(tmp) / "warm")
            for run in range(1, runs + 1):
                one = previews_at_once(backend, HERE, CHANGES, Path(tmp) / "one")
                two = previews_at_once(backend, pool, CHANGES, Path(tmp) / "two")
                figures["one_staging_s"].append(one)
                figures["pool_of_two_s"].append(two)
                report(run, runs, figures)
        finally:
            for name in POOL:
                stack.destroy(name, backend, stream=False)
                stack.remove_stack(name, backend)
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
