"""The apply's decisions without a lab: edge/workflow/apply.py's `Apply` with a stand-in live stack (its
converge, watchdog, verification and the change's scope) and a clock that never waits. The gate,
the lock and the audit log are the real ones, on a temporary state folder; the contract is a
file of its own there."""

from __future__ import annotations

import getpass
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest

from edge.engines.configure import ConvergeResult
from edge.lab.events import Alarm, Event, Sample
from edge.lab.watch import SECURITY
from edge.model.change import Change
from edge.model.contract import Contract, Flow, load_contract
from edge.model.revision import Revision
from edge.model.state import LiveRecord, PreviewRecord, StackState, stack_lock
from edge.workflow.apply import Apply, ApplyResult
from edge.workflow.staged import file_digest

LIVE = Revision("a" * 40, {"dns_ttl": 900})
CHANGE = Change(Path("changes/c.yaml"), "a change", {"dns_ttl": 60})
TARGET = CHANGE.on(LIVE)
NAMES = ["http-app-at-lb@lb1", "http-app-at-lb@lb2", "dns-at-ns@ns1"]
SCOPE = ["lb1", "lb2"]
CONTRACT_TEXT = """flows:
  - name: http-app-at-lb
    from: client
    must: work
    http: {to: {role: loadbalancer, network: dmz}, host: hello.apps.paas.test, path: /}
"""


def flow(name: str) -> Flow:
    return Flow(name, name.split("@")[0], "client", "c-client", "http", "work", {})


def converged(touched: set[str], ok: bool = True, errors: list[str] | None = None
              ) -> ConvergeResult:
    return ConvergeResult("successful" if ok else "failed", 1.0, {}, errors or [],
                          touched=touched)


class FakeWatchdog:
    """Flows are ok unless named in `down_now`; every mark moves its clock on by a second."""

    def __init__(self, flows: list[Flow], green: bool, restored: bool) -> None:
        self.flows = flows
        self.green, self.restored = green, restored
        self.down_now: list[str] = []
        self.exposed: list[str] = []           # must-block flows that opened
        self.failed_at: float | None = None
        self.t = 10.0
        self.events: list[Event] = []
        self.stopped = False

    def wait_green(self, timeout_s: float) -> bool:
        return self.green

    def states(self) -> dict[str, str]:
        return {f.name: "down" if f.name in self.down_now else "ok" for f in self.flows}

    def down(self) -> list[str]:
        return list(self.down_now)

    def active(self) -> list[Alarm]:
        return [Alarm(SECURITY, "security", (f,)) for f in self.exposed]

    def now(self) -> float:
        return self.t

    def mark(self, kind: str, note: str) -> Event:
        self.t += 1.0
        self.events.append(Event(self.t, kind, note))
        return self.events[-1]

    def failing_since(self, names: list[str]) -> float | None:
        return self.failed_at if set(names) & set(self.down_now) else None

    def wait_event(self, kind: str, after: float, timeout_s: float) -> Event | None:
        return Event(after + 2.5, kind, "all flows ok") if self.restored else None

    def recorded(self) -> tuple[list[Event], list[Sample]]:
        return list(self.events), []

    def stop(self) -> None:
        self.stopped = True

    def break_flow(self, name: str) -> None:
        """What a breaking change does while it converges: a watched flow goes down."""
        self.failed_at = self.t + 0.5
        self.down_now.append(name)


class FakeLab:
    """The live stack: `apply` decides how the change's converge goes, `undo` how the
    rollback's does; every converge and save is recorded."""

    def __init__(self, apply: Callable[[FakeLab, threading.Event], ConvergeResult],
                 undo: ConvergeResult | None = None, failing: list[str] | None = None,
                 green: bool = True, restored: bool = True, down_before: list[str] = (),
                 scope: list[str] | None = SCOPE) -> None:
        self.apply, self.undo, self.failing = apply, undo or converged(set()), failing or []
        self.hosts_in_scope = scope
        self.contracts: list[Contract] = []       # the contract each flows() and watch() got
        self.watcher = FakeWatchdog([flow(n) for n in NAMES], green, restored)
        self.watcher.down_now = list(down_before)
        self.watched = False
        self.converges: list[tuple[str, str, list[str] | None]] = []
        self.verified = 0
        self.saves: list[tuple[str, str]] = []

    def flows(self, contract: Contract) -> list[Flow]:
        self.contracts.append(contract)
        return [flow(n) for n in NAMES]

    def watch(self, flows: list[Flow], contract: Contract) -> FakeWatchdog:
        self.contracts.append(contract)
        self.watched = True
        return self.watcher

    def scope(self, change: Change, current: Revision) -> list[str] | None:
        return self.hosts_in_scope

    def converge(self, frm: Revision, to: Revision, hosts: list[str] | None,
                 cancel: threading.Event | None = None) -> ConvergeResult:
        self.converges.append((frm.id, to.id, hosts))
        return self.apply(self, cancel or threading.Event()) if to == TARGET else self.undo

    def verify(self, flows: list[Flow]) -> list[str]:
        self.verified += 1
        return self.failing

    def save(self, revision: Revision, how: str) -> None:
        self.saves.append((revision.id, how))


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float, /) -> None:
        self.t += seconds


def clean(touched: set[str]) -> Callable[[FakeLab, threading.Event], ConvergeResult]:
    return lambda lab, cancel: converged(touched)


def breaks(name: str, touched: set[str]) -> Callable[[FakeLab, threading.Event], ConvergeResult]:
    """A converge that takes a watched flow down, then runs until the watchdog cancels it."""
    def run(lab: FakeLab, cancel: threading.Event) -> ConvergeResult:
        lab.watcher.break_flow(name)
        assert cancel.wait(10), "the watchdog never cancelled the converge"
        return converged(touched, ok=False, errors=["cancelled"])
    return run


@pytest.fixture
def state(tmp_path: Path) -> Path:
    StackState.of(tmp_path, "lab").save_live(LiveRecord(LIVE.tree, LIVE.vars, LIVE.stop,
                                                         LIVE.id, "up"))
    (tmp_path / "contract.yaml").write_text(CONTRACT_TEXT)
    return tmp_path


def preview(state: Path, verdict: str = "SAFE", revision: str = LIVE.id, **made_under) -> None:
    """A preview record as `edge preview` writes it: made under what `run` applies (the
    contract file of `state`, staging 'staging', scope SCOPE, LIVE -> TARGET), unless
    `made_under` says otherwise."""
    contract = state / "contract.yaml"
    StackState.of(state, "lab").save_preview(PreviewRecord(
        CHANGE.digest, verdict, revision, CHANGE.description, ["OUTAGE: x"], ["lb1"],
        **{"contract": str(contract), "contract_digest": file_digest(contract),
           "staging": "staging", "scope": SCOPE, "target_revision": TARGET.id,
           "target_tree": TARGET.tree} | made_under))


def run(state: Path, lab: FakeLab, force: bool = False, contract: Path | None = None,
        staging: str = "staging") -> ApplyResult:
    return Apply(CHANGE, "lab", state, lab, load_contract(contract or state / "contract.yaml"),
                 force, progress=lambda _: None, clock=FakeClock(), staging=staging).run()


def audited(state: Path) -> dict:
    return StackState.of(state, "lab").audit()[-1].details


def test_a_safe_change_is_applied_and_verified(state: Path) -> None:
    preview(state)
    lab = FakeLab(clean({"lb1", "lb2"}))
    result = run(state, lab)
    assert (result.outcome, result.exit_code, result.revision) == ("applied", 0, TARGET.id)
    assert lab.converges == [(LIVE.id, TARGET.id, SCOPE)]    # the previewed scope, not ["lb1"]
    assert lab.verified == 1 and lab.saves == [(TARGET.id, f"apply {CHANGE.digest}")]
    assert result.apply_s == 0.0 and result.verified_s == 0.0 and result.detect_s is None
    assert [e.kind for e in result.events] == ["apply", "verified"] and lab.watcher.stopped
    assert audited(state) | {"outcome": "applied", "preview": "SAFE", "from": LIVE.id,
                             "to": TARGET.id} == audited(state)


def test_a_flow_going_down_rolls_back_exactly_the_touched_hosts(state: Path) -> None:
    preview(state)
    lab = FakeLab(breaks("http-app-at-lb@lb1", touched={"lb1"}))
    result = run(state, lab)
    assert (result.outcome, result.exit_code, result.revision) == ("rolled-back", 1, LIVE.id)
    assert result.reasons == ["must-work flows down: http-app-at-lb@lb1"]
    assert result.broken == ["http-app-at-lb@lb1"]
    # The scope is lb1 and lb2; the cancelled converge had only touched lb1.
    assert lab.converges == [(LIVE.id, TARGET.id, SCOPE), (TARGET.id, LIVE.id, ["lb1"])]
    assert lab.verified == 0 and lab.saves == [(LIVE.id, f"rollback of {TARGET.id}")]
    # Marks at 11 (apply) and 12 (rollback); the flow failed at 11.5; green 2.5 s after 12.
    assert (result.detect_s, result.restore_s) == (0.5, 3.0)
    assert audited(state)["outcome"] == "rolled-back"


def test_the_audit_line_says_when_who_what_and_the_figures(state: Path) -> None:
    """What a reviewer reads after an incident: when, who, which stack and change, the preview
    it went through, the revisions, the hosts and the watchdog's figures."""
    preview(state)
    started = datetime.now(timezone.utc)
    result = run(state, FakeLab(breaks("http-app-at-lb@lb1", touched={"lb1"})))
    line = StackState.of(state, "lab").audit()[-1].to_json()
    when = datetime.fromisoformat(line.pop("when"))
    assert started - timedelta(seconds=1) <= when <= datetime.now(timezone.utc), when
    assert line == {
        "stack": "lab", "user": getpass.getuser(), "action": "apply",
        "change": CHANGE.digest, "description": "a change", "forced": False, "preview": "SAFE",
        "outcome": "rolled-back", "from": LIVE.id, "to": LIVE.id, "reasons": result.reasons,
        "contract": file_digest(state / "contract.yaml"), "hosts": SCOPE,
        "detect_s": 0.5, "restore_s": 3.0, "verified_s": None}


def test_detection_does_not_wait_for_the_cancelled_converge_to_stop(state: Path) -> None:
    """A converge that takes 5 s to give up after the cancel (an Ansible task mid-way) does not
    count in the time the watchdog took to decide."""
    preview(state)

    def slow_to_stop(lab: FakeLab, cancel: threading.Event) -> ConvergeResult:
        lab.watcher.break_flow("http-app-at-lb@lb1")
        assert cancel.wait(10), "the watchdog never cancelled the converge"
        lab.watcher.t += 5.0
        return converged({"lb1"}, ok=False, errors=["cancelled"])

    result = run(state, FakeLab(slow_to_stop))
    assert result.outcome == "rolled-back"
    # Marks at 11 (apply) and 12 (rollback, decided before the converge stopped at 17).
    assert (result.detect_s, result.restore_s) == (0.5, 3.0)


def test_a_must_block_flow_that_opens_rolls_back(state: Path) -> None:
    """The keystroke that deletes the firewall's ruleset breaks no must-work flow: the watchdog
    rolls it back because a must-block flow opened."""
    preview(state)

    def opens(lab: FakeLab, cancel: threading.Event) -> ConvergeResult:
        lab.watcher.exposed.append("no-bgp-at-firewall@firewall")
        assert cancel.wait(10), "the watchdog never cancelled the converge"
        return converged({"firewall"}, ok=False, errors=["cancelled"])

    lab = FakeLab(opens)
    result = run(state, lab)
    assert result.outcome == "rolled-back"
    assert result.reasons == ["SECURITY EXPOSURE: must-block flows opened: "
                              "no-bgp-at-firewall@firewall"]
    assert lab.converges[1:] == [(TARGET.id, LIVE.id, ["firewall"])]


def test_only_flows_green_before_the_change_count_against_it(state: Path) -> None:
    """Forced onto a stack with a flow already down: that flow does not roll the change back."""
    lab = FakeLab(clean(set()), green=False, down_before=["dns-at-ns@ns1"])
    result = run(state, lab, force=True)
    assert result.outcome == "applied" and result.forced
    assert lab.converges == [(LIVE.id, TARGET.id, None)]             # no preview: every host
    assert audited(state)["preview"] == "forced"


def test_a_converge_failure_rolls_back(state: Path) -> None:
    preview(state)
    lab = FakeLab(lambda lab, cancel: converged({"lb2"}, ok=False, errors=["lb2: task failed"]))
    result = run(state, lab)
    assert result.outcome == "rolled-back"
    assert result.reasons == ["the change failed to converge: lb2: task failed"]
    assert lab.converges[1:] == [(TARGET.id, LIVE.id, ["lb2"])] and lab.verified == 0
    assert result.detect_s == 0.0 and result.apply_s == 0.0


def test_a_verification_failure_rolls_back(state: Path) -> None:
    preview(state)
    lab = FakeLab(clean({"ns1"}), failing=["dns-at-ns@ns2"])
    result = run(state, lab)
    assert result.outcome == "rolled-back"
    assert result.reasons == ["post-apply verification failed: dns-at-ns@ns2"]
    assert lab.converges[1:] == [(TARGET.id, LIVE.id, ["ns1"])]
    assert result.verified_s is None


@pytest.mark.parametrize("undo, restored, said", [
    (converged({"ns1"}, ok=False, errors=["ns1: unreachable"]), True, "ns1: unreachable"),
    (converged({"ns1"}), False, "http-app-at-lb@lb1"),
], ids=["rollback converge failed", "service not back"])
def test_a_failed_rollback_exits_2_and_is_audited(state: Path, undo: ConvergeResult,
                                                  restored: bool, said: str) -> None:
    preview(state)
    lab = FakeLab(breaks("http-app-at-lb@lb1", touched={"ns1"}), undo=undo, restored=restored)
    result = run(state, lab)
    assert (result.outcome, result.exit_code) == ("rollback-failed", 2)
    assert result.reasons[1] == f"service did not come back after the rollback: {said}"
    assert lab.saves == [(LIVE.id, f"rollback of {TARGET.id}")]     # what it runs, as intended
    entry = audited(state)
    assert entry["outcome"] == "rollback-failed" and entry["reasons"] == result.reasons
    assert entry["from"] == LIVE.id and entry["to"] == LIVE.id


@pytest.mark.parametrize("verdict, revision, said", [
    (None, LIVE.id, "no preview of change"),
    ("UNSAFE", LIVE.id, "said UNSAFE: OUTAGE: x"),
    ("SAFE", Revision("b" * 40).id, "stale preview"),
], ids=["no preview", "unsafe", "stale"])
def test_gate_refusals_never_converge(state: Path, verdict: str | None, revision: str,
                                      said: str) -> None:
    if verdict:
        preview(state, verdict, revision)
    lab = FakeLab(clean({"lb1"}))
    result = run(state, lab)
    assert (result.outcome, result.exit_code) == ("refused", 2) and said in result.reasons[0]
    assert not lab.watched and lab.converges == [] and lab.saves == []
    assert audited(state) | {"outcome": "refused", "reason": result.reasons[0]} == audited(state)


def test_a_stack_that_is_not_green_is_refused_before_converging(state: Path) -> None:
    preview(state)
    lab = FakeLab(clean({"lb1"}), green=False, down_before=["dns-at-ns@ns1"])
    result = run(state, lab)
    assert result.outcome == "refused" and "not green before the change (down: dns-at-ns@ns1)" \
        in result.reasons[0]
    assert lab.converges == [] and lab.watcher.stopped
    assert audited(state)["outcome"] == "refused"


def test_no_recorded_revision_and_a_locked_stack_are_refused(tmp_path: Path,
                                                             state: Path) -> None:
    result = run(tmp_path / "empty", FakeLab(clean(set())), contract=state / "contract.yaml")
    assert result.outcome == "refused" and "has no recorded revision" in result.reasons[0]
    preview(state)
    lab = FakeLab(clean({"lb1"}))
    with stack_lock(state, "lab", "another writer"):
        result = run(state, lab)
    assert result.outcome == "refused" and "is locked by" in result.reasons[0]
    assert not lab.watched and lab.converges == []


def test_an_interrupted_apply_leaves_a_record_of_what_live_runs_and_the_way_back(
        state: Path) -> None:
    """Ctrl-C (or SIGTERM) while the watchdog waits on the converge: the converge is cancelled,
    and the next command is told what state live is in and what to run."""
    preview(state)

    def interrupt() -> list[str]:
        raise KeyboardInterrupt

    def slow(lab: FakeLab, cancel: threading.Event) -> ConvergeResult:
        lab.watcher.down = interrupt            # the main thread is interrupted while waiting
        assert cancel.wait(10), "the interrupted apply never cancelled its converge"
        return converged({"lb1"}, ok=False, errors=["cancelled"])

    with pytest.raises(KeyboardInterrupt):
        run(state, FakeLab(slow))
    record = StackState.of(state, "lab").interrupted()
    assert record is not None and CHANGE.digest in record.what
    assert TARGET.id in record.state and LIVE.id in record.state and "lb1" in record.state
    assert record.way_back.startswith("edge converge --stack lab")
    assert StackState.of(state, "lab").live().id == LIVE.id      # the record still says A
