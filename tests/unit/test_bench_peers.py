"""The peers' benchmarks' pure parts (bench/molecule_peer.py, bench/emulator_peer.py): the
Molecule scenario's networks are the address plan's blocks, and per-node figures."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from emulator_peer import per_node  # noqa: E402
from molecule_peer import (  # noqa: E402
    MOLECULE_SLOT,
    PROJECT,
    SCENARIO,
    address_problems,
    bench_extra,
    scenario_subnets,
)

from edge.model.plan import stack_plan  # noqa: E402
from edge.model.topology import load_topology  # noqa: E402

MOLECULE = yaml.safe_load((PROJECT / "molecule" / SCENARIO / "molecule.yml").read_text())


def plan_networks() -> dict[str, tuple[str, str]]:
    plan = stack_plan(load_topology(ROOT / "topology" / "reference.yaml"), "hpeer-mol",
                      MOLECULE_SLOT, "hpeer")
    return {name: (str(n.subnet), str(n.gateway)) for name, n in plan.networks.items()}


def test_the_scenario_creates_the_plans_blocks():
    assert scenario_subnets(MOLECULE) == {"hpeer-mol-dmz": plan_networks()["dmz"],
                                          "hpeer-mol-paas": plan_networks()["paas"]}
    assert address_problems(MOLECULE, plan_networks()) == []


def test_a_moved_or_missing_network_is_named():
    moved = copy.deepcopy(MOLECULE)
    networks = moved["platforms"][0]["docker_networks"]
    networks[0]["ipam_config"] = [{"subnet": "172.30.0.0/24", "gateway": "172.30.0.1"}]
    del networks[1]
    problems = address_problems(moved, plan_networks())
    assert len(problems) == 2
    assert "hpeer-mol-paas is not created" in problems[0]
    assert "hpeer-mol-dmz is ('172.30.0.0/24', '172.30.0.1')" in problems[1]
    assert f"slot {MOLECULE_SLOT}" in problems[1]


def test_the_bench_extra_names_molecule_and_its_docker_driver():
    assert {r.split("==")[0] for r in bench_extra()} == {"molecule", "molecule-plugins[docker]"}


def test_per_node_figures():
    assert per_node(5.0, 6) == 0.833
    assert per_node(9.58, 13) == 0.737
