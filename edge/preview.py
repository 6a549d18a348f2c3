"""Staged change previews: try a change on a staged copy of the edge and judge it by the contract.

1. Static: `ansible-playbook --check --diff` of the change against the live stack (what would
   change, per host); nothing is written anywhere.
2. Staged: the staging stack (same topology, its own slot) is brought to the live revision, the
   contract is measured (baseline), the change is applied to staging, the contract is measured
   again.
3. Differential: every flow whose verdict changed. A must-work flow that broke is an outage, or
   lost redundancy while another flow of the same contract entry still works; a must-block flow
   that opened is a security regression.
4. Verdict: SAFE, UNSAFE (with the reasons) or ERROR (the preview itself could not be made).

The live stack is only read (check mode); every write goes to the staging stack.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import docker

from edge import configure, stack
from edge.change import Change
from edge.contract import expand, load_contract
from edge.diagnose import where_it_dies
from edge.probes import Result, settle

SAFE, UNSAFE, ERROR = "SAFE", "UNSAFE", "ERROR"
# After the change: a moment for daemons to act on it (reloads, route withdrawals), then how long
# flows may take to recover before they count as broken.
AFTER_GRACE_S = 2.0
AFTER_SETTLE_S = 10.0
BASELINE_SETTLE_S = 20.0

Progress = Callable[[str], None]
# What a node's configuration is, for "the live lab is untouched": its config files, ruleset,
# routes and which supervised programs run.
DIGEST_SCRIPT = (
    "find /etc /opt /var/lib/bind -xdev -type f 2>/dev/null | sort | xargs -r sha256sum;"
    " nft list ruleset 2>/dev/null; ip route; supervisorctl status | awk '{print $1, $2}'"
)


def config_digest(outputs: dict, client: docker.DockerClient | None = None) -> str:
    """One digest over every node's configuration as it is live (read-only)."""
    client = client or docker.from_env()
    digest = hashlib.sha256()
    for name, node in sorted(outputs["nodes"].items()):
        try:
            _, out = client.containers.get(node["container"]).exec_run(["sh", "-c", DIGEST_SCRIPT])
        except docker.errors.NotFound:
            out = b"missing"
        digest.update(name.encode() + b"\0" + out)
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class FlowDelta:
    """A flow whose result differs between baseline and after the change."""

    flow: str
    rule: str
    vantage: str
    target: str               # the node the flow is about
    must: str
    kind: str                 # outage, redundancy-lost, security-regression, fixed, answers-changed
    before: str               # outcome words, e.g. "answered 200" / "timeout"
    after: str
    reason: str
    where: str = ""           # where the flow dies, when the lab can tell


@dataclass
class Preview:
    """Everything a preview found, for the terminal, JSON, JUnit and (later) HTML."""

    change: Change
    live: str
    staging: str
    verdict: str = ERROR
    reasons: list[str] = field(default_factory=list)
    static_diffs: dict[str, int] = field(default_factory=dict)   # host -> files/tasks changed
    live_digest: str = ""
    topology: dict = field(default_factory=dict)    # the staging stack's outputs, for drawing
    deltas: list[FlowDelta] = field(default_factory=list)
    baseline: list[Result] = field(default_factory=list)
    after: list[Result] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return {SAFE: 0, UNSAFE: 1}.get(self.verdict, 2)


def _words(result: Result) -> str:
    status = result.detail.get("status")
    return f"{result.outcome} {status}" if status else result.outcome


def compare(baseline: list[Result], after: list[Result]) -> list[FlowDelta]:
    """Classify every flow whose verdict or DNS answers changed (pure: no lab needed)."""
    before = {r.flow.name: r for r in baseline}
    after_by_rule: dict[str, list[Result]] = {}
    for r in after:
        after_by_rule.setdefault(r.flow.rule, []).append(r)
    deltas = []
    for now in after:
        was = before.get(now.flow.name)
        if was is None:
            continue
        kind = ""
        if was.ok and not now.ok:
            if now.flow.must == "block":
                kind = "security-regression"
            elif any(o.ok for o in after_by_rule[now.flow.rule]):
                kind = "redundancy-lost"
            else:
                kind = "outage"
        elif not was.ok and now.ok:
            kind = "fixed"
        elif now.flow.kind == "dns" and was.detail.get("answers") != now.detail.get("answers"):
            kind = "answers-changed"
        if kind:
            deltas.append(FlowDelta(now.flow.name, now.flow.rule, now.flow.vantage,
                                    now.flow.target, now.flow.must, kind, _words(was),
                                    _words(now), now.reason))
    return deltas


def judge(deltas: list[FlowDelta], converge_errors: list[str]) -> tuple[str, list[str]]:
    """SAFE or UNSAFE, and why (pure)."""
    reasons = [f"the change does not apply: {e}" for e in converge_errors]
    words = {"outage": "OUTAGE: outside users lose", "redundancy-lost": "REDUNDANCY LOST:",
             "security-regression": "SECURITY REGRESSION: now open:"}
    reasons += [f"{words[d.kind]} {d.flow} ({d.before} -> {d.after})"
                + (f": {d.where}" if d.where else "") for d in deltas if d.kind in words]
    return (UNSAFE if reasons else SAFE), reasons


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _set_stopped(name: str, nodes: tuple[str, ...], backend: stack.Backend) -> None:
    stack.pulumi(["config", "rm", "stopped", "--stack", name], backend, check=False)
    for i, node in enumerate(nodes):
        stack.pulumi(["config", "set", "--path", f"stopped[{i}]", node, "--stack", name], backend)


def _limit(stopped: tuple[str, ...]) -> str | None:
    return ":".join(["all"] + [f"!{n}" for n in stopped]) if stopped else None


def run_preview(change: Change, live: str, staging: str, contract: Path,
                backend: stack.Backend = stack.Backend(), staging_config: dict[str, str] | None = None,
                progress: Progress = _stderr) -> Preview:
    """Preview `change` for the `live` stack on the `staging` stack; never writes to `live`."""
    preview = Preview(change, live, staging)
    live_outputs = stack.outputs(live, backend)
    preview.live_digest = config_digest(live_outputs)
    timer = time.monotonic()

    def lap(name: str) -> None:
        nonlocal timer
        preview.seconds[name] = round(time.monotonic() - timer, 2)
        timer = time.monotonic()

    progress(f"preview: [1/3] static: check mode against '{live}'")
    static = configure.converge(live, backend.state, check=True, extra_vars=change.vars,
                                limit=_limit(change.stop), progress=None)
    preview.static_diffs = {h: len(d) for h, d in static.diffs.items()}
    if not static.ok:
        preview.verdict, preview.reasons = UNSAFE, [f"static check failed: {e}"
                                                    for e in static.errors]
        lap("static")
        return preview
    lap("static")

    progress(f"preview: [2/3] staged: '{staging}' at the live revision, baseline")
    stack.select_stack(staging, backend, staging_config or {})
    _set_stopped(staging, (), backend)
    stack.up(staging, backend, stream=False)
    base = configure.converge(staging, backend.state, progress=None)
    outputs = preview.topology = stack.outputs(staging, backend)
    flows = expand(load_contract(contract), outputs)
    preview.baseline = settle(flows, BASELINE_SETTLE_S)
    failing = [r.flow.name for r in preview.baseline if not r.ok]
    if not base.ok or failing:
        preview.reasons = [f"staging is not green before the change: {base.errors or failing}"]
        lap("baseline")
        return preview
    lap("baseline")

    progress(f"preview: [3/3] staged: applying change {change.digest} to '{staging}'")
    if change.stop:
        _set_stopped(staging, change.stop, backend)
        stack.up(staging, backend, stream=False)
    applied = configure.converge(staging, backend.state, extra_vars=change.vars,
                                 limit=_limit(change.stop), progress=None)
    time.sleep(AFTER_GRACE_S)
    preview.after = settle(flows, AFTER_SETTLE_S)
    by_name = {r.flow.name: r.flow for r in preview.after}
    preview.deltas = [
        replace(d, where=where_it_dies(by_name[d.flow], d.before, d.after, outputs))
        if d.kind in ("outage", "redundancy-lost") else d
        for d in compare(preview.baseline, preview.after)]
    preview.verdict, preview.reasons = judge(preview.deltas, applied.errors)
    lap("change")
    if config_digest(live_outputs) != preview.live_digest:
        preview.verdict = ERROR
        preview.reasons.append(f"the live stack '{live}' changed while the preview ran "
                               "(someone else is at work on it): preview again")
    return preview
