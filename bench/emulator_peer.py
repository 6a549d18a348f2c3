"""Benchmark: `pulumi up` / `pulumi destroy` of the reference lab per node, against a lab
emulator's published figure and the Docker SDK floor (bench/floor.py's), measured alternately.

The peer the project wanted here is Kathará (PyPI `kathara`), deploying the same nodes and networks
with the base image. It cannot run on this machine: its Docker manager needs the network plugin
`kathara/katharanp_vde` (3.8; `kathara/katharanp` before) and pulls it from a container registry
at first use (`kathara check`: "Installing Kathara Network Plugin ... APIError 500 ... error
resolving plugin reference", no such host), and the plugin cannot be built here either: the Go
module proxy refuses its source (`go mod download github.com/KatharaFramework/NetworkPlugin@latest`
and at any commit: "403 Forbidden, This module version is not available"), as it refuses
containerlab's. So the peer is containerlab's published figure, 6 nodes and 10 links deployed in
about 5 s after its concurrency work, taken per node (a constant, not measured here; the ratio to
it only says whether the order of magnitude matches), and the floor, measured here.

Usage: .venv/bin/python bench/emulator_peer.py [--runs N]
"""

from __future__ import annotations

from common import ROOT, Figures, bench_stack, main, report, timed
from floor import THREADS, floor_cycle, floor_of

from edge.engines import stack
from edge.engines.images import image_ref
from edge.model.plan import stack_plan
from edge.model.topology import load_topology

NAME = "emulator_peer"
STACK, SLOT, PURPOSE = "hpeer-emu", 19, "hpeer-emu"
# containerlab's published deploy time: 6 nodes, 10 links, about 5 s.
CONTAINERLAB_NODES, CONTAINERLAB_S = 6, 5.0


def per_node(seconds: float, nodes: int) -> float:
    """Seconds per node, to the thousandth."""
    return round(seconds / nodes, 3)


def measure(runs: int) -> Figures:
    """Floor and Pulumi alternately, each up and down, per node of the reference lab."""
    plan = stack_plan(load_topology(ROOT / "topology" / "reference.yaml"), STACK, SLOT, PURPOSE)
    floor = floor_of(plan, image_ref(ROOT))
    nodes = len(plan.nodes)
    figures: Figures = {k: [] for k in (
        "pulumi_up_per_node_s", "floor_up_per_node_s", "containerlab_per_node_s",
        "pulumi_destroy_per_node_s", "floor_down_per_node_s", "nodes", "networks",
        "attachments")}
    with bench_stack(STACK, SLOT, PURPOSE) as backend:
        for run in range(1, runs + 1):
            up, down = floor_cycle(floor, THREADS, 0.0)
            figures["floor_up_per_node_s"].append(per_node(up, nodes))
            figures["floor_down_per_node_s"].append(per_node(down, nodes))
            figures["pulumi_up_per_node_s"].append(
                per_node(timed(stack.up, STACK, backend, stream=False), nodes))
            figures["pulumi_destroy_per_node_s"].append(
                per_node(timed(stack.destroy, STACK, backend, stream=False), nodes))
            figures["containerlab_per_node_s"].append(per_node(CONTAINERLAB_S, CONTAINERLAB_NODES))
            figures["nodes"].append(nodes)
            figures["networks"].append(len(plan.networks))
            figures["attachments"].append(sum(len(n.addresses) for n in plan.nodes.values()))
            report(run, runs, figures)
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
