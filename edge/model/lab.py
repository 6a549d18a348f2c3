"""A stack as it stands: its Pulumi outputs read once into typed records.

Why: every later stage (inventory, probes, faults, previews, reports) needs the same few facts
about a stack's nodes (container, addresses, role, tier). Read from the raw outputs dict, each
stage indexed it again with its own string keys; parsed once here, a missing or renamed output is
one clear error at the start instead of a KeyError in the middle of a preview.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.model.topology import LOCAL, Endpoint


class LabError(ValueError):
    """The stack's outputs are missing or not what this version of edge writes."""


@dataclass(frozen=True)
class Node:
    """One node of the stack: its container and where it sits on the lab networks."""

    name: str
    role: str
    ansible_role: str
    tier: str
    container: str            # the container's name
    container_id: str
    addresses: dict[str, str]  # network -> address
    routes: tuple[str, ...] = ()
    link: dict[str, Any] | None = None
    engine: str = LOCAL               # the engine the container runs on (a spread stack's)...
    endpoint: Endpoint = Endpoint()   # ...and how its API is reached

    def address(self, network: str) -> str:
        """The node's address on `network`; LabError naming the networks it is on otherwise."""
        try:
            return self.addresses[network]
        except KeyError:
            raise LabError(f"node '{self.name}' has no address on network '{network}' (it is on "
                           f"{', '.join(sorted(self.addresses)) or 'no network'})") from None


def _endpoint(output: dict[str, str] | str | None) -> Endpoint:
    """A node's engine from its output: props, or (stacks spread before TLS was carried) the
    url alone; none on a stack that is not spread."""
    if isinstance(output, str):
        return Endpoint(output)
    return Endpoint.from_props(output)


@dataclass(frozen=True)
class Network:
    """One lab network: its Docker name and prefix."""

    name: str
    docker_name: str
    subnet: str


@dataclass(frozen=True)
class Lab:
    """A stack that is up: its name, slot, zone, networks and nodes (and the outputs they came
    from, for the inventory, which hands them to Ansible as they are)."""

    stack: str
    slot: int
    zone: str
    networks: dict[str, Network]
    nodes: dict[str, Node]
    outputs: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_outputs(cls, outputs: dict[str, Any]) -> Lab:
        """Parse a stack's outputs; LabError when a stack is not up or an output is missing."""
        if not outputs.get("nodes"):
            name = outputs.get("stack", "NAME")
            raise LabError(f"stack '{name}' has no nodes in its outputs: it is not up (run "
                           f"`edge up --stack {name}`)")
        try:
            nodes = {name: Node(name, n["role"], n.get("ansible_role", n["role"]), n["tier"],
                                n["container"], n["container_id"], dict(n["addresses"]),
                                tuple(n.get("routes") or ()), n.get("link"),
                                n.get("engine", LOCAL), _endpoint(n.get("endpoint")))
                     for name, n in outputs["nodes"].items()}
            networks = {name: Network(name, n["docker_name"], n["subnet"])
                        for name, n in (outputs.get("networks") or {}).items()}
            return cls(outputs["stack"], int(outputs["slot"]), outputs["zone"], networks, nodes,
                       outputs)
        except (KeyError, TypeError, ValueError) as err:
            raise LabError(f"stack '{outputs.get('stack', '?')}': its outputs lack {err} (made by "
                           "an older edge?): run `edge up` on it again") from None

    def node(self, name: str) -> Node:
        """The node called `name`; LabError naming the stack's nodes otherwise."""
        try:
            return self.nodes[name]
        except KeyError:
            raise LabError(f"no node '{name}' in stack '{self.stack}'; its nodes: "
                           f"{', '.join(sorted(self.nodes))}") from None

    @property
    def spread(self) -> bool:
        """Whether any node sits on an engine other than this one (as the plan's `spread`)."""
        return any(node.engine != LOCAL for node in self.nodes.values())

    def with_role(self, role: str) -> list[Node]:
        """The nodes of a role, by name."""
        return [n for _, n in sorted(self.nodes.items()) if n.role == role]
