"""Pulumi program: the edge lab of the selected stack, built from the topology data file.

It checks the stack's address plan against this host before registering anything, because a lab
network that overlaps a host route would cut the machine off its package registries and DNS.
"""

from pathlib import Path

import pulumi

from edge.engines.images import image_exists, image_ref
from edge.infra.addressing import AddressPlanError, check_address_plan
from edge.infra.lab import EdgeLab
from edge.infra.secret import stack_secrets
from edge.model.plan import stack_plan
from edge.model.topology import TopologyError, load_topology

ROOT = Path(__file__).resolve().parent


def main() -> None:
    config = pulumi.Config()
    stack = pulumi.get_stack()
    try:
        topology = load_topology(ROOT / config.require("topology"))
        slot = config.get_int("slot")
        if slot is None:
            slot = topology.slots.get(stack)
        if slot is None:
            raise TopologyError(f"stack '{stack}' has no address slot. Run `pulumi config set "
                                f"slot N -s {stack}` with an N no other stack uses.")
        plan = stack_plan(topology, stack, slot, config.require("purpose"),
                          config.get("run") or "")
        image = config.get("image") or image_ref(ROOT)
        if not image_exists(image):
            raise TopologyError(f"the lab image {image} is not built. Run `make setup` (or "
                                "`.venv/bin/python -m edge.engines.images ensure`) first.")
        check_address_plan(plan, image)
    except (TopologyError, AddressPlanError) as err:
        raise pulumi.RunError(str(err)) from None

    # Nodes whose containers stay stopped: a change can stop a node (e.g. one name server).
    stopped = set(config.get_object("stopped") or [])
    unknown = stopped - set(plan.nodes)
    if unknown:
        raise pulumi.RunError(f"config `stopped` names no node of the topology: {sorted(unknown)}")
    lab = EdgeLab("lab", plan, image, stopped)
    pulumi.export("stack", stack)
    pulumi.export("slot", slot)
    pulumi.export("zone", plan.zone)
    # `mtu` only where it is not the engine's default: a spread stack's overlays.
    mtu = {"mtu": plan.mtu} if plan.mtu else {}
    pulumi.export("networks", {n.name: {"docker_name": n.docker_name, "subnet": str(n.subnet)}
                               | mtu for n in plan.networks.values()})
    pulumi.export("nodes", lab.nodes)
    # Handed to Ansible through the inventory (never written to a file): the zone-transfer key.
    pulumi.export("secrets", stack_secrets())


main()
