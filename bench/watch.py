"""Benchmark: how fast the watcher tells, and what it costs. On one lab brought up as `edge up`
does: every incident of the catalog replayed N times (time-to-detect, time-to-recover), then a
quiet soak with no fault (alarms raised must be zero) during which the probe agents' CPU time is
read from /proc.

Usage: .venv/bin/python bench/watch.py [--runs N] [--soak-s SECONDS]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

from common import ROOT, Figures, bench_stack, edge_up, report, run_benchmark, summary

from edge.lab.watch import Watcher
from edge.model.contract import expand, load_contract
from edge.model.lab import Lab
from edge.workflow.replay import load_catalog, run_replay

NAME = "watch"
STACK, SLOT = "bench-watch", 17
CONTRACT = load_contract(ROOT / "contract.yaml")
TICKS = os.sysconf("SC_CLK_TCK")
SOAK_S = 600.0


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of the processes (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def soak(lab: Lab, seconds: float) -> dict[str, float]:
    """A quiet run: alarms raised, probes made, and the agents' CPU as % of one core."""
    with Watcher(expand(CONTRACT, lab), CONTRACT) as watcher:
        if not watcher.wait_green(15):
            raise SystemExit(f"not green before the soak: {watcher.down()}")
        pids = watcher.agent_pids()
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(min(30.0, seconds))
            print(f"soak: {time.monotonic() - t0:.0f}/{seconds:.0f}s, "
                  f"{sum(e.kind == 'alarm' for e in watcher.events)} alarms", file=sys.stderr)
        cpu = (cpu_seconds(pids) - cpu0) / (time.monotonic() - t0) * 100
    return {"soak_s": seconds, "soak_alarms": sum(e.kind == "alarm" for e in watcher.events),
            "soak_probes": len(watcher.samples), "agents_cpu_pct_of_one_core": round(cpu, 2)}


def measure(runs: int, soak_s: float = SOAK_S) -> Figures:
    """Every incident replayed `runs` times, then one quiet soak of `soak_s` seconds."""
    catalog = load_catalog(ROOT / "replays.yaml")
    figures: Figures = {f"{name}_{what}_s": [] for name in catalog
                        for what in ("detect", "recover")}
    with bench_stack(STACK, SLOT) as backend:
        lab = edge_up(STACK, backend).lab
        for run in range(1, runs + 1):
            for name, incident in catalog.items():
                result = run_replay(incident, lab, CONTRACT, progress=lambda _: None)
                if not result.ok:
                    raise SystemExit(f"{name}: {result.problems}")
                figures[f"{name}_detect_s"].append(result.detect_s)
                figures[f"{name}_recover_s"].append(result.recover_s)
            report(run, runs, figures)
        quiet = soak(lab, soak_s)
    return figures | {k: [v] for k, v in quiet.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=summary(__doc__))
    parser.add_argument("--runs", type=int, default=5, help="how many times (default 5)")
    parser.add_argument("--soak-s", type=float, default=SOAK_S,
                        help=f"length of the quiet soak (default {SOAK_S:g})")
    args = parser.parse_args()
    out = run_benchmark(NAME, functools.partial(measure, soak_s=args.soak_s), args.runs)
    print(json.dumps(json.loads(out.read_text())["median"], indent=2))
