"""Benchmark: `edge preview` of a one-host change to the loadbalancer role against the tool a
role author would pick instead, Molecule (Docker driver), measured alternately in one run.

- edge: `edge preview changes/examples/lb2-health-checks-slower.yaml` (only lb2's
  loadbalancer_check_interval_ms changes) to a SAFE verdict, staging already up, through the
  function the command calls (`run_preview`). It proves the change keeps the whole contract (every
  flow, measured before and after on a full copy of the lab: border, firewall, DNS, both load
  balancers, the PaaS) and the redundant sets, with the change's timers waited out.
- Molecule: `molecule test -s loadbalancer` of bench/peers/molecule (create, prepare, converge,
  idempotence, verify, destroy), four containers of the project's base image (the load balancer,
  two stand-in backends, a client), verify being tests/infra/test_loadbalancer.py's checks in
  testinfra. It proves the role converges from scratch, converges again with no change, and that
  one load balancer on its own then passes those checks; not that a lab keeps working.

Molecule comes from pyproject's `bench` extra. Objects are named and labelled `hpeer-*` (slots
16-18), so this benchmark can run beside others.

Usage: .venv/bin/python bench/molecule_peer.py [--runs N]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import yaml
from common import ROOT, Figures, bench_stack, edge_up, main, report

from edge.engines import stack
from edge.engines.images import image_ref
from edge.model.change import load_change
from edge.model.plan import stack_plan
from edge.model.topology import load_topology
from edge.workflow.staged import SAFE, run_preview

NAME = "molecule_peer"
PURPOSE = "hpeer"
LIVE, LIVE_SLOT = "hpeer-live", 16
STAGING, STAGING_SLOT = "hpeer-staging", 17
MOLECULE_SLOT = 18   # the address blocks of the Molecule scenario's networks
PROJECT = ROOT / "bench" / "peers" / "molecule"
SCENARIO = "loadbalancer"
CHANGE = ROOT / "changes" / "examples" / "lb2-health-checks-slower.yaml"
LOG = Path("/tmp") / "edge-bench-molecule.log"
# The project's network of each of the scenario's networks (their addresses must be its blocks).
NETWORKS = {"hpeer-mol-dmz": "dmz", "hpeer-mol-paas": "paas"}


def scenario_subnets(molecule: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """(subnet, gateway) of every network a Molecule scenario creates, by name."""
    return {net["name"]: (ipam["subnet"], ipam["gateway"])
            for platform in molecule.get("platforms") or []
            for net in platform.get("docker_networks") or []
            for ipam in net.get("ipam_config") or []}


def address_problems(molecule: dict[str, Any],
                     plan_networks: dict[str, tuple[str, str]]) -> list[str]:
    """What keeps the scenario's networks from being the plan's blocks (`plan_networks`: the
    project's network -> (subnet, gateway) at MOLECULE_SLOT): the plan is what keeps them off the
    host's routes and other stacks' networks."""
    found = scenario_subnets(molecule)
    problems = [f"network {name} is not created by the scenario (docker_networks)"
                for name in NETWORKS if name not in found]
    problems += [f"network {name} is {found[name]}, the plan's {net} at slot {MOLECULE_SLOT} is "
                 f"{plan_networks[net]}" for name, net in NETWORKS.items()
                 if name in found and found[name] != plan_networks[net]]
    return problems


def bench_extra() -> list[str]:
    """The `bench` extra of pyproject.toml: what to install when Molecule is missing."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]["optional-dependencies"]["bench"]


def molecule_command() -> Path:
    """This environment's `molecule`, with the message to fix it when it is not installed."""
    command = Path(sys.executable).parent / "molecule"
    if not command.exists():
        raise SystemExit(f"{command} is missing: install pyproject's `bench` extra: "
                         f"{Path(sys.executable).parent / 'pip'} install "
                         + " ".join(f"'{r}'" for r in bench_extra()))
    return command


def check_scenario() -> None:
    """Stop before creating anything when the scenario's addresses left the plan's blocks."""
    molecule = yaml.safe_load((PROJECT / "molecule" / SCENARIO / "molecule.yml").read_text())
    plan = stack_plan(load_topology(ROOT / "topology" / "reference.yaml"), "hpeer-mol",
                      MOLECULE_SLOT, PURPOSE)
    problems = address_problems(molecule, {name: (str(n.subnet), str(n.gateway))
                                           for name, n in plan.networks.items()})
    if problems:
        raise SystemExit(f"{PROJECT / 'molecule' / SCENARIO / 'molecule.yml'}: "
                         + "; ".join(problems) + ". Write the plan's blocks there.")


def molecule_cycle(command: Path, image: str) -> float:
    """Seconds of `molecule test` of the scenario (its output in LOG; a failure stops the
    benchmark with the log's end: a cycle that failed measured nothing)."""
    # Molecule runs ansible-playbook and pytest from PATH: this environment's come first.
    env = os.environ | {"EDGE_BASE_IMAGE": image, "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1",
                        "PATH": f"{command.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    started = time.monotonic()
    with LOG.open("w") as log:
        done = subprocess.run([str(command), "test", "-s", SCENARIO], cwd=PROJECT, env=env,
                              stdout=log, stderr=subprocess.STDOUT, check=False)
    took = round(time.monotonic() - started, 2)
    if done.returncode:
        tail = "\n".join(LOG.read_text().splitlines()[-30:])
        raise SystemExit(f"molecule test -s {SCENARIO} exited {done.returncode} (log {LOG}):\n"
                         f"{tail}")
    return took


def quiet(_: str) -> None:
    """Progress lines are not part of the figures."""


def measure(runs: int) -> Figures:
    """A preview of the one-host change and a Molecule cycle, alternately, `runs` times."""
    command = molecule_command()
    check_scenario()
    image = image_ref(ROOT)
    change = load_change(CHANGE)
    contract = ROOT / "contract.yaml"
    figures: Figures = {"preview_s": [], "molecule_test_s": [], "preview_not_safe": []}
    with bench_stack(LIVE, LIVE_SLOT, PURPOSE) as backend:
        stack.select_stack(STAGING, backend, {"slot": str(STAGING_SLOT), "purpose": PURPOSE})
        try:
            edge_up(LIVE, backend)
            # Staging is brought up by a first preview; the figures are with staging up.
            run_preview(change, LIVE, STAGING, contract, backend, progress=quiet)
            for run in range(1, runs + 1):
                started = time.monotonic()
                preview = run_preview(change, LIVE, STAGING, contract, backend, progress=quiet)
                figures["preview_s"].append(round(time.monotonic() - started, 2))
                # The preview did all its work whatever it said; a verdict other than the
                # example's SAFE (a loaded machine slows flows the change never touched) is
                # counted, and its reasons shown, rather than ending the benchmark.
                figures["preview_not_safe"].append(int(preview.verdict != SAFE))
                if preview.verdict != SAFE:
                    print(f"preview said {preview.verdict}: {preview.reasons}", file=sys.stderr)
                figures["molecule_test_s"].append(molecule_cycle(command, image))
                report(run, runs, figures)
        finally:
            stack.destroy(STAGING, backend, stream=False)
            stack.remove_stack(STAGING, backend)
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
