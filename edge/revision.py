"""Revisions of the desired state, and what each stack runs now.

The desired state of the edge is the roles, the inventory's variables, the site playbook and the
topology (`DESIRED`), plus the variables and stopped nodes that applied change files added on top
(the overlay). A revision names one of each: the Git tree of the desired-state files (made from
the working tree through a private index, so nothing is staged or committed) and the overlay.

Every stack's current revision is recorded in `<state>/stacks/<stack>/live.json` when it is
brought up or a change is applied. Old trees are kept reachable under `refs/edge/` so that a
preview can converge staging to the live revision, and a rollback can go back to the previous
one, even after the working tree moved on.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.stack import ROOT

DESIRED = ("roles", "inventory", "site.yml", "topology")


class RevisionError(RuntimeError):
    """The desired state cannot be read (e.g. the checkout is not a Git repository)."""


def _git(args: list[str], env: dict[str, str] | None = None, root: Path = ROOT) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RevisionError(f"`git {' '.join(args)}` failed in {root}: {proc.stderr.strip()}. "
                            "edge keeps revisions of the desired state in the checkout's Git "
                            "repository: run it from a Git clone.")
    return proc.stdout.strip()


def worktree_tree(root: Path = ROOT) -> str:
    """The Git tree of the desired-state files as they are in the working tree now."""
    with tempfile.TemporaryDirectory(prefix="edge-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(["add", "--all", "--", *(p for p in DESIRED if (root / p).exists())], env, root)
        return _git(["write-tree"], env, root)


def keep(tree: str, name: str, root: Path = ROOT) -> None:
    """Keep `tree` from being garbage-collected, under refs/edge/NAME."""
    _git(["update-ref", f"refs/edge/{name}", tree], root=root)


def materialize(tree: str, state: Path, root: Path = ROOT) -> Path:
    """The files of `tree` in a folder of their own (made once per tree, then reused)."""
    if tree == worktree_tree(root):
        return root
    dest = state / "trees" / tree
    if not dest.exists():
        data = subprocess.run(["git", "archive", "--format=tar", tree], cwd=root,
                              capture_output=True, check=True).stdout
        partial = Path(tempfile.mkdtemp(prefix=f".{tree}-", dir=dest.parent
                                        if dest.parent.exists() else _mkdir(dest.parent)))
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            archive.extractall(partial, filter="data")
        partial.rename(dest)
    return dest


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def changed_paths(old: str, new: str, root: Path = ROOT) -> list[str]:
    """Files that differ between two desired-state trees."""
    return _git(["diff", "--name-only", old, new], root=root).splitlines() if old != new else []


@dataclass(frozen=True)
class Revision:
    """What a stack runs: a desired-state tree plus the applied changes' overlay."""

    tree: str
    vars: dict[str, Any] = field(default_factory=dict)
    stop: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        body = json.dumps({"tree": self.tree, "vars": self.vars, "stop": sorted(self.stop)},
                          sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def timestamp() -> str:
    """Local time as the records under `<state>/stacks/` write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def stack_dir(state: Path, stack: str) -> Path:
    """Where edge keeps what it knows about one stack (revision, previews, audit, lock)."""
    return _mkdir(state / "stacks" / stack)


def load_live(state: Path, stack: str) -> Revision | None:
    """The revision last brought up or applied on `stack`, if any."""
    path = state / "stacks" / stack / "live.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    return Revision(doc["tree"], doc.get("vars") or {}, tuple(doc.get("stop") or ()))


def save_live(state: Path, stack: str, revision: Revision, how: str) -> None:
    """Record `revision` as what `stack` runs now (`how`: up, apply DIGEST, rollback...)."""
    keep(revision.tree, f"{stack}/live")
    doc = asdict(revision) | {"id": revision.id, "how": how,
                              "when": timestamp()}
    path = stack_dir(state, stack) / "live.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
