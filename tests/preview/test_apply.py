"""`edge apply` on the session's live lab (t-lab): the gate's refusals, a SAFE change applied
and verified under the watchdog, and a forced breaking change rolled back automatically.

Every apply and refusal must be in the stack's audit log (read through edge.model.state), and a
refusal must leave the live revision where it was. The tests run in any order, alone or
together: each brings t-lab back to the revision it found (converged and recorded) and checks
the lab green (`live_restored`), a refusal uses a change file of its own (never previewed by
anyone else), and a preview the session made against another revision is made again.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.engines.stack import Backend
from edge.lab.probes import settle
from edge.model.change import Change, load_change, working_tree_change
from edge.model.contract import expand, load_contract
from edge.model.revision import Revision, load_live, save_live, worktree_tree
from edge.model.state import AuditEvent, StackState
from edge.workflow import rollout
from edge.workflow.apply import ApplyResult, record_preview, run_apply
from edge.workflow.staged import SAFE, UNSAFE, Preview, run_preview
from tests.lab_fixtures import ROOT, STAGING, STAGING_SLOT, Lab, stack_config

CONTRACT = load_contract(ROOT / "contract.yaml")
DNS_DEFAULTS = "roles/dns/defaults/main.yml"


def quiet(_: str) -> None:
    """Progress lines of previews and applies: not shown in the test output."""


def green(lab: Lab) -> list[str]:
    return [r.flow.name for r in settle(expand(CONTRACT, lab.view), 20.0) if not r.ok]


def live(lab: Lab) -> Revision:
    revision = load_live(lab.state, lab.stack)
    assert revision is not None, f"'{lab.stack}' has no recorded revision"
    return revision


@pytest.fixture
def backend(lab: Lab) -> Backend:
    return Backend(state=lab.state)


@pytest.fixture
def live_restored(lab: Lab, backend: Backend) -> Iterator[Revision]:
    """The revision t-lab runs when the test starts. Afterwards, if the test moved it, t-lab is
    brought back to it (the one rule for going between revisions, then recorded), and the whole
    contract must be green: the next test finds the lab as this one did."""
    before = live(lab)
    yield before
    now = live(lab)
    if now.id != before.id:
        back = rollout.transition(lab.stack, now, before, backend)
        assert back.ok, back.errors
        save_live(lab.state, lab.stack, before, f"test: back from {now.id}")
    assert green(lab) == []


def apply(lab: Lab, backend: Backend, change: Change, force: bool = False) -> ApplyResult:
    """`edge apply` of `change` to t-lab, expecting its preview staged on the suite's staging
    stack (t-staging)."""
    return run_apply(change, lab.stack, CONTRACT, backend, force=force, progress=quiet,
                     staging=STAGING)


def example(lab: Lab, name: str) -> Change:
    return load_change(ROOT / "changes" / "examples" / f"{name}.yaml", set(lab.view.nodes))


def previewed(lab: Lab, previews: dict[str, Preview], name: str) -> Preview:
    """The session's preview of example `name`, made again (and recorded for the gate) when it
    was made against a revision t-lab no longer runs."""
    if previews[name].live_revision != live(lab).id:
        del previews[name]
    return previews[name]


@pytest.fixture
def unpreviewed(lab: Lab, tmp_path: Path, request: pytest.FixtureRequest) -> Change:
    """A SAFE-looking change of this test alone: its digest (its vars) is derived from the
    test's id, so no other test, preview or apply of the session ever made it."""
    ttl = 1000 + int(hashlib.sha256(request.node.nodeid.encode()).hexdigest(), 16) % 50000
    path = tmp_path / "change.yaml"
    path.write_text(f"description: {request.node.name}\nvars: {{dns_ttl: {ttl}}}\n")
    return load_change(path, set(lab.view.nodes))


def audited(lab: Lab, change: Change) -> AuditEvent:
    """The last audit line of an apply of `change` on t-lab."""
    found = [e for e in StackState.of(lab.state, lab.stack).audit()
             if e.action == "apply" and e.details.get("change") == change.digest]
    assert found, f"no audit line for change {change.digest}"
    return found[-1]


def assert_refused(lab: Lab, change: Change, result: ApplyResult, before: Revision,
                   words: str) -> None:
    """Refused for `words`, the live revision unchanged, and the refusal audited."""
    assert result.outcome == "refused" and result.exit_code == 2, result.reasons
    assert words in result.reasons[0], result.reasons
    assert live(lab).id == before.id, "a refused change moved the live revision"
    entry = audited(lab, change)
    assert entry.stack == lab.stack and entry.user
    assert entry.details == {"change": change.digest, "description": change.description,
                             "forced": False, "outcome": "refused", "reason": result.reasons[0]}


def test_a_change_without_preview_is_refused(lab: Lab, backend: Backend, live_restored: Revision,
                                             unpreviewed: Change) -> None:
    result = apply(lab, backend, unpreviewed)
    assert_refused(lab, unpreviewed, result, live_restored,
                   f"no preview of change {unpreviewed.digest}")


def test_an_unsafe_preview_is_refused(lab: Lab, backend: Backend, live_restored: Revision,
                                      previews: dict[str, Preview]) -> None:
    assert previewed(lab, previews, "lb-wrong-bind").verdict == UNSAFE
    change = example(lab, "lb-wrong-bind")
    result = apply(lab, backend, change)
    assert_refused(lab, change, result, live_restored, "said UNSAFE")


def test_a_safe_change_is_applied_then_its_preview_is_stale(
        lab: Lab, backend: Backend, live_restored: Revision,
        previews: dict[str, Preview]) -> None:
    assert previewed(lab, previews, "dns-ttl").verdict == SAFE
    change = example(lab, "dns-ttl")
    # Through the command, as users and scripts meet it: exit 0 and the outcome line.
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "apply", str(change.path), "--stack", lab.stack,
         "--staging", STAGING], cwd=ROOT, env={**os.environ, "EDGE_STATE": str(lab.state)},
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = live(lab)
    assert proc.stdout.startswith(f"APPLIED: change {change.digest} on '{lab.stack}', now at "
                                  f"revision {after.id}"), proc.stdout
    assert after.id != live_restored.id and after.vars["dns_ttl"] == 60
    entry = audited(lab, change)
    assert entry.details["verified_s"] is not None and entry.details["reasons"] == []
    assert (entry.details["outcome"], entry.details["preview"], entry.details["from"],
            entry.details["to"]) == ("applied", SAFE, live_restored.id, after.id)
    again = apply(lab, backend, change)
    assert_refused(lab, change, again, after, "stale preview")
    assert green(lab) == []


def test_a_forced_breaking_change_is_rolled_back(lab: Lab, backend: Backend,
                                                 live_restored: Revision) -> None:
    change = example(lab, "lb-wrong-bind")
    result = apply(lab, backend, change, force=True)
    assert result.outcome == "rolled-back", result.reasons
    assert "must-work flows down" in result.reasons[0]
    assert result.detect_s is not None and result.restore_s is not None
    assert 0 <= result.detect_s <= result.restore_s
    assert live(lab).id == live_restored.id == result.revision
    entry = audited(lab, change).details
    assert entry["forced"] and entry["outcome"] == "rolled-back" and entry["preview"] == "forced"
    assert (entry["from"], entry["to"]) == (live_restored.id, live_restored.id)
    assert green(lab) == []


def git(args: list[str], stdin: str | None = None, env: dict | None = None) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
                          check=True, env={**os.environ, **(env or {})}).stdout.strip()


def older_tree(path: str, edit) -> str:
    """The working tree's desired-state tree with file `path` replaced by `edit(its text)`: the
    revision the live stack would run if the working tree's edit were not applied yet. Its blob
    and tree go to the checkout's object store (where edge keeps every revision; `git archive`
    reads them from there), through a private index: nothing is staged, no ref is moved."""
    tree = worktree_tree()
    blob = git(["hash-object", "-w", "--stdin"], edit((ROOT / path).read_text()))
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": f"{tmp}/index"}
        git(["read-tree", tree], env=env)
        git(["update-index", "--cacheinfo", f"100644,{blob},{path}"], env=env)
        return git(["write-tree"], env=env)


def test_a_working_tree_edit_is_previewed_against_the_applied_revision_then_applied(
        lab: Lab, backend: Backend, live_restored: Revision) -> None:
    """The live stack is said to run a tree whose dns_ttl differs from the working tree's
    (whatever value the working tree holds). The preview stages that older tree first
    (materialized from Git), then the working tree; apply records the working tree."""
    ttl = re.compile(r"^dns_ttl: (\d+)", re.M)
    now = ttl.search((ROOT / DNS_DEFAULTS).read_text())
    assert now, f"{DNS_DEFAULTS} no longer sets dns_ttl: pick another variable"
    older_ttl = int(now[1]) + 1
    old = older_tree(DNS_DEFAULTS, lambda text: ttl.sub(f"dns_ttl: {older_ttl}", text, 1))
    save_live(lab.state, lab.stack, Revision(old, live_restored.vars, live_restored.stop),
              "test: older tree")
    edit = working_tree_change(live(lab))
    assert edit.tree == worktree_tree() and edit.description == f"working tree: {DNS_DEFAULTS}"
    preview = run_preview(edit, lab.stack, STAGING, ROOT / "contract.yaml", backend,
                          stack_config(STAGING_SLOT), progress=quiet)
    assert preview.verdict == SAFE, preview.reasons
    staged = lab.state / "trees" / old / DNS_DEFAULTS
    assert ttl.search(staged.read_text())[1] == str(older_ttl)
    record_preview(lab.state, preview, lab.state / "report")
    result = apply(lab, backend, edit)
    assert result.outcome == "applied", result.reasons
    assert live(lab).tree == edit.tree
    assert audited(lab, edit).details["outcome"] == "applied"
    assert green(lab) == []
