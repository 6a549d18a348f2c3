"""Bring a stack to a revision: infrastructure first (Pulumi), then configuration (Ansible).

One path for every writer: `edge up`, the staging copy of a preview, `edge apply` and its
rollback. A revision's topology and stopped nodes go to the stack's Pulumi config; its roles,
inventory variables and playbook are converged from that revision's files; its overlay of applied
variables goes in as extra vars. Stopped nodes are left out of the converge.
"""

from __future__ import annotations

import threading
from pathlib import Path

from edge import configure, stack
from edge.configure import ConvergeResult, Progress
from edge.revision import Revision, materialize

TOPOLOGY = "topology/reference.yaml"


def limit(revision: Revision, hosts: list[str] | None = None) -> str | None:
    """Ansible's --limit for a revision: the given hosts (or all), minus stopped nodes."""
    if not revision.stop and hosts is None:
        return None
    return ":".join((hosts if hosts is not None else ["all"]) + [f"!{n}" for n in revision.stop])


def topology_path(tree: Path, stack_name: str) -> str:
    """The topology file of `tree`, as the stack's config names it relative to a tree."""
    current = str(stack.stack_config(stack_name).get("topology") or TOPOLOGY)
    relative = current.split("/trees/", 1)[1].split("/", 1)[1] if "/trees/" in current else current
    return relative if tree == stack.ROOT else str(tree / relative)


def infrastructure(stack_name: str, revision: Revision, backend: stack.Backend,
                   stream: bool = False) -> None:
    """Pulumi up with the revision's topology and stopped nodes."""
    tree = materialize(revision.tree, backend.state)
    wanted = {"topology": topology_path(tree, stack_name), "stopped": sorted(revision.stop)}
    current = stack.stack_config(stack_name)
    if any(current.get(k) != v for k, v in wanted.items()):
        stack.set_config(stack_name, wanted)
    stack.up(stack_name, backend, stream=stream)


def configuration(stack_name: str, revision: Revision, backend: stack.Backend,
                  hosts: list[str] | None = None, check: bool = False,
                  cancel: threading.Event | None = None,
                  progress: Progress | None = None) -> ConvergeResult:
    """Converge the stack (or only `hosts`) to the revision's roles and variables."""
    if hosts == []:
        return ConvergeResult("successful", 0.0, {})
    return configure.converge(stack_name, backend.state, check=check,
                              limit=limit(revision, hosts), extra_vars=revision.vars,
                              progress=progress, tree=materialize(revision.tree, backend.state),
                              cancel=cancel)
