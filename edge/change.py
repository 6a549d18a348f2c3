"""A change to the edge's desired state, as a reviewable, replayable data file.

    description: Flip the firewall's forward policy to drop everything
    vars: {firewall_forward_policy: drop}   # role variables (Ansible extra vars)
    stop: [ns1]                             # nodes whose containers stop (infrastructure)
    expect: unsafe                          # optional: what the author expects a preview to say

A change's digest covers what it does (vars and stop), not its description, so an apply can
check that the preview it relies on was made for exactly this change.

The other kind of change is the working tree itself: edited roles, templates, variables or
topology, against the revision last applied to the live stack (`working_tree_change`). Its
digest is the Git tree of the desired-state files, so any further edit needs a new preview.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.datafile import load_checked
from edge.revision import Revision, changed_paths, worktree_tree

EXPECTATIONS = ("safe", "unsafe")


class ChangeError(ValueError):
    """A change file that cannot be used; the message names file, line and fix."""


@dataclass(frozen=True)
class Change:
    """A validated change file."""

    path: Path
    description: str
    vars: dict[str, Any] = field(default_factory=dict)
    stop: tuple[str, ...] = ()
    expect: str | None = None
    tree: str | None = None        # a working-tree change: the desired-state tree it brings

    @property
    def digest(self) -> str:
        body = json.dumps({"vars": self.vars, "stop": sorted(self.stop), "tree": self.tree},
                          sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def on(self, live: Revision) -> Revision:
        """The revision the live stack runs once this change is applied on top of `live`."""
        return Revision(self.tree or live.tree, {**live.vars, **self.vars},
                        tuple(sorted(set(live.stop) | set(self.stop))))


def working_tree_change(live: Revision) -> Change:
    """The working tree's edits to the desired state, against the revision `live` runs."""
    tree = worktree_tree()
    files = changed_paths(live.tree, tree)
    if not files:
        raise ChangeError("the working tree's desired state (roles, inventory, site.yml, "
                          f"topology) is the one the live stack runs (tree {tree[:12]}): "
                          "nothing to preview. Edit a role or variable, or give a change file.")
    shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    return Change(Path("."), f"working tree: {shown}", tree=tree)


def load_change(path: Path | str, nodes: set[str] | None = None) -> Change:
    """Load and validate a change file (against the stack's `nodes`, when given)."""
    path = Path(path)
    doc, r = load_checked(path, "change", "the command line", ChangeError)
    if not isinstance(doc, dict):
        raise ChangeError(f"{path}:1: a change is a mapping with description, vars and/or stop. "
                          "See changes/examples/.")
    known = {"description", "vars", "stop", "expect"}
    for key in doc:
        if key not in known:
            r.fail(doc, str(key), "unknown key", f"Use only: {', '.join(sorted(known))}.", str(key))
    if not isinstance(doc.get("description"), str) or not doc["description"].strip():
        r.fail(doc, "description", "missing", "Say in one line what the change does.",
               "description")
    variables = r.mapping(doc, "vars", "vars", required=False)
    stop = doc.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(n, str) for n in stop):
        r.fail(doc, "stop", "expected a list of node names", "Write e.g. `stop: [ns1]`.", "stop")
    unknown = sorted(set(stop) - nodes) if nodes is not None else []
    if unknown:
        r.fail(doc, "stop", f"no node {unknown} in the stack",
               f"Name nodes of the topology: {', '.join(sorted(nodes or []))}.", "stop")
    if not variables and not stop:
        r.fail(doc, "vars", "the change changes nothing", "Give `vars:` or `stop:`.",
               "description")
    expect = doc.get("expect")
    if expect is not None and expect not in EXPECTATIONS:
        r.fail(doc, "expect", f"'{expect}' is neither safe nor unsafe",
               "Write `expect: safe` or `expect: unsafe`, or leave it out.", "expect")
    return Change(path, doc["description"].strip(), dict(variables), tuple(stop), expect)
