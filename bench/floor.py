"""Benchmark: what `pulumi up` / `pulumi destroy` of the reference lab cost over the floor (the
same networks, volume and containers created, started and removed by the Docker SDK alone, from
10 threads), measured alternately in the same run, and where the difference goes.

The floor uses the providers' own `create_in`/`delete` (edge/infra/docker_provider.py) with the
grace sleep after each start set to 0 in this process, so it creates exactly what Pulumi creates
(same names, labels, addresses, iptables rule per bridge) and nothing more. Then each suspected
cost is measured on its own:
- the grace sleep (`START_GRACE_S`), at 10 threads and at the 4 threads the Python dynamic
  provider's gRPC server has;
- `pulumi up --parallel 16` (the CLI's default is 8);
- the provider's pool widened to 16 threads, and the grace sleep replaced by a wait on the
  container's state (bench/pulumi_patch: in Pulumi's own processes, for one run only);
- the fixed cost of a run (`pulumi up` with no change), the CLI's start-up, the dynamic provider
  process's start-up, the program's imports.

Usage: .venv/bin/python bench/floor.py [--runs N]
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import docker
from common import ROOT, Figures, bench_stack, environment, main, report, timed

from edge.engines import stack
from edge.engines.images import image_ref
from edge.infra import docker_provider
from edge.infra.docker_provider import ContainerProvider, NetworkProvider, VolumeProvider
from edge.model.plan import LABEL_NODE, LABEL_ROLE, StackPlan, stack_plan
from edge.model.topology import load_topology

NAME = "floor"
STACK, SLOT = "bench-floor", 22
THREADS = 10
PATCH = ROOT / "bench" / "pulumi_patch"
Props = dict[str, Any]
Pulumi = Callable[[stack.Backend], None]


@dataclass(frozen=True)
class Floor:
    """The provider inputs of every object of the stack, as edge/infra/lab.py builds them."""

    networks: list[Props]
    volumes: list[Props]
    containers: list[Props]


def floor_of(plan: StackPlan, image: str) -> Floor:
    """The inputs EdgeLab gives each provider for `plan`, with no node stopped."""
    networks = [{"name": n.docker_name, "subnet": str(n.subnet), "gateway": str(n.gateway),
                 "internal": True, "labels": plan.labels()} for n in plan.networks.values()]
    volumes = [{"name": name, "labels": plan.labels()} for name in plan.volumes.values()]
    containers = [{
        "name": node.container_name, "image": image, "hostname": node.hostname,
        "networks": {plan.networks[n].docker_name: str(a) for n, a in node.addresses.items()},
        "labels": plan.labels(**{LABEL_NODE: node.name, LABEL_ROLE: node.role}),
        "cap_add": list(node.capabilities), "sysctls": node.sysctls,
        "env": {"EDGE_ROUTES": ";".join(node.routes), "EDGE_NODE": node.name,
                "EDGE_ROLE": node.role},
        "mounts": dict(node.volumes), "dns": list(node.dns), "command": [],
        "restart_policy": "unless-stopped", "running": True,
    } for node in plan.nodes.values()]
    return Floor(networks, volumes, containers)


@contextlib.contextmanager
def grace(seconds: float) -> Iterator[None]:
    """The providers' sleep after each container start, set for this process meanwhile."""
    before = docker_provider.START_GRACE_S
    docker_provider.START_GRACE_S = seconds
    try:
        yield
    finally:
        docker_provider.START_GRACE_S = before


def floor_up(floor: Floor, threads: int) -> list[tuple[Any, str]]:
    """Networks and volumes at once, then every container (each needs its networks), from
    `threads` threads; returns (provider, id) of everything made, containers first."""
    client = docker.from_env(timeout=60)
    network, volume, container = NetworkProvider(), VolumeProvider(), ContainerProvider()
    with ThreadPoolExecutor(threads) as pool:
        nets = [pool.submit(network.create_in, client, p) for p in floor.networks]
        vols = [pool.submit(volume.create_in, client, p) for p in floor.volumes]
        made = [(network, f.result()) for f in nets] + [(volume, f.result()) for f in vols]
        boxes = [pool.submit(container.create_in, client, p) for p in floor.containers]
        return [(container, f.result()) for f in boxes] + made


def floor_down(made: list[tuple[Any, str]], threads: int) -> None:
    """Containers first, then networks and volumes, each group from `threads` threads."""
    containers = [(p, i) for p, i in made if isinstance(p, ContainerProvider)]
    rest = [(p, i) for p, i in made if not isinstance(p, ContainerProvider)]
    with ThreadPoolExecutor(threads) as pool:
        for group in (containers, rest):
            list(pool.map(lambda item: item[0].delete(item[1], {}), group))


def floor_cycle(floor: Floor, threads: int, sleep_s: float) -> tuple[float, float]:
    """(seconds up, seconds down) of the floor with `sleep_s` of grace after each start (a
    failure leaves objects that bench_stack removes by label)."""
    with grace(sleep_s):
        started = time.monotonic()
        made = floor_up(floor, threads)
        up = round(time.monotonic() - started, 2)
    return up, timed(floor_down, made, threads)


def pulumi_up(*args: str, **env: str) -> Pulumi:
    """`pulumi up` as edge.engines.stack.up runs it, plus CLI `args`, with `env` in Pulumi's processes
    (PYTHONPATH set to bench/pulumi_patch when `env` asks for one of its experiments)."""
    def run(backend: stack.Backend) -> None:
        extra = {"PYTHONPATH": str(PATCH)} | env if env else {}
        with environment(extra):
            stack.pulumi(["up", "--yes", "--skip-preview", "--suppress-outputs", "--stack", STACK,
                          *args], backend)
    return run


VARIANTS: dict[str, Pulumi] = {
    "pulumi_up_parallel_16_s": pulumi_up("--parallel", "16"),
    "pulumi_up_16_provider_threads_s": pulumi_up("--parallel", "16",
                                                 EDGE_BENCH_PROVIDER_THREADS="16"),
    "pulumi_up_state_wait_s": pulumi_up(EDGE_BENCH_START_WAIT="1"),
    "pulumi_up_both_s": pulumi_up("--parallel", "16", EDGE_BENCH_PROVIDER_THREADS="16",
                                  EDGE_BENCH_START_WAIT="1"),
}


def provider_start() -> float:
    """Seconds from starting the dynamic provider process (the command Pulumi's shim runs) to
    its port line, the moment it can serve a create."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.dynamic"], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    try:
        if not process.stdout or not process.stdout.readline():
            raise SystemExit("`python -m pulumi.dynamic` printed no port line")
        return round(time.monotonic() - started, 2)
    finally:
        process.kill()
        process.wait()


def measure(runs: int) -> Figures:
    """Floor and Pulumi alternately, then the variants that say where Pulumi's time goes."""
    floor = floor_of(stack_plan(load_topology(ROOT / "topology" / "reference.yaml"), STACK, SLOT,
                                "bench"), image_ref(ROOT))
    figures: Figures = {k: [] for k in (
        "floor_up_s", "floor_down_s", "pulumi_up_s", "pulumi_destroy_s", "floor_up_grace_s",
        "floor_up_4_threads_grace_s", *VARIANTS, "pulumi_up_no_change_s", "pulumi_cli_start_s",
        "provider_start_s", "program_imports_s")}
    with bench_stack(STACK, SLOT) as backend:
        for run in range(1, runs + 1):
            up, down = floor_cycle(floor, THREADS, 0.0)
            figures["floor_up_s"].append(up)
            figures["floor_down_s"].append(down)
            figures["pulumi_up_s"].append(timed(stack.up, STACK, backend, stream=False))
            figures["pulumi_up_no_change_s"].append(timed(stack.up, STACK, backend, stream=False))
            figures["pulumi_destroy_s"].append(timed(stack.destroy, STACK, backend, stream=False))
            figures["floor_up_grace_s"].append(
                floor_cycle(floor, THREADS, docker_provider.START_GRACE_S)[0])
            figures["floor_up_4_threads_grace_s"].append(
                floor_cycle(floor, 4, docker_provider.START_GRACE_S)[0])
            for key, variant in VARIANTS.items():
                figures[key].append(timed(variant, backend))
                stack.destroy(STACK, backend, stream=False)
            figures["pulumi_cli_start_s"].append(timed(stack.pulumi, ["version"], backend))
            figures["provider_start_s"].append(provider_start())
            figures["program_imports_s"].append(timed(
                subprocess.run, [sys.executable, "-c", "import pulumi, docker, edge.infra.lab, "
                                 "edge.infra.addressing, edge.engines.images, edge.infra.secret"],
                cwd=ROOT, check=True))
            report(run, runs, figures)
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
