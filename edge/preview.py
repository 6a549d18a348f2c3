"""Staged change previews: try a change on a staged copy of the edge and judge it by the contract.

1. Static: `pulumi preview --diff` (infrastructure) and `ansible-playbook --check --diff`
   (configuration, per host) of the change against the live stack; nothing is written there.
2. Staged: meanwhile the staging stack (same topology, its own slot) is brought to the live
   revision; the contract is measured (baseline); the change is applied to staging (only on the
   hosts the static stage says change); the contract is measured again.
3. Differential: every flow whose verdict changed. A must-work flow that broke is an outage, or
   lost redundancy while another flow of the same contract entry still works; a must-block flow
   that opened is a security regression.
4. Verdict: SAFE, UNSAFE (with the reasons) or ERROR (the preview itself could not be made).

The live stack is only read (check mode); every write goes to the staging stack.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import docker
import yaml

from edge import rollout, scope, stack
from edge.change import Change
from edge.configure import ConvergeResult, Progress, to_stderr
from edge.plan import PROJECT
from edge.revision import Revision, changed_paths, load_live, materialize, stack_dir
from edge.contract import expand, load_contract
from edge.diagnose import where_it_dies
from edge.policy import allow_rules, opened
from edge.probes import Result, settle

SAFE, UNSAFE, ERROR = "SAFE", "UNSAFE", "ERROR"
# After the change: a moment for daemons to act on it (reloads, route withdrawals), then how long
# flows may take to recover before they count as broken.
AFTER_GRACE_S = 2.0
AFTER_SETTLE_S = 10.0
BASELINE_SETTLE_S = 20.0

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
    infra_steps: list[str] = field(default_factory=list)          # pulumi preview: op resource
    scope: list[str] | None = None      # the hosts the change can touch (None: every host)
    policy: list[str] = field(default_factory=list)   # must-block flows the firewall would accept
    live_revision: str = ""
    live_digest: str = ""               # the live configuration before the preview...
    live_digest_after: str = ""         # ...and after it: equal, or the verdict is ERROR
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


def judge(deltas: list[FlowDelta], converge_errors: list[str],
          policy: list[str] = ()) -> tuple[str, list[str]]:
    """SAFE or UNSAFE, and why (pure). `policy`: must-block flows the firewall's rules accept."""
    reasons = [f"the change does not apply: {e}" for e in converge_errors]
    reasons += [f"SECURITY REGRESSION (firewall policy): {p}" for p in policy]
    words = {"outage": "OUTAGE: outside users lose", "redundancy-lost": "REDUNDANCY LOST:",
             "security-regression": "SECURITY REGRESSION: now open:"}
    reasons += [f"{words[d.kind]} {d.flow} ({d.before} -> {d.after})"
                + (f": {d.where}" if d.where else "") for d in deltas if d.kind in words]
    return (UNSAFE if reasons else SAFE), reasons


def infra_preview(live: str, target: Revision, backend: stack.Backend) -> list[str]:
    """`pulumi preview --diff` of the live stack at the target revision's topology and stopped
    nodes, through a copy of its config file (the live stack's own config is not touched)."""
    tree = materialize(target.tree, backend.state)
    current = stack.stack_config(live)
    config = {"encryptionsalt": stack.salt(live),
              "config": {f"{PROJECT}:{k}": v for k, v in (current | {
                  "topology": rollout.topology_path(tree, current.get("topology")),
                  "stopped": sorted(target.stop)}).items()}}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(config, file)
        file.flush()
        out = stack.pulumi(["preview", "--diff", "--json", "--stack", live,
                            "--config-file", file.name], backend).stdout
    steps = json.loads(out).get("steps") or []
    return [f"{step['op']} {step['urn'].split('::')[-1]}" for step in steps
            if step.get("op") != "same"]


def static_stage(live: str, target: Revision, backend: stack.Backend,
                 hosts: list[str] | None = None) -> tuple[list[str], ConvergeResult]:
    """What the target revision would change on the live stack, written nowhere: Pulumi's
    resource steps and Ansible's check-mode result on `hosts` (None: all), both at once."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        infra = pool.submit(infra_preview, live, target, backend)
        check = rollout.configuration(live, target, backend, hosts=hosts, check=True)
        return infra.result(), check


def change_scope(change: Change, live: Revision, outputs: dict, backend: stack.Backend
                 ) -> list[str] | None:
    """The live stack's hosts the change can touch (edge/scope.py); None: all of them."""
    target = change.on(live)
    return scope.hosts(change, changed_paths(live.tree, target.tree), outputs,
                       materialize(target.tree, backend.state) / "roles")


def _staging_baseline(staging: str, live: Revision, backend: stack.Backend) -> ConvergeResult:
    """Bring staging to the live revision. Staging's record says which revision it runs and
    which hosts the last preview changed on top of which base: when it already runs the live
    revision (that change was applied since) nothing is converged; when the last preview was of
    this same live revision, only the hosts it changed are converged back."""
    record = stack_dir(backend.state, staging) / "staging.json"
    last = json.loads(record.read_text()) if record.exists() else {}
    rollout.infrastructure(staging, live, backend)
    if last.get("at") == live.id:
        hosts: list[str] | None = []
    else:
        hosts = last.get("hosts") if last.get("base") == live.id else None
    result = rollout.configuration(staging, live, backend, hosts=hosts)
    record.write_text(json.dumps({"at": live.id if result.ok else "", "base": live.id,
                                  "hosts": []}))
    return result


def _staging_change(staging: str, live: Revision, target: Revision, backend: stack.Backend,
                    hosts: list[str]) -> ConvergeResult:
    """Apply the change on staging, converging only the hosts the static stage says change."""
    record = stack_dir(backend.state, staging) / "staging.json"
    touched = sorted(set(hosts) | set(target.stop) | set(live.stop))
    record.write_text(json.dumps({"at": "", "base": live.id, "hosts": touched}))
    if target.stop != live.stop or target.tree != live.tree:
        rollout.infrastructure(staging, target, backend)
    if target.tree != live.tree:
        hosts = None          # the topology may have changed too: converge everything
    result = rollout.configuration(staging, target, backend, hosts=hosts)
    if result.ok:
        record.write_text(json.dumps({"at": target.id, "base": live.id, "hosts": touched}))
    return result


def run_preview(change: Change, live: str, staging: str, contract: Path,
                backend: stack.Backend = stack.Backend(),
                staging_config: dict[str, str] | None = None,
                progress: Progress = to_stderr) -> Preview:
    """Preview `change` for the `live` stack on the `staging` stack; never writes to `live`."""
    preview = Preview(change, live, staging)
    current = load_live(backend.state, live)
    if current is None:
        preview.reasons = [f"stack '{live}' has no recorded revision: bring it up with "
                           f"`edge up --stack {live}` first"]
        return preview
    preview.live_revision = current.id
    target = change.on(current)
    live_outputs = stack.outputs(live, backend)
    preview.live_digest = config_digest(live_outputs)
    timer = time.monotonic()

    def lap(name: str) -> None:
        nonlocal timer
        preview.seconds[name] = round(time.monotonic() - timer, 2)
        timer = time.monotonic()

    progress(f"preview: [1/3] static: pulumi preview --diff and check mode against '{live}'; "
             f"meanwhile '{staging}' is brought to the live revision {current.id}")
    stack.select_stack(staging, backend, staging_config or {})
    preview.scope = change_scope(change, current, live_outputs, backend)
    with ThreadPoolExecutor(max_workers=1) as pool:
        base = pool.submit(_staging_baseline, staging, current, backend)
        preview.infra_steps, static_result = static_stage(live, target, backend, preview.scope)
        base_result = base.result()
    preview.static_diffs = {h: len(d) for h, d in static_result.diffs.items()}
    lap("static+baseline")
    if not static_result.ok:
        preview.verdict, preview.reasons = UNSAFE, [f"static check failed: {e}"
                                                    for e in static_result.errors]
        return preview
    the_contract = load_contract(contract)
    preview.policy = opened(expand(the_contract, live_outputs),
                            allow_rules(materialize(target.tree, backend.state), target.vars),
                            live_outputs, the_contract.inside)

    progress(f"preview: [2/3] staged: baseline of the contract on '{staging}'")
    outputs = preview.topology = stack.outputs(staging, backend)
    flows = expand(the_contract, outputs)
    preview.baseline = settle(flows, BASELINE_SETTLE_S)
    failing = [r.flow.name for r in preview.baseline if not r.ok]
    if not base_result.ok or failing:
        preview.reasons = [f"staging is not green before the change: "
                           f"{base_result.errors or failing}"]
        lap("baseline")
        return preview
    lap("baseline")

    progress(f"preview: [3/3] staged: applying change {change.digest} to '{staging}'")
    changing = [h for h, r in static_result.hosts.items() if r.changed]
    applied = _staging_change(staging, current, target, backend, changing)
    time.sleep(AFTER_GRACE_S)
    preview.after = settle(flows, AFTER_SETTLE_S)
    by_name = {r.flow.name: r.flow for r in preview.after}
    preview.deltas = [
        replace(d, where=where_it_dies(by_name[d.flow], d.before, d.after, outputs))
        if d.kind in ("outage", "redundancy-lost") else d
        for d in compare(preview.baseline, preview.after)]
    preview.verdict, preview.reasons = judge(preview.deltas, applied.errors, preview.policy)
    lap("change")
    preview.live_digest_after = config_digest(live_outputs)
    if preview.live_digest_after != preview.live_digest:
        preview.verdict = ERROR
        preview.reasons.append(f"the live stack '{live}' changed while the preview ran "
                               "(someone else is at work on it): preview again")
    return preview
