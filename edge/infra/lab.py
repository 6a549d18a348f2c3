"""The whole edge lab of one stack as a Pulumi component resource.

Input is a StackPlan (pure data); output is one Docker network per lab network, one volume per
storage unit and one container per node, and a `nodes` output that the Ansible inventory is built
from: name, role, tier, container name and id, the address on each network, its static routes
and how its links are shaped.
"""

from __future__ import annotations

from dataclasses import asdict

import pulumi

from edge.infra.docker_provider import DockerContainer, DockerNetwork, DockerVolume
from edge.model.plan import LABEL_NODE, LABEL_ROLE, StackPlan


class EdgeLab(pulumi.ComponentResource):
    """Networks, volumes and containers of one stack, created from its plan."""

    nodes: pulumi.Output[dict]

    def __init__(self, name: str, plan: StackPlan, image: str,
                 stopped: set[str] | frozenset[str] = frozenset(),
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("edge-testbed:lab:EdgeLab", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        networks = {
            net.name: DockerNetwork(f"net-{net.name}", name=net.docker_name,
                                    subnet=str(net.subnet), gateway=str(net.gateway),
                                    labels=plan.labels(), opts=child)
            for net in plan.networks.values()
        }
        volumes = {
            docker_name: DockerVolume(f"vol-{name}", name=docker_name, labels=plan.labels(),
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
            }
            for name, node in plan.nodes.items()
        })
        self.register_outputs({"nodes": self.nodes})
