"""Find and remove Docker objects by label: the only safe way to clean up lab leftovers.

CI runs in a fresh clone on an engine that may still hold containers from an earlier session, so
nothing is ever removed by name pattern, only by the labels every lab resource carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import docker
import docker.errors

from edge.plan import LABEL_PROJECT, PROJECT


@dataclass(frozen=True)
class Leftovers:
    """How many objects of each kind carry the labels."""

    containers: int
    networks: int
    volumes: int

    @property
    def total(self) -> int:
        return self.containers + self.networks + self.volumes


def _filters(labels: dict[str, str]) -> dict[str, list[str]]:
    return {"label": [f"{LABEL_PROJECT}={PROJECT}"] + [f"{k}={v}" for k, v in labels.items()]}


def count(labels: dict[str, str], client: docker.DockerClient | None = None) -> Leftovers:
    """Count the project's containers, networks and volumes that also carry `labels`."""
    api = (client or docker.from_env()).api
    flt = _filters(labels)
    return Leftovers(len(api.containers(all=True, filters=flt)), len(api.networks(filters=flt)),
                     len(api.volumes(filters=flt).get("Volumes") or []))


def remove(labels: dict[str, str], client: docker.DockerClient | None = None) -> Leftovers:
    """Remove the project's containers, then networks, then volumes that carry `labels`."""
    api = (client or docker.from_env()).api
    flt = _filters(labels)
    found = count(labels, client)
    for container in api.containers(all=True, filters=flt):
        _ignore_gone(api.remove_container, container["Id"], force=True)
    for network in api.networks(filters=flt):
        _ignore_gone(api.remove_network, network["Id"])
    for volume in api.volumes(filters=flt).get("Volumes") or []:
        _ignore_gone(api.remove_volume, volume["Name"], force=True)
    return found


def _ignore_gone(call, *args, **kwargs) -> None:
    try:
        call(*args, **kwargs)
    except docker.errors.NotFound:
        pass
