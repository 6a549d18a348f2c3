"""Which hosts a change can touch, so the static check and the converges run only there.

Every host runs one role (site.yml's include_role, plus that role's meta dependencies and the
`link` role everyone runs), and a role's variables are its own: a variable defined in
`roles/R/defaults/` can only change hosts that run R. A variable no role defines (the inventory's
`edge_*` variables) or an edit outside `roles/` (inventory, playbook, topology) can change any
host: then the scope is every host (None).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edge.model.change import Change
from edge.model.lab import Lab

EVERYONE = ("link",)      # roles site.yml runs on every host


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.exists() else None


def role_closure(roles: Path) -> dict[str, set[str]]:
    """For each role, every role that runs when it does: itself and its meta dependencies."""
    deps = {}
    for role in (p for p in roles.iterdir() if p.is_dir()):
        meta = _yaml(role / "meta" / "main.yml") or {}
        deps[role.name] = {d["role"] if isinstance(d, dict) else d
                           for d in meta.get("dependencies") or []}
    closure: dict[str, set[str]] = {}

    def walk(name: str) -> set[str]:
        if name not in closure:
            closure[name] = {name}
            for dep in deps.get(name, ()):
                closure[name] |= walk(dep)
        return closure[name]

    for name in deps:
        walk(name)
    return closure


def role_defaults(roles: Path, role: str) -> dict[str, Any]:
    """A role's tunables as its defaults/main.yml declares them (empty if it has none)."""
    return _yaml(roles / role / "defaults" / "main.yml") or {}


def defining_roles(var: str, roles: Path) -> set[str]:
    """The roles whose defaults define `var`."""
    return {role.name for role in roles.iterdir() if var in role_defaults(roles, role.name)}


def changed_roles(change: Change, files: list[str], roles: Path) -> set[str] | None:
    """The roles whose files or variables a change edits, or None when it edits something no
    role owns (the inventory, the playbook, the topology)."""
    if change.tree is not None:
        parts = [Path(f).parts for f in files]
        if not parts or any(len(p) < 3 or p[0] != "roles" for p in parts):
            return None
        found = {p[1] for p in parts}
    else:
        found = set()
        for var in change.vars:
            owners = defining_roles(var, roles)
            if not owners:
                return None
            found |= owners
    return found


def touched_roles(change: Change, files: list[str], roles: Path) -> set[str] | None:
    """The roles a change can affect, or None when it can affect any host."""
    found = changed_roles(change, files, roles)
    return None if found is None or found & set(EVERYONE) else found


def hosts(change: Change, files: list[str], lab: Lab, roles: Path) -> list[str] | None:
    """The stack's hosts the change can touch (None: all of them). Nodes the change stops are
    not in it: stopping is infrastructure, not configuration."""
    wanted = touched_roles(change, files, roles)
    if wanted is None:
        return None
    closure = role_closure(roles)
    return sorted(name for name, node in lab.nodes.items()
                  if closure.get(node.ansible_role, {node.ansible_role}) & wanted)
