"""`edge apply` on the session's live lab (t-lab): the gate's refusals, a SAFE change applied
and verified under the watchdog, and a forced breaking change rolled back automatically.

Every apply and refusal must be in the stack's audit log; the lab is green after each test.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from edge.change import load_change, working_tree_change
from edge.contract import expand, load_contract
from edge.gate import record_preview, run_apply
from edge.preview import SAFE, UNSAFE, Preview, run_preview
from edge.probes import settle
from edge.revision import Revision, load_live, save_live, worktree_tree
from edge.stack import Backend
from tests.conftest import ROOT, Lab
from tests.preview.conftest import STAGING, STAGING_SLOT

CONTRACT = load_contract(ROOT / "contract.yaml")


def lab_backend(lab: Lab) -> Backend:
    return Backend(state=lab.state)


def change(lab: Lab, name: str):
    return load_change(ROOT / "changes" / "examples" / f"{name}.yaml", set(lab.outputs["nodes"]))


def audit(lab: Lab) -> list[dict]:
    path = lab.state / "stacks" / lab.stack / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def green(lab: Lab) -> list[str]:
    return [r.flow.name for r in settle(expand(CONTRACT, lab.outputs), 20.0) if not r.ok]


def test_a_change_without_preview_is_refused(lab: Lab) -> None:
    result = run_apply(change(lab, "new-app-route"), lab.stack, CONTRACT, lab_backend(lab),
                       progress=lambda _: None)
    assert result.outcome == "refused" and "no preview of change" in result.reasons[0]
    assert audit(lab)[-1]["outcome"] == "refused"


def test_an_unsafe_preview_is_refused(lab: Lab, previews: dict[str, Preview]) -> None:
    assert previews["lb-wrong-bind"].verdict == UNSAFE
    result = run_apply(change(lab, "lb-wrong-bind"), lab.stack, CONTRACT, lab_backend(lab),
                       progress=lambda _: None)
    assert result.outcome == "refused" and "said UNSAFE" in result.reasons[0]


def test_a_safe_change_is_applied_then_its_preview_is_stale(
        lab: Lab, previews: dict[str, Preview]) -> None:
    before = load_live(lab.state, lab.stack)
    assert previews["dns-ttl"].verdict == SAFE
    result = run_apply(change(lab, "dns-ttl"), lab.stack, CONTRACT, lab_backend(lab),
                       progress=lambda _: None)
    assert result.outcome == "applied", result.reasons
    after = load_live(lab.state, lab.stack)
    assert after.id == result.revision != before.id
    assert after.vars["dns_ttl"] == 60
    assert result.verified_s is not None and not any(e.kind == "rollback" for e in result.events)
    assert audit(lab)[-1] | {"outcome": "applied", "preview": SAFE} == audit(lab)[-1]
    again = run_apply(change(lab, "dns-ttl"), lab.stack, CONTRACT, lab_backend(lab),
                      progress=lambda _: None)
    assert again.outcome == "refused" and "stale preview" in again.reasons[0]
    assert green(lab) == []


def test_a_forced_breaking_change_is_rolled_back(lab: Lab) -> None:
    before = load_live(lab.state, lab.stack)
    result = run_apply(change(lab, "lb-wrong-bind"), lab.stack, CONTRACT, lab_backend(lab),
                       force=True, progress=lambda _: None)
    assert result.outcome == "rolled-back", result.reasons
    assert "must-work flows down" in result.reasons[0]
    assert result.detect_s is not None and result.restore_s is not None
    assert 0 <= result.detect_s <= result.restore_s
    assert load_live(lab.state, lab.stack).id == before.id == result.revision
    entry = audit(lab)[-1]
    assert entry["forced"] and entry["outcome"] == "rolled-back" and entry["preview"] == "forced"
    assert green(lab) == []


def older_tree(path: str, old: str, new: str) -> str:
    """The working tree's desired-state tree with one file edited back (`new` -> `old`): the
    revision the live stack would run if the working tree's edit were not applied yet."""
    tree = worktree_tree()
    text = (ROOT / path).read_text()
    assert new in text
    blob = git(["hash-object", "-w", "--stdin"], text.replace(new, old))
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": f"{tmp}/index"}
        git(["read-tree", tree], env=env)
        git(["update-index", "--cacheinfo", f"100644,{blob},{path}"], env=env)
        return git(["write-tree"], env=env)


def git(args: list[str], stdin: str | None = None, env: dict | None = None) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
                          check=True, env={**os.environ, **(env or {})}).stdout.strip()


def test_a_working_tree_edit_is_previewed_against_the_applied_revision_then_applied(
        lab: Lab, staging: Backend) -> None:
    """The live stack ran a tree whose dns_ttl was 900; the working tree says 300. The preview
    stages the old tree first (materialized from Git), then the working tree; apply records it."""
    live = load_live(lab.state, lab.stack)
    old = older_tree("roles/dns/defaults/main.yml", "dns_ttl: 900", "dns_ttl: 300")
    save_live(lab.state, lab.stack, Revision(old, live.vars, live.stop), "test: older tree")
    edit = working_tree_change(load_live(lab.state, lab.stack))
    assert edit.tree == worktree_tree() and "roles/dns/defaults/main.yml" in edit.description
    preview = run_preview(edit, lab.stack, STAGING, ROOT / "contract.yaml", staging,
                          {"slot": str(STAGING_SLOT), "purpose": "test"}, progress=lambda _: None)
    assert preview.verdict == SAFE, preview.reasons
    assert (lab.state / "trees" / old / "roles/dns/defaults/main.yml").exists()
    record_preview(lab.state, preview, lab.state / "report")
    result = run_apply(edit, lab.stack, CONTRACT, staging, progress=lambda _: None)
    assert result.outcome == "applied", result.reasons
    assert load_live(lab.state, lab.stack).tree == worktree_tree()
    assert green(lab) == []
