"""Revisions of the desired state, and what each stack runs now.

The desired state of the edge is the roles, the inventory's variables, the site playbook and the
topology (`DESIRED`), plus the variables and stopped nodes that applied change files added on top
(the overlay). A revision names one of each: the Git tree of the desired-state files (made from
the working tree through a private index, so nothing is staged or committed) and the overlay.

Every stack's current revision is recorded in `<state>/stacks/<stack>/live.json` (through
edge/model/state.py) when it is brought up or a change is applied. Old trees are kept reachable under
`refs/edge/` so that a preview can converge staging to the live revision, and a rollback can go
back to the previous one, even after the working tree moved on.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge import ROOT
from edge.model.state import LiveRecord, StackState

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
    """The files of `tree` in a folder of their own (made once per tree, then reused), from Git.

    Never the checkout, even when it holds the same tree right now: a writer checks a tree
    (a preview's verdict, the gate) and converges it later, and an edit of the checkout in
    between must not reach the stack unpreviewed. A tree's folder never changes."""
    dest = state / "trees" / tree
    if not dest.exists():
        archived = subprocess.run(["git", "archive", "--format=tar", tree], cwd=root,
                                  capture_output=True)
        if archived.returncode != 0:
            raise RevisionError(f"`git archive {tree}` failed in {root}: "
                                f"{archived.stderr.decode(errors='replace').strip()}. The tree "
                                "is kept under refs/edge/ once recorded; a tree that Git no "
                                "longer has cannot be converged: preview the change again.")
        # Named after this process, so a kill halfway leaves a folder `half_unpacked` finds.
        partial = Path(tempfile.mkdtemp(prefix=f".{tree}-{os.getpid()}-", dir=dest.parent
                                        if dest.parent.exists() else _mkdir(dest.parent)))
        with tarfile.open(fileobj=io.BytesIO(archived.stdout)) as archive:
            archive.extractall(partial, filter="data")
        try:
            partial.rename(dest)
        except OSError:            # another thread or process made the same tree meanwhile
            shutil.rmtree(partial)
            if not dest.is_dir():
                raise
    return dest


def half_unpacked(state: Path) -> list[Path]:
    """Tree folders that `materialize` started and never renamed into place: their process is
    gone (a kill halfway). A folder of a live process is still being written: never listed."""
    found = []
    for path in sorted((state / "trees").glob(".*-*-*")):
        pid = path.name.split("-")[1]
        if path.is_dir() and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            found.append(path)
    return found


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


def stack_dir(state: Path, stack: str) -> Path:
    """Where edge keeps what it knows about one stack (edge/model/state.py), created if need be."""
    return StackState.of(state, stack).ensure()


def load_live(state: Path, stack: str) -> Revision | None:
    """The revision last brought up or applied on `stack`, if any."""
    record = StackState.of(state, stack).live()
    return None if record is None else Revision(record.tree, record.vars, record.stop)


def save_live(state: Path, stack: str, revision: Revision, how: str) -> None:
    """Record `revision` as what `stack` runs now (`how`: up, apply DIGEST, rollback...)."""
    keep(revision.tree, f"{stack}/live")
    StackState.of(state, stack).save_live(LiveRecord(revision.tree, revision.vars, revision.stop,
                                                     revision.id, how))
