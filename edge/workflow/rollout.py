"""Bring a stack to a revision: infrastructure first (Pulumi), then configuration (Ansible).

One path for every writer: `edge up`, the staging copy of a preview, `edge apply` and its
rollback, `edge fault clear`; `transition` is the one rule for going from revision A to B. A revision's topology and stopped nodes go to the stack's Pulumi config; its roles,
inventory variables and playbook are converged from that revision's files; its overlay of applied
variables goes in as extra vars, rendered by edge and marked unsafe (edge/model/change.py). Stopped
nodes are left out of the converge.
"""

from __future__ import annotations

import threading
from pathlib import Path

from edge.engines import configure, stack
from edge.engines.configure import ConvergeResult, Progress
from edge.model.change import ansible_extra_vars, inventory_host_vars
from edge.model.revision import Revision, materialize

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
    tree = materialize(revision.tree, backend.state)
    # A change's values are data: edge renders them per host, and Ansible gets them unsafe.
    extra_vars = ansible_extra_vars(
        revision.vars, lambda: inventory_host_vars(stack.outputs(stack_name, backend), tree))
    return configure.converge(stack_name, backend.state, check=check,
                              limit=limit(revision, hosts), extra_vars=extra_vars,
                              progress=progress, tree=tree, cancel=cancel)


def transition(stack_name: str, frm: Revision, to: Revision, backend: stack.Backend,
               hosts: list[str] | None = None, cancel: threading.Event | None = None,
               progress: Progress | None = None) -> ConvergeResult:
    """Bring a stack that runs `frm` to `to`, converging `hosts` (None: every host).

    Pulumi runs only when nodes start or stop or the tree changes. A new tree converges every
    host (its topology or roles may differ anywhere); otherwise the given hosts are converged,
    plus the nodes that start again, whose containers come back unconfigured.
    """
    if frm.stop != to.stop or frm.tree != to.tree:
        infrastructure(stack_name, to, backend)
        if frm.tree != to.tree or hosts is None:
            hosts = None
        else:
            hosts = sorted(set(hosts) | set(frm.stop))
    return configuration(stack_name, to, backend, hosts=hosts, cancel=cancel, progress=progress)
