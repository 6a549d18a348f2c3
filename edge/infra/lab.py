"""The whole edge lab of one stack as a Pulumi component resource.

Input is a StackPlan (pure data); output is one Docker network per lab network, one volume per
storage unit and one container per node, and a `nodes` output that the Ansible inventory is built
from: name, role, tier, container name and id, the address on each network, its static routes
and how its links are shaped.

A plan with nodes on another engine (the topology's `placement:`: some nodes, or the whole
stack) gets its networks as attachable internal Swarm overlays made on this engine (the
manager), each interface the plan's MTU (OVERLAY_MTU) so that a full frame still fits the underlay after
VXLAN's header; each container and volume is made on its node's engine by the same providers.
"""

from __future__ import annotations

from dataclasses import asdict

import pulumi

from edge.infra.docker_provider import DockerContainer, DockerNetwork, DockerVolume
from edge.model.plan import LABEL_NODE, LABEL_ROLE, NetworkPlan, StackPlan
from edge.model.topology import LOCAL_ENGINE, Endpoint


def endpoints(plan: StackPlan) -> dict[str, Endpoint | None]:
    """Engine name -> its endpoint (None: the local engine), for every engine the plan uses."""
    found: dict[str, Endpoint | None] = {LOCAL_ENGINE: None}
    for name, engine in plan.engines.items():
        found[name] = engine.api()
    return found


def dynamic_range(net: NetworkPlan, plan: StackPlan) -> str:
    """Where Swarm may put the addresses it picks itself on an overlay (each member engine's
    load-balancer endpoint takes one): the highest /29 of the network that holds no node's
    address and not its gateway, so it never takes an address the topology gives a node."""
    taken = {a for node in plan.nodes.values() for a in node.addresses.values()} | {net.gateway}
    blocks = list(net.subnet.subnets(new_prefix=29)) if net.subnet.prefixlen < 29 else []
    for block in reversed(blocks):
        if not any(address in block for address in taken):
            return str(block)
    raise pulumi.RunError(f"network '{net.name}' ({net.subnet}) has no free /29 for the "
                          "addresses Swarm picks itself: give it a larger subnet.")


class EdgeLab(pulumi.ComponentResource):
    """Networks, volumes and containers of one stack, created from its plan."""

    nodes: pulumi.Output[dict]

    def __init__(self, name: str, plan: StackPlan, image: str,
                 stopped: set[str] | frozenset[str] = frozenset(),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("edge-testbed:lab:EdgeLab", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        engine_of = endpoints(plan)
        # A volume lives on the engine of the nodes that mount it (the topology keeps it to one).
        volume_engine = {volume: engine_of[node.engine] for node in plan.nodes.values()
                         for volume in node.volumes}

        networks = {
            net.name: DockerNetwork(f"net-{net.name}", name=net.docker_name,
                                    subnet=str(net.subnet), gateway=str(net.gateway),
                                    labels=plan.labels(), mtu=plan.mtu,
                                    ip_range=dynamic_range(net, plan) if plan.spread else None,
                                    opts=child)
            for net in plan.networks.values()
        }
        volumes = {
            docker_name: DockerVolume(f"vol-{name}", name=docker_name, labels=plan.labels(),
                                      endpoint=volume_engine.get(docker_name),
                                      opts=pulumi.ResourceOptions(parent=self, protect=False))
            for name, docker_name in plan.volumes.items()
        }

        containers = {}
        for node in plan.nodes.values():
            depends = [networks[n] for n in node.addresses] + [volumes[v] for v in node.volumes]
            containers[node.name] = DockerContainer(
                f"node-{node.name}",
                name=node.container_name,
                image=image,
                hostname=node.hostname,
                networks={plan.networks[n].docker_name: str(a) for n, a in node.addresses.items()},
                labels=plan.labels(**{LABEL_NODE: node.name, LABEL_ROLE: node.role}),
                cap_add=list(node.capabilities),
                sysctls=node.sysctls,
                env={"EDGE_ROUTES": ";".join(node.routes), "EDGE_NODE": node.name,
                     "EDGE_ROLE": node.role},
                mounts=dict(node.volumes),
                dns=list(node.dns),
                running=node.name not in stopped,
                endpoint=engine_of[node.engine],
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )

        self.nodes = pulumi.Output.all(**{
            name: c.container_id for name, c in containers.items()
        }).apply(lambda ids: {
            name: {
                "role": node.role,
                "ansible_role": node.ansible_role,
                "tier": node.tier,
                "container": node.container_name,
                "container_id": ids[name],
                "addresses": {net: str(addr) for net, addr in node.addresses.items()},
                "routes": list(node.routes),
                "link": asdict(node.link) if node.link else None,
                **({"engine": node.engine,
                    "endpoint": (engine_of[node.engine] or Endpoint()).props()}
                   if plan.spread else {}),
            }
            for name, node in plan.nodes.items()
        })
        self.register_outputs({"nodes": self.nodes})
