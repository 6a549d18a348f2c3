"""Which routes a shift onto the secondary border moves, computed from the stack's nodes alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edge.lab.paths import PathError, shifted_routes, topology_routes
from edge.model.lab import Lab, Node
from edge.model.plan import stack_plan
from edge.model.topology import load_topology

REFERENCE = Path(__file__).resolve().parents[2] / "topology" / "reference.yaml"


@pytest.fixture(scope="module")
def reference() -> Lab:
    """A slot-0 stack of the reference topology, its nodes as edge/infra/lab.py describes them."""
    plan = stack_plan(load_topology(REFERENCE), "lab", 0)
    return Lab("lab", 0, plan.zone, {}, {
        node.name: Node(node.name, node.role, node.ansible_role, node.tier, node.container_name,
                        node.container_name,
                        {net: str(a) for net, a in node.addresses.items()}, tuple(node.routes))
        for node in plan.nodes.values()})


def test_topology_routes_are_the_static_routes_of_the_outputs(reference: Lab) -> None:
    routes = topology_routes(reference)
    assert routes["client"] == [("198.18.1.0/24", "198.18.0.1"), ("198.18.2.0/24", "198.18.0.1")]
    assert routes["firewall"] == [("198.18.0.0/24", "198.18.1.1")]
    assert "border2" not in routes and "controller" not in routes


def test_shift_moves_every_route_through_the_primary_border(reference: Lab) -> None:
    assert shifted_routes(reference, "border2") == {
        "client": [("198.18.1.0/24", "198.18.0.2"), ("198.18.2.0/24", "198.18.0.2")],
        "resolver": [("198.18.1.0/24", "198.18.0.2"), ("198.18.2.0/24", "198.18.0.2")],
        "firewall": [("198.18.0.0/24", "198.18.1.3")],
    }


@pytest.mark.parametrize("to,words", [
    ("border3", "no node 'border3'"),
    ("border", "no static route goes through another 'border' node than border"),
    ("lb1", "no static route goes through another 'loadbalancer' node"),
])
def test_impossible_shift_is_refused(reference: Lab, to: str, words: str) -> None:
    with pytest.raises(PathError, match=words):
        shifted_routes(reference, to)


def test_shift_needs_the_secondary_on_each_network_of_the_path(reference: Lab) -> None:
    border2 = replace(reference.nodes["border2"], addresses={"internet": "198.18.0.2"})
    with pytest.raises(PathError, match="firewall reaches 198.18.0.0/24 through border on "
                                        "transit, where border2 has no address"):
        shifted_routes(replace(reference, nodes=reference.nodes | {"border2": border2}),
                       "border2")
