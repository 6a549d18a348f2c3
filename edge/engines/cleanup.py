"""Find and remove Docker objects by label: the only safe way to clean up lab leftovers.

CI runs in a fresh clone on an engine that may still hold containers from an earlier session, so
nothing is ever removed by name pattern, only by the labels every lab resource carries. Several
test runs may share one engine, so a caller can also spare objects by their other labels (those
of a run that is still going).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import docker
import docker.errors

from edge.engines import docker_exec
from edge.model.plan import LABEL_PROJECT, PROJECT

Keep = Callable[[dict[str, str]], bool]


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


def _found(labels: dict[str, str], client: docker.DockerClient | None
           ) -> tuple[list[dict], list[dict], list[dict]]:
    """The engine's containers, networks and volumes that carry the project's label and `labels`."""
    api = (client or docker_exec.client()).api
    flt = _filters(labels)
    return (api.containers(all=True, filters=flt), api.networks(filters=flt),
            api.volumes(filters=flt).get("Volumes") or [])


def count(labels: dict[str, str], client: docker.DockerClient | None = None) -> Leftovers:
    """Count the project's containers, networks and volumes that also carry `labels`."""
    return Leftovers(*map(len, _found(labels, client)))


def labels_found(labels: dict[str, str], client: docker.DockerClient | None = None
                 ) -> list[dict[str, str]]:
    """The full label set of each of the project's objects that also carry `labels`."""
    return [obj.get("Labels") or {} for kind in _found(labels, client) for obj in kind]


def remove(labels: dict[str, str], client: docker.DockerClient | None = None,
           keep: Keep = lambda _labels: False) -> Leftovers:
    """Remove the project's containers, then networks, then volumes that carry `labels`, except
    those whose full label set `keep` spares; returns how many were removed."""
    api = (client or docker_exec.client()).api
    containers, networks, volumes = (
        [obj for obj in kind if not keep(obj.get("Labels") or {})]
        for kind in _found(labels, client))
    for container in containers:
        _ignore_gone(api.remove_container, container["Id"], force=True)
    for network in networks:
        _ignore_gone(api.remove_network, network["Id"])
    for volume in volumes:
        _ignore_gone(api.remove_volume, volume["Name"], force=True)
    return Leftovers(len(containers), len(networks), len(volumes))


def _ignore_gone(call, *args, **kwargs) -> None:
    try:
        call(*args, **kwargs)
    except docker.errors.NotFound:
        pass
