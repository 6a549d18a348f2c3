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


def topology_path(tree: Path, configured: str | None) -> str:
    """The stack's topology file (its `topology` config: relative to the checkout, or inside an
    unpacked tree `<state>/trees/<tree>/...`) as the same file of `tree`."""
    path = Path(configured or TOPOLOGY)
    if path.is_absolute() and "trees" in path.parts:
        path = Path(*path.parts[path.parts.index("trees") + 2:])
    return str(path) if tree == stack.ROOT else str(tree / path)


def infrastructure(stack_name: str, revision: Revision, backend: stack.Backend,
                   stream: bool = False) -> None:
    """Pulumi up with the revision's topology and stopped nodes."""
    tree = materialize(revision.tree, backend.state)
    current = stack.stack_config(stack_name)
    wanted = {"topology": topology_path(tree, current.get("topology")),
              "stopped": sorted(revision.stop)}
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
