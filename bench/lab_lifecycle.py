"""Benchmark: warm setup, `pulumi up` and `pulumi destroy` of the reference lab.

Runs each several times on a throw-away stack (slot 29, its own state folder, label
purpose=bench) and writes the raw figures and their medians to bench/results/lab_lifecycle.json.
This machine is shared and noisy: quote medians, never a single run.

Usage: .venv/bin/python bench/lab_lifecycle.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge import cleanup, stack  # noqa: E402
from edge.plan import LABEL_PURPOSE  # noqa: E402

STACK, SLOT = "bench-life", 29


def timed(func, *args, **kwargs) -> float:
    started = time.monotonic()
    func(*args, **kwargs)
    return round(time.monotonic() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    cleanup.remove({LABEL_PURPOSE: "bench"})
    figures: dict[str, list[float]] = {"setup_warm_s": [], "pulumi_up_s": [],
                                       "pulumi_up_no_change_s": [], "pulumi_destroy_s": []}
    with tempfile.TemporaryDirectory() as state:
        backend = stack.Backend(state=Path(state))
        stack.select_stack(STACK, backend, {"slot": str(SLOT), "purpose": "bench"})
        try:
            for run in range(1, runs + 1):
                figures["setup_warm_s"].append(timed(subprocess.run, [str(ROOT / "scripts/setup")],
                                                     check=True, capture_output=True))
                figures["pulumi_up_s"].append(timed(stack.up, STACK, backend, stream=False))
                figures["pulumi_up_no_change_s"].append(
                    timed(stack.up, STACK, backend, stream=False))
                figures["pulumi_destroy_s"].append(timed(stack.destroy, STACK, backend,
                                                         stream=False))
                print(f"run {run}/{runs}: " + ", ".join(f"{k}={v[-1]}" for k, v in figures.items()),
                      file=sys.stderr)
        finally:
            stack.destroy(STACK, backend, stream=False)
            stack.remove_stack(STACK, backend)
            cleanup.remove({LABEL_PURPOSE: "bench"})
    result = {
        "benchmark": "lab_lifecycle",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cores": __import__("os").cpu_count(), "python": platform.python_version()},
        "runs": runs,
        "median": {k: statistics.median(v) for k, v in figures.items()},
        "raw": figures,
    }
    out = ROOT / "bench" / "results" / "lab_lifecycle.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median"], indent=2))


if __name__ == "__main__":
    main()
