"""Revisions of the desired state in a scratch Git repository: the working tree's tree is read
without staging anything, trees differ exactly where files do, and an old tree comes back as
files of its own."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge.model.revision import Revision, RevisionError, changed_paths, materialize, worktree_tree


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "roles" / "dns" / "defaults").mkdir(parents=True)
    (root / "roles" / "dns" / "defaults" / "main.yml").write_text("dns_ttl: 3600\n")
    (root / "site.yml").write_text("- hosts: all\n")
    (root / "README.md").write_text("not desired state\n")
    git(root, "init", "-q")
    return root


def test_the_working_tree_is_read_without_staging(repo: Path) -> None:
    tree = worktree_tree(repo)
    assert git(repo, "status", "--porcelain").count("??") == 3    # nothing was staged
    assert worktree_tree(repo) == tree                              # same files, same tree
    (repo / "README.md").write_text("edited\n")
    assert worktree_tree(repo) == tree, "only the desired-state files count"


def test_an_edit_is_a_new_tree_and_the_old_one_comes_back(repo: Path, tmp_path: Path) -> None:
    old = worktree_tree(repo)
    (repo / "roles" / "dns" / "defaults" / "main.yml").write_text("dns_ttl: 60\n")
    new = worktree_tree(repo)
    assert changed_paths(old, new, repo) == ["roles/dns/defaults/main.yml"]
    state = tmp_path / "state"
    copy = materialize(old, state, repo)
    assert copy != repo and (copy / "roles/dns/defaults/main.yml").read_text() == "dns_ttl: 3600\n"
    assert materialize(new, state, repo) != repo       # a snapshot, even of the working tree
    assert materialize(old, state, repo) == copy       # made once, reused


def test_a_revision_id_covers_tree_and_overlay() -> None:
    base = Revision("a" * 40)
    assert base.id != Revision("a" * 40, {"dns_ttl": 60}).id != Revision("a" * 40, {}, ("ns1",)).id
    assert Revision("a" * 40, {}, ("ns1", "ns2")).id == Revision("a" * 40, {}, ("ns2", "ns1")).id


def test_outside_a_git_repository_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RevisionError, match="run it from a Git clone"):
        worktree_tree(tmp_path)
