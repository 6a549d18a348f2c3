"""Check a stack's address plan against the host before anything is created.

A Docker network that overlaps a route of the host (or another Docker network) silently steals
the host's traffic for that prefix: on this machine that cuts it off from its package registries
and DNS. So the plan is compared with `ip route` and `docker network ls` first, and any overlap is
one clear error naming both prefixes.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

import docker

from edge.engines import docker_exec
from edge.infra.bridge_filter import bridge_name
from edge.infra.engines import client_for
from edge.model.plan import LABEL_PROJECT, LABEL_PURPOSE, LABEL_STACK, PROJECT, StackPlan
from edge.model.topology import FORBIDDEN, LOCAL_ENGINE


class AddressPlanError(RuntimeError):
    """The plan overlaps something the host already uses; nothing was created."""


@dataclass(frozen=True)
class Taken:
    """A prefix in use on the host, and who uses it (for the error message)."""

    prefix: ipaddress.IPv4Network
    owner: str
    dev: str = ""


ROUTES = ["-j", "-4", "route", "show", "table", "all"]   # `ip` arguments: every IPv4 route


def parse_routes(text: str, where: str = "host") -> list[Taken]:
    """The routes of `ip -j -4 route show table all` (pure), but the default route (which
    covers all) and loopback's; `where` names the machine in the owner."""
    taken = []
    for route in json.loads(text or "[]"):
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("dev") == "lo":
            continue
        prefix = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        dev = route.get("dev", "")
        taken.append(Taken(prefix, f"{where} route {prefix} dev {dev}", dev))
    return taken


def host_routes() -> list[Taken]:
    """Every IPv4 route of every table of this machine."""
    return parse_routes(subprocess.run(["ip", *ROUTES], check=True, capture_output=True,
                                       text=True).stdout)


def engine_routes(client: docker.DockerClient, image: str, engine: str) -> list[Taken]:
    """Every IPv4 route of the machine of another engine, read by `ip` in a throw-away container
    of the lab image in that machine's network namespace (its entrypoint, which installs a node's
    routes, is not run)."""
    out = client.containers.run(image, ROUTES, entrypoint=["ip"], network_mode="host",
                                remove=True, labels={LABEL_PROJECT: PROJECT,
                                                     LABEL_PURPOSE: "address-check"})
    return parse_routes(out.decode(), f"engine {engine}'s host")


def docker_networks(client: docker.DockerClient) -> list[tuple[str, str, str, list[str]]]:
    """(name, bridge device, stack label, subnets) of every Docker network on the engine."""
    found = []
    for net in client.api.networks():
        options = net.get("Options") or {}
        bridge = options.get("com.docker.network.bridge.name") or bridge_name(net["Id"])
        if net["Name"] == "bridge":
            bridge = options.get("com.docker.network.bridge.name", "docker0")
        subnets = [c["Subnet"] for c in (net.get("IPAM") or {}).get("Config") or []
                   if "Subnet" in c and ":" not in c["Subnet"]]
        found.append((net["Name"], bridge, (net.get("Labels") or {}).get(LABEL_STACK, ""), subnets))
    return found


def taken_prefixes(stack: str, client: docker.DockerClient,
                   routes: list[Taken] | None = None) -> list[Taken]:
    """What the plan of `stack` must not overlap on one engine: its machine's routes (`routes`,
    this machine's by default) and other stacks' networks.

    The stack's own networks (and the routes their bridges add) are left out, so a second
    `pulumi up` of a running stack does not trip over itself.
    """
    networks = docker_networks(client)
    own_bridges = {bridge for _, bridge, label, _ in networks if label == stack}
    taken = [t for t in (host_routes() if routes is None else routes)
             if t.dev not in own_bridges]
    for name, _, label, subnets in networks:
        if label != stack:
            taken += [Taken(ipaddress.IPv4Network(s), f"Docker network '{name}' ({s})")
                      for s in subnets]
    taken += [Taken(f, f"this machine's reserved prefix {f}") for f in FORBIDDEN]
    return taken


def conflicts(plan: StackPlan, taken: list[Taken]) -> list[str]:
    """Each overlap between the plan's networks and a taken prefix, as a sentence."""
    return [f"network '{net.name}' of stack '{plan.stack}' ({net.subnet}) overlaps {t.owner}"
            for net in plan.networks.values() for t in taken if net.subnet.overlaps(t.prefix)]


def check_address_plan(plan: StackPlan, image: str,
                       client: docker.DockerClient | None = None) -> None:
    """Raise AddressPlanError if any of the plan's prefixes is already in use on the machine of
    any engine the plan places nodes on (this one: `client`; the others through their API)."""
    found = conflicts(plan, taken_prefixes(plan.stack, client or docker_exec.client()))
    for name in sorted({node.engine for node in plan.nodes.values()} - {LOCAL_ENGINE}):
        other = client_for(plan.engines[name].api())
        try:
            found += [f"{said} (on engine {name})" for said in conflicts(
                plan, taken_prefixes(plan.stack, other, engine_routes(other, image, name)))]
        finally:
            other.close()
    if found:
        raise AddressPlanError(
            "address plan collides with this host; nothing was created:\n  - "
            + "\n  - ".join(found)
            + f"\nGive stack '{plan.stack}' a free slot (`pulumi config set edge-testbed:slot N`"
            " -s STACK) or move the networks in the topology file.")
