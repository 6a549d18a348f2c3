"""The gate cannot be walked around: what was previewed is what gets applied (issue 10).

An apply is refused, each time with its own message, when the preview it relies on was made
under anything else than what it is about to do: another contract (or the contract file was
edited since), another staging stack, another scope of hosts, another revision pair. The
watchdog watches the preview's contract. A change that changes nothing is NO-OP, and applying it
says there is nothing to apply. The gate reads the live revision under the stack's lock, and
the converge works from a snapshot of the previewed tree, never from the checkout.

The preview's own decisions (scope, NO-OP, the staged ruleset) are tried through `run_preview`
with every lab step replaced by a stand-in; the apply's through `Apply` with the stand-in live
stack of test_apply_phases.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import edge.workflow.staged as preview_mod
from edge.engines.configure import ConvergeResult, HostResult
from edge.engines.stack import Backend
from edge.lab.probes import Result
from edge.model.change import Change
from edge.model.revision import Revision, materialize, worktree_tree
from edge.model.state import LiveRecord, StackLocked, StackState, StagingRecord, stack_lock
from edge.model.timers import Window
from edge.workflow.invariants import Declared
from edge.workflow.rounds import Rounds
from edge.workflow.staged import ERROR, NOOP, SAFE, UNSAFE, Preview, file_digest, run_preview
from tests.unit.test_apply_phases import (
    CHANGE,
    CONTRACT_TEXT,
    LIVE,
    SCOPE,
    TARGET,
    FakeLab,
    audited,
    clean,
    preview,
    run,
    state,
)
from tests.unit.test_policy import FIXTURES, LAB

__all__ = ["state"]          # the fixture, shared with test_apply_phases.py
WEAK = CONTRACT_TEXT.replace("must: work", "must: work\n    # weaker: fewer flows")


def refused(result) -> str:
    assert (result.outcome, result.exit_code) == ("refused", 2)
    return result.reasons[0]


def nothing_happened(state: Path, lab: FakeLab) -> None:
    assert not lab.watched and lab.converges == [] and lab.saves == []
    assert audited(state)["outcome"] == "refused"


# --- the apply against its preview ---------------------------------------------------------------

def test_a_preview_made_with_another_contract_does_not_open_the_gate(state: Path) -> None:
    weak = state / "weak.yaml"
    weak.write_text(WEAK)
    preview(state, contract=str(weak), contract_digest=file_digest(weak))
    lab = FakeLab(clean({"lb1"}))
    said = refused(run(state, lab))
    assert said == (f"the preview of change {CHANGE.digest} "
                    f"({StackState.of(state, 'lab').preview(CHANGE.digest).when}) was made "
                    f"against contract {file_digest(weak)[:12]} ({weak}); this apply uses "
                    f"{file_digest(state / 'contract.yaml')[:12]} ({state / 'contract.yaml'}): "
                    f"preview it again (`edge preview {CHANGE.path}`) with the same contract")
    nothing_happened(state, lab)


def test_a_contract_edited_since_the_preview_is_refused(state: Path) -> None:
    """The apply's own contract still has the preview's bytes (a copy), but the preview's file,
    which the watchdog would watch, was edited since."""
    copy = state / "copy.yaml"
    copy.write_text(CONTRACT_TEXT)
    preview(state)
    (state / "contract.yaml").write_text(WEAK)
    lab = FakeLab(clean({"lb1"}))
    said = refused(run(state, lab, contract=copy))
    assert said.startswith(f"the contract {state / 'contract.yaml'} was edited since the "
                           f"preview of change {CHANGE.digest}")
    assert "the watchdog watches the contract of the preview: preview it again" in said
    nothing_happened(state, lab)
    # Applied with the edited file itself, it is simply another contract.
    assert "this apply uses" in refused(run(state, lab))


def test_a_preview_staged_elsewhere_does_not_open_the_gate(state: Path) -> None:
    preview(state, staging="my-staging")
    lab = FakeLab(clean({"lb1"}))
    said = refused(run(state, lab))
    assert "was staged on 'my-staging'; this apply expects a preview staged on 'staging'" in said
    assert "--staging staging" in said and "apply with --staging my-staging" in said
    nothing_happened(state, lab)
    assert run(state, FakeLab(clean({"lb1"})), staging="my-staging").outcome == "applied"


def test_a_preview_staged_on_any_stack_of_the_pool_opens_the_gate(state: Path) -> None:
    preview(state, staging="staging-b")
    assert "this apply expects a preview staged on 'staging-a,staging-c'" in refused(
        run(state, FakeLab(clean({"lb1"})), staging="staging-a,staging-c"))
    assert run(state, FakeLab(clean({"lb1"})), staging="staging-a,staging-b").outcome == \
        "applied"


@pytest.mark.parametrize("now, recorded, words", [
    (["lb1", "lb2", "ns1"], {}, "staged the change on lb1, lb2; its scope on the live stack is "
                                "now lb1, lb2, ns1"),
    (None, {}, "is now every host"),
    (SCOPE, {"scope": [], "every_host": True}, "staged the change on every host; its scope on "
                                               "the live stack is now lb1, lb2"),
], ids=["a host more", "every host now", "every host then"])
def test_a_scope_that_differs_from_the_previewed_one_is_refused(
        state: Path, now: list[str] | None, recorded: dict, words: str) -> None:
    preview(state, **recorded)
    lab = FakeLab(clean({"lb1"}), scope=now)
    said = refused(run(state, lab))
    assert words in said and "(the stack's nodes or roles changed)" in said
    nothing_happened(state, lab)


@pytest.mark.parametrize("recorded, words", [
    ({"target_revision": "0" * 16}, f"was of revision {'0' * 16} (tree {TARGET.tree[:12]}); "
                                    f"this apply would bring revision {TARGET.id}"),
    ({"target_tree": "b" * 40}, f"(tree {'b' * 12}); this apply would bring revision "
                                f"{TARGET.id} (tree {TARGET.tree[:12]})"),
    ({"revision": Revision("c" * 40).id}, "stale preview"),
], ids=["target revision", "target tree", "live revision"])
def test_a_preview_of_another_revision_pair_is_refused(state: Path, recorded: dict,
                                                       words: str) -> None:
    preview(state, **recorded)
    lab = FakeLab(clean({"lb1"}))
    assert words in refused(run(state, lab))
    nothing_happened(state, lab)


def test_a_preview_recorded_by_an_older_edge_is_read_but_refused(state: Path) -> None:
    """Old records lack the new fields: they still read, and ask for a new preview."""
    preview(state, contract="", contract_digest="", staging="", scope=[], target_revision="",
            target_tree="")
    assert StackState.of(state, "lab").preview(CHANGE.digest).verdict == SAFE
    said = refused(run(state, FakeLab(clean({"lb1"}))))
    assert "was made by an older edge that did not record its contract" in said


def test_the_watchdog_watches_the_contract_of_the_preview(state: Path) -> None:
    """Given an equal copy, the apply still watches the very file the preview measured."""
    copy = state / "copy.yaml"
    copy.write_text(CONTRACT_TEXT)
    preview(state)
    lab = FakeLab(clean({"lb1"}))
    result = run(state, lab, contract=copy)
    assert result.outcome == "applied"
    assert [c.path for c in lab.contracts] == [state / "contract.yaml"] * 2
    assert audited(state)["contract"] == file_digest(state / "contract.yaml")


def test_a_forced_apply_watches_the_contract_it_was_given(state: Path) -> None:
    copy = state / "copy.yaml"
    copy.write_text(WEAK)
    lab = FakeLab(clean(set()))
    assert run(state, lab, force=True, contract=copy).outcome == "applied"
    assert [c.path for c in lab.contracts] == [copy] * 2


def test_a_no_op_preview_has_nothing_to_apply(state: Path) -> None:
    preview(state, NOOP)
    lab = FakeLab(clean({"lb1"}))
    result = run(state, lab)
    assert (result.outcome, result.exit_code, result.revision) == ("no-op", 0, LIVE.id)
    assert result.reasons == [f"nothing to apply: the preview of change {CHANGE.digest} found "
                              "that it changes nothing on 'lab'"]
    assert not lab.watched and lab.converges == [] and lab.saves == []
    entry = audited(state)
    assert entry | {"outcome": "no-op", "preview": NOOP, "from": LIVE.id,
                    "to": LIVE.id} == entry
    # Still only under what it was previewed under: a stale NO-OP proves nothing.
    preview(state, NOOP, revision=Revision("c" * 40).id)
    assert "stale preview" in refused(run(state, lab))


def test_the_gate_reads_the_live_revision_under_the_stack_lock(state: Path) -> None:
    """While the gate runs, no other writer can take the stack (and move its revision)."""
    preview(state)
    seen = []

    class Probing(FakeLab):
        def scope(self, change: Change, current: Revision) -> list[str] | None:
            try:
                with stack_lock(state, "lab", "another writer"):
                    seen.append("free")
            except StackLocked:
                seen.append("locked")
            return super().scope(change, current)

    assert run(state, Probing(clean({"lb1"}))).outcome == "applied"
    assert seen == ["locked"]


# --- the preview ----------------------------------------------------------------------------------

def result_of(flow, ok: bool = True) -> Result:
    return Result(flow, "answered" if ok else "timeout", {}, 1.0, ok, "" if ok else "timeout")


class StagedLab:
    """Every lab step of run_preview replaced: what each stage finds is set on the instance,
    what the preview asked of staging is recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scope: list[str] | None,
                 ruleset: str = "lab_firewall") -> None:
        self.backend = Backend(state=tmp_path / "state")
        StackState.of(self.backend.state, "lab").save_live(LiveRecord(
            LIVE.tree, LIVE.vars, LIVE.stop, LIVE.id, "up"))
        self.contract = tmp_path / "contract.yaml"
        self.contract.write_text((Path(__file__).resolve().parents[2] / "contract.yaml")
                                 .read_text())
        self.scope, self.ruleset = scope, ruleset
        self.infra_steps: list[str] = []
        self.check = ConvergeResult("successful", 1.0, {"ns1": HostResult(ok=5)})
        self.staged = ConvergeResult("successful", 1.0, {"ns1": HostResult(ok=5)})
        self.after_ok = True
        self.staged_hosts: list[list[str] | None] = []
        self.on_change = lambda: None
        patches = {
            "config_digest": lambda lab: "digest",
            "change_scope": lambda change, live, lab, backend: self.scope,
            "declared_for": lambda target, backend: Declared(),
            "_staging_baseline": lambda staging, live, backend: ConvergeResult(
                "successful", 1.0, {}),
            "static_stage": lambda live, target, backend, hosts: (self.infra_steps, self.check),
            "_staging_change": self.stage,
            "settle": self.settle,
            "measure_rounds": self.rounds,
            "settle_window": lambda *args: Window(0.0, "no timer"),
            "AFTER_GRACE_S": 0.0,
        }
        for name, value in patches.items():
            monkeypatch.setattr(preview_mod, name, value)
        monkeypatch.setattr(preview_mod.stack, "lab", lambda name, backend: LAB)
        monkeypatch.setattr(preview_mod.stack, "select_stack", lambda *a, **kw: None)
        monkeypatch.setattr(preview_mod.policy, "read_rulesets", lambda lab: (
            {"firewall": json.loads((FIXTURES / f"{self.ruleset}.json").read_text())}, []))
        self.settled = 0

    def stage(self, staging: str, live: Revision, target: Revision, backend: Backend,
              hosts: list[str] | None) -> ConvergeResult:
        self.staged_hosts.append(hosts)
        self.on_change()
        return self.staged

    def settle(self, flows, timeout_s: float) -> list[Result]:
        self.settled += 1
        after = self.settled > 2     # the baseline, its latency rounds, then after the change
        return [result_of(f, ok=not after or self.after_ok or f.must == "block") for f in flows]

    def rounds(self, flows, window_s: float, min_rounds: int, **_) -> Rounds:
        """The rounds before the change (latency samples) and after it: one round each."""
        measured = Rounds()
        measured.add(0.0, self.settle(flows, 0.0))
        return measured

    def run(self, change: Change = CHANGE) -> Preview:
        return run_preview(change, "lab", "staging", self.contract, self.backend,
                           progress=lambda _: None)


@pytest.mark.parametrize("scope", [["ns1", "ns2"], None], ids=["two hosts", "every host"])
def test_the_staged_stage_converges_every_host_of_the_scope(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scope: list[str] | None) -> None:
    """Check mode saw ns1 change only; staging converges the whole scope all the same."""
    lab = StagedLab(monkeypatch, tmp_path, scope)
    lab.check = ConvergeResult("successful", 1.0, {"ns1": HostResult(ok=5, changed=1),
                                                   "ns2": HostResult(ok=5)})
    lab.staged = ConvergeResult("successful", 1.0, {"ns1": HostResult(ok=5, changed=1)})
    result = lab.run()
    assert lab.staged_hosts == [scope] and result.verdict == SAFE
    assert (result.scope, result.static_diffs) == (scope, {"ns1": 1})
    assert (result.contract, result.contract_digest) == (str(lab.contract),
                                                         file_digest(lab.contract))
    assert (result.live_revision, result.target_revision, result.target_tree) == (
        LIVE.id, TARGET.id, TARGET.tree)


def test_a_change_that_changes_nothing_is_no_op(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    lab = StagedLab(monkeypatch, tmp_path, ["ns1"])
    result = lab.run()
    assert (result.verdict, result.exit_code, result.staged_changed) == (NOOP, 0, 0)
    assert result.reasons == ["nothing changes: no Pulumi step, no check-mode difference, no "
                              "task changed on 'staging', no contract flow changed"]


@pytest.mark.parametrize("what", ["pulumi step", "check-mode change", "staged task"])
def test_anything_that_changes_is_not_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            what: str) -> None:
    """Check mode cannot see everything: a task changed on staging alone counts too."""
    lab = StagedLab(monkeypatch, tmp_path, ["ns1"])
    if what == "pulumi step":
        lab.infra_steps = ["update edge:lab:container:ns1"]
    elif what == "check-mode change":
        lab.check = ConvergeResult("successful", 1.0, {"ns1": HostResult(ok=5, changed=1)})
    else:
        lab.staged = ConvergeResult("successful", 1.0, {"ns1": HostResult(ok=5, changed=2)})
    assert lab.run().verdict == SAFE


def test_the_staged_firewall_ruleset_makes_security_regressions(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No flow changed (no route leads to the PaaS yet), but the loaded ruleset accepts one."""
    lab = StagedLab(monkeypatch, tmp_path, ["firewall"], ruleset="port_range")
    result = lab.run()
    assert result.verdict == UNSAFE and result.exit_code == 1
    assert result.reasons == ["SECURITY REGRESSION (firewall ruleset): " + result.policy[0]]
    assert "rule 'paas-range'" in result.policy[0]


def test_a_contract_edited_while_the_preview_runs_is_an_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lab = StagedLab(monkeypatch, tmp_path, ["ns1"])
    lab.on_change = lambda: lab.contract.write_text(lab.contract.read_text() + "# edited\n")
    result = lab.run()
    assert result.verdict == ERROR
    assert result.reasons[-1] == (f"the contract {lab.contract} was edited while the preview "
                                  "ran: preview again once it is saved")


def test_a_firewall_ruleset_that_cannot_be_read_is_an_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the staged ruleset, the must-block flows it accepts are unknown: no verdict."""
    lab = StagedLab(monkeypatch, tmp_path, ["firewall"])
    monkeypatch.setattr(preview_mod.policy, "read_rulesets", lambda lab: (
        {}, ["edge-staging-firewall: reading the ruleset failed: `nft -j list ruleset` exited 1"]))
    result = lab.run()
    assert result.verdict == ERROR and result.exit_code == 2
    assert result.reasons[-1].startswith("the firewall's ruleset on 'staging' could not be read")


@pytest.mark.parametrize("scope, record", [
    (["ns1", "ns2"], StagingRecord(TARGET.id, LIVE.id, ["ns1", "ns2"])),
    (None, StagingRecord(TARGET.id, "", [])),      # every host: the next baseline converges all
], ids=["two hosts", "every host"])
def test_staging_converges_the_scope_and_remembers_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scope: list[str] | None,
        record: StagingRecord) -> None:
    asked = []
    monkeypatch.setattr(preview_mod.rollout, "transition", lambda name, frm, to, backend, hosts:
                        asked.append((name, frm, to, hosts)) or ConvergeResult("successful", 1, {}))
    backend = Backend(state=tmp_path)
    preview_mod._staging_change("staging", LIVE, TARGET, backend, scope)
    assert asked == [("staging", LIVE, TARGET, scope)]
    assert StackState.of(tmp_path, "staging").staging() == record


@pytest.mark.parametrize("last, hosts", [
    (StagingRecord(), None),                               # every host
    (StagingRecord("", LIVE.id, ["ns1"]), ["ns1"]),        # back from the last preview
    (StagingRecord(LIVE.id, LIVE.id), []),                 # already there
], ids=["unknown", "last preview on ns1", "at the live revision"])
@pytest.mark.parametrize("ok", [True, False], ids=["converged", "failed"])
def test_the_staging_baseline_remembers_only_what_it_converged(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, last: StagingRecord,
        hosts: list[str] | None, ok: bool) -> None:
    """What the baseline converges follows staging's record; a failed (or interrupted) baseline
    leaves "unknown", so the next one converges every host, not only the last preview's."""
    asked = []
    monkeypatch.setattr(preview_mod.rollout, "infrastructure", lambda *a: None)
    monkeypatch.setattr(preview_mod.rollout, "configuration", lambda name, rev, backend, hosts:
                        asked.append(hosts) or ConvergeResult("successful" if ok else "failed", 1,
                                                              {}))
    monkeypatch.setattr(preview_mod.stack, "lab", lambda name, backend: LAB)
    monkeypatch.setattr(preview_mod, "materialize", lambda tree, state: tmp_path)
    monkeypatch.setattr(preview_mod, "hasten", lambda commands, lab: {})
    monkeypatch.setattr(preview_mod, "forget_path_mtus", lambda lab: [])
    store = StackState.of(tmp_path, "staging")
    store.save_staging(last)
    preview_mod._staging_baseline("staging", LIVE, Backend(state=tmp_path))
    assert asked == [hosts]
    assert store.staging() == (StagingRecord(LIVE.id, LIVE.id) if ok else StagingRecord())


# --- the snapshot of the tree -------------------------------------------------------------------

def test_the_converge_works_from_a_snapshot_never_from_the_checkout(tmp_path: Path) -> None:
    """The tree checked (previewed, gated) is the tree converged, even when the checkout held
    it at the time and was edited afterwards."""
    repo = tmp_path / "repo"
    (repo / "roles" / "dns" / "defaults").mkdir(parents=True)
    (repo / "roles" / "dns" / "defaults" / "main.yml").write_text("dns_ttl: 300\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    tree = worktree_tree(repo)
    folder = materialize(tree, tmp_path / "state", repo)
    (repo / "roles" / "dns" / "defaults" / "main.yml").write_text("dns_ttl: 1\n")
    assert folder != repo
    assert (folder / "roles" / "dns" / "defaults" / "main.yml").read_text() == "dns_ttl: 300\n"
    assert materialize(tree, tmp_path / "state", repo) == folder




def test_the_live_stack_changed_while_the_preview_ran_is_an_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Someone converged live meanwhile: the verdict speaks of a stack that no longer exists."""
    lab = StagedLab(monkeypatch, tmp_path, ["ns1"])
    live = {"digest": "before"}
    monkeypatch.setattr(preview_mod, "config_digest", lambda _: live["digest"])
    lab.on_change = lambda: live.update(digest="touched")
    result = lab.run()
    assert (result.verdict, result.exit_code) == (ERROR, 2)
    assert (result.live_digest, result.live_digest_after) == ("before", "touched")
    assert result.reasons[-1] == ("the live stack 'lab' changed while the preview ran (someone "
                                  "else is at work on it): preview again")


def test_a_change_whose_configuration_fails_on_staging_is_unsafe(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A rendered configuration the daemon rejects (its validate step fails the task) never
    reaches live: the converge's error is the reason, even with every flow still answering."""
    lab = StagedLab(monkeypatch, tmp_path, ["lb1"])
    lab.staged = ConvergeResult("failed", 1.0, {"lb1": HostResult(ok=3, failed=1)},
                                ["lb1: haproxy -c: [ALERT] parsing [/etc/haproxy/haproxy.cfg:9]"])
    result = lab.run()
    assert (result.verdict, result.exit_code) == (UNSAFE, 1)
    assert result.reasons[0] == ("the change does not apply: lb1: haproxy -c: [ALERT] parsing "
                                 "[/etc/haproxy/haproxy.cfg:9]")
