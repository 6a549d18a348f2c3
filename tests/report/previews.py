"""A preview of the reference topology built here, without a lab: what the report tests draw.

The stack is the reference topology's plan at slot 1 (the nodes as edge/infra/lab.py describes
them), its flows the contract's, expanded for it; the measurements are written by hand: one
load balancer answers 503 (a partial outage), one name server goes silent behind the firewall
(redundancy lost, where it dies named), and rndc opens to the outside (security regression).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edge.lab.probes import Result
from edge.model.change import Change
from edge.model.contract import expand, load_contract
from edge.model.lab import Lab, Network, Node
from edge.model.plan import stack_plan
from edge.model.topology import load_topology
from edge.workflow.staged import HEADS, UNSAFE, Preview, compare

ROOT = Path(__file__).resolve().parents[2]
# flow -> (outcome, detail) after the change; every other flow answers as before.
BROKEN = {
    "http-api-at-lb@lb2": ("answered", {"status": 503}),
    "dns-api-at-nameserver@ns1": ("timeout", {}),
    "no-rndc-from-outside@ns1": ("open", {}),
}
WHERE = {"dns-api-at-nameserver@ns1": "dropped by the default deny of firewall"}


def reference_lab() -> Lab:
    """The reference topology's stack at slot 1, as its Pulumi outputs would describe it."""
    plan = stack_plan(load_topology(ROOT / "topology" / "reference.yaml"), "staging", 1)
    return Lab(plan.stack, plan.slot, plan.zone,
               {n.name: Network(n.name, n.docker_name, str(n.subnet))
                for n in plan.networks.values()},
               {n.name: Node(n.name, n.role, n.ansible_role, n.tier, n.container_name,
                             n.container_name, {k: str(a) for k, a in n.addresses.items()},
                             tuple(n.routes))
                for n in plan.nodes.values()})


def _healthy(flow) -> Result:
    """What a flow answers when nothing is broken."""
    if flow.must == "block":
        return Result(flow, "timeout", {}, 1000.0, True, "")
    if flow.kind == "http":
        return Result(flow, "answered", {"status": 200, "server": "dea1"}, 3.0, True, "")
    if flow.kind == "dns":
        return Result(flow, "answered", {"rcode": "NOERROR", "answers": ["198.18.18.10"]}, 2.0,
                      True, "")
    return Result(flow, "open", {}, 1.0, True, "")


def broken_preview() -> Preview:
    """An UNSAFE preview of the reference stack with the BROKEN flows above."""
    lab = reference_lab()
    flows = expand(load_contract(ROOT / "contract.yaml"), lab)
    missing = set(BROKEN) - {f.name for f in flows}
    assert not missing, f"contract.yaml no longer has the flows {missing}: pick others in BROKEN"
    before = [_healthy(f) for f in flows]
    after = [Result(r.flow, *BROKEN[r.flow.name], 5.0, False, "broken by the change")
             if r.flow.name in BROKEN else r for r in before]
    deltas = [replace(d, where=WHERE.get(d.flow, "")) for d in compare(before, after, lab)]
    return Preview(Change(ROOT / "changes" / "lb2-wrong-health-check.yaml",
                          "lb2 checks its backends on a wrong path"), "lab", "staging", UNSAFE,
                   [f"{HEADS[d.kind]}: {d.describe()}" for d in deltas], deltas=deltas,
                   baseline=before, after=after, topology=lab)
