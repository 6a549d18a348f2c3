"""What every benchmark shares: a throw-away stack, timing, and the results file.

Each benchmark runs on its own stack (own slot, own state folder, label purpose=bench) and writes
raw figures plus medians to bench/results/<name>.json. This machine is shared and noisy: quote
medians of several runs, never a single one.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge import cleanup, stack  # noqa: E402
from edge.plan import LABEL_PURPOSE  # noqa: E402


def timed(func: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Seconds `func(*args, **kwargs)` took, to the hundredth."""
    started = time.monotonic()
    func(*args, **kwargs)
    return round(time.monotonic() - started, 2)


@contextlib.contextmanager
def bench_stack(name: str, slot: int) -> Iterator[stack.Backend]:
    """A fresh stack for the benchmark; destroyed and forgotten afterwards, leftovers by label."""
    cleanup.remove({LABEL_PURPOSE: "bench"})
    with tempfile.TemporaryDirectory() as state:
        backend = stack.Backend(state=Path(state))
        stack.select_stack(name, backend, {"slot": str(slot), "purpose": "bench"})
        try:
            yield backend
        finally:
            stack.destroy(name, backend, stream=False)
            stack.remove_stack(name, backend)
            cleanup.remove({LABEL_PURPOSE: "bench"})


def report(run: int, runs: int, figures: dict[str, list[float]]) -> None:
    print(f"run {run}/{runs}: " + ", ".join(f"{k}={v[-1]}" for k, v in figures.items()),
          file=sys.stderr, flush=True)


def write_results(name: str, runs: int, figures: dict[str, list[float]]) -> None:
    """Medians and raw figures to bench/results/<name>.json, medians to stdout."""
    result = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_end": os.getloadavg()},
        "runs": runs,
        "median": {k: statistics.median(v) for k, v in figures.items() if v},
        "raw": figures,
    }
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median"], indent=2))
