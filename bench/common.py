"""What every benchmark shares: a throw-away stack, timing, the machine, and the results file.

Each benchmark runs on its own stack (own slot, own state folder, label purpose=bench) and writes
raw figures, medians, minima and maxima, with a description of the machine and its load before
and after, to bench/results/<name>.json. This machine is shared and noisy: quote medians of
several runs, never a single one, and compare two ways of doing a thing within the same run.

A benchmark module has a NAME and `measure(runs) -> Figures`; bench/run.py runs any of them, and
`python bench/<name>.py [--runs N]` runs one through `main`.
"""

from __future__ import annotations

import argparse
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

from edge.engines import cleanup, docker_exec, stack, swarm  # noqa: E402
from edge.model.plan import LABEL_PURPOSE  # noqa: E402
from edge.model.topology import load_topology  # noqa: E402
from edge.workflow.up import UpResult, bring_up  # noqa: E402

RESULTS = ROOT / "bench" / "results"
Figures = dict[str, list[float]]
Measure = Callable[[int], Figures]


def timed(func: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Seconds `func(*args, **kwargs)` took, to the hundredth."""
    started = time.monotonic()
    func(*args, **kwargs)
    return round(time.monotonic() - started, 2)


@contextlib.contextmanager
def bench_stack(name: str, slot: int, purpose: str = "bench") -> Iterator[stack.Backend]:
    """A fresh stack for the benchmark; destroyed and forgotten afterwards, leftovers by label
    (`purpose`: a benchmark that may run beside others labels its objects with its own)."""
    cleanup.remove({LABEL_PURPOSE: purpose})
    with tempfile.TemporaryDirectory() as state:
        backend = stack.Backend(state=Path(state))
        stack.select_stack(name, backend, {"slot": str(slot), "purpose": purpose})
        try:
            yield backend
        finally:
            stack.destroy(name, backend, stream=False)
            stack.remove_stack(name, backend)
            cleanup.remove({LABEL_PURPOSE: purpose})


REFERENCE = ROOT / "topology" / "reference.yaml"
# The Swarm of the benchmarks that use two engines: this engine and a second dockerd in a
# container of this machine (slot 15's spare addresses, as the Swarm test's).
SWARM, SWARM_SLOT, ENGINE = "hswarm-bench", 15, "engine2"


@contextlib.contextmanager
def second_engine() -> Iterator[str]:
    """A Swarm of this engine and a second one (ENGINE) for the benchmark, left at the end;
    yields the second engine's endpoint."""
    host = docker_exec.client()
    topology = load_topology(REFERENCE)
    swarm.init(swarm.swarm_plan(topology, SWARM_SLOT, SWARM), host)
    try:
        swarm.join_local(topology, ENGINE, host)
        yield swarm.members(host)[1].endpoint
    finally:
        swarm.leave(SWARM, host)


def on_two_engines(endpoint: str, out: Path, *, tiers: tuple[str, ...] = swarm.SPLIT_TIERS,
                   stacks: tuple[str, ...] = ()) -> Path:
    """The reference topology written to `out` with `tiers` and the whole `stacks` on the
    second engine (reached at `endpoint`); by default issue 13's split."""
    return swarm.split_topology(REFERENCE, ENGINE, endpoint, out, tiers=tiers,
                                stacks={name: ENGINE for name in stacks})


def edge_up(stack_name: str, backend: stack.Backend) -> UpResult:
    """`edge up` as the user's command runs it (the same function), stopping the benchmark on
    any problem: a figure measured on a broken lab is no figure."""
    up = bring_up(stack_name, ROOT / "contract.yaml", backend=backend)
    if not up.ok:
        raise SystemExit(f"edge up {stack_name} failed: converge {up.converge.status} "
                         f"{up.converge.errors}, down {up.down}, "
                         f"failing {[r.flow.name for r in up.results if not r.ok]}")
    return up


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in this process's environment meanwhile, and so in every process it starts
    (Pulumi through Backend.env, ansible-runner through its copy of os.environ)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def report(run: int, runs: int, figures: Figures) -> None:
    """One progress line per run on stderr: the last value of every figure."""
    print(f"run {run}/{runs}: " + ", ".join(f"{k}={v[-1]}" for k, v in figures.items() if v),
          file=sys.stderr, flush=True)


def _proc_field(path: str, key: str) -> str | None:
    """The value of the first `key: value` line of a /proc file (None if absent)."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    return None


def machine() -> dict[str, Any]:
    """What the figures were measured on: a figure means little without the machine and the
    versions of the engine and the CLI it drove."""
    memory_kb = _proc_field("/proc/meminfo", "MemTotal")
    try:
        docker = docker_exec.client().version().get("Version")
    except Exception as err:   # the figures stay useful without it; say why it is missing
        docker = f"unknown ({type(err).__name__})"
    pulumi = stack.pulumi(["version"], check=False)
    return {"cores": os.cpu_count(), "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
            "memory_gb": round(int(memory_kb.split()[0]) / 1024 ** 2, 1) if memory_kb else None,
            "kernel": platform.release(), "python": platform.python_version(), "docker": docker,
            "pulumi": pulumi.stdout.strip() if pulumi.returncode == 0 else "unknown"}


def write_results(name: str, runs: int, figures: Figures, about: dict[str, Any]) -> Path:
    """Medians, minima, maxima and raw figures, with `about` (the machine and its load), to
    bench/results/<name>.json."""
    measured = {k: v for k, v in figures.items() if v}
    result = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": about,
        "runs": runs,
        "median": {k: statistics.median(v) for k, v in measured.items()},
        "min": {k: min(v) for k, v in measured.items()},
        "max": {k: max(v) for k, v in measured.items()},
        "raw": figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return out


def run_benchmark(name: str, measure: Measure, runs: int) -> Path:
    """Measure `runs` times and record the results with the machine and its load before/after."""
    about = machine() | {"load_avg_before": list(os.getloadavg())}
    figures = measure(runs)
    about["load_avg_after"] = list(os.getloadavg())
    return write_results(name, runs, figures, about)


def summary(doc: str) -> str:
    """A module docstring's first paragraph on one line: a script's --help description."""
    return " ".join(doc.split("\n\n")[0].split())


def main(name: str, measure: Measure, doc: str | None) -> None:
    """`python bench/<name>.py [--runs N]`: one benchmark, its results file, its medians."""
    parser = argparse.ArgumentParser(description=summary(doc or name))
    parser.add_argument("--runs", type=int, default=5, help="how many times (default 5)")
    out = run_benchmark(name, measure, parser.parse_args().runs)
    print(json.dumps(json.loads(out.read_text())["median"], indent=2))
