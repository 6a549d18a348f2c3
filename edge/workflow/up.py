"""What changes a stack, as functions: `edge up`, `converge`, `down`, `fault inject|clear`, and
`edge verify` (read only): bring a stack to its revision (infrastructure, configuration), then
measure the contract.

Every writer of a stack holds the stack's writer lock (edge/model/state.py) for its whole run, so two
writers never interleave on one stack; a read-only converge (`--check`) and `verify` take none.

Why here and not in the CLI: tests and benchmarks bring labs up too, and must do exactly what a
user's `edge up` does (same revision, same settle time, same record of what the stack runs), so
they call these functions instead of re-implementing the sequence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors

from edge.engines import docker_exec, stack
from edge.engines.configure import ConvergeResult, Progress
from edge.lab import faults
from edge.lab.probes import Result, settle
from edge.model.contract import Contract, expand, load_contract
from edge.model.lab import Lab
from edge.model.revision import Revision, load_live, save_live, stack_dir, worktree_tree
from edge.model.state import AuditEvent, StackState, stack_lock
from edge.workflow import rollout

# After a converge, how long failing flows may take to recover (BGP, health checks) before they
# count as failures.
SETTLE_S = 20.0

Stage = Callable[[str, int, int], None]


def _quiet_stage(name: str, number: int, total: int) -> None:
    """The default stage callback: say nothing (tests, benchmarks)."""


def node_states(lab: Lab) -> dict[str, str]:
    """Each node's container state as the engine reports it (running, exited, missing...)."""
    states = {}
    for name, node in lab.nodes.items():
        try:
            states[name] = docker_exec.client(node.endpoint).api.inspect_container(
                node.container_id)["State"]["Status"]
        except docker.errors.NotFound:
            states[name] = "missing"
    return states


def verify(lab: Lab, contract: Contract, settle_s: float = 0.0) -> list[Result]:
    """Probe the contract's flows on a stack, waiting up to `settle_s` for failing ones to
    recover (as right after a converge). The contract comes loaded: callers read it before they
    change anything, so a bad one is refused with nothing done."""
    return settle(expand(contract, lab), settle_s)


@dataclass
class UpResult:
    """What `edge up` did: the stack as it stands, the converge, the contract measured after it,
    each node's state."""

    stack: str
    lab: Lab
    converge: ConvergeResult
    results: list[Result]
    states: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    target: Target | None = None

    @property
    def down(self) -> list[str]:
        return sorted(n for n, s in self.states.items() if s != "running")

    @property
    def failing(self) -> int:
        return sum(not r.ok for r in self.results)

    @property
    def ok(self) -> bool:
        return self.converge.ok and not self.down and not self.failing


@dataclass(frozen=True)
class Target:
    """The revision a writer brings a stack to, and whether the working tree is left out."""

    revision: Revision
    forced: bool                  # the working tree's edits were taken without preview + apply
    pending: str | None = None    # the working tree's tree when it differs and is left out


def target_revision(state: Path, stack_name: str, force: bool = False) -> Target:
    """What `edge up` and `edge converge` bring a stack to.

    A stack with a recorded revision gets that revision (applied change files included), never
    silently the working tree: edits in the checkout reach a live stack through preview + apply,
    or through `force`, which takes the working tree with the applied variables on top and is
    recorded in the audit log. A stack with no record yet gets the working tree.
    """
    recorded = load_live(state, stack_name)
    tree = worktree_tree()
    if recorded is None:
        return Target(Revision(tree), forced=False)
    if recorded.tree == tree:
        return Target(recorded, forced=False)
    if force:
        return Target(Revision(tree, recorded.vars, recorded.stop), forced=True)
    return Target(recorded, forced=False, pending=tree)


def _record(state: Path, stack_name: str, target: Target, how: str) -> None:
    """Record what the stack runs now, and a forced working tree in the audit log."""
    save_live(state, stack_name, target.revision, how)
    if target.forced:
        StackState.of(state, stack_name).append_audit(AuditEvent(
            stack_name, f"{how}-forced", {"revision": target.revision.id,
                                          "tree": target.revision.tree,
                                          "reason": "working tree taken without preview"}))


def bring_up(stack_name: str, contract_path: Path | str, *, config: dict[str, str] | None = None,
             backend: stack.Backend = stack.Backend(), stream: bool = False, force: bool = False,
             progress: Progress | None = None, on_stage: Stage = _quiet_stage) -> UpResult:
    """Infrastructure, then configuration, then verification, each timed; the revision is
    recorded as what the stack runs once the converge succeeded. The contract is read first: a
    bad one is refused before anything is made or changed, not after the lab is up."""
    contract = load_contract(contract_path)
    timings: dict[str, float] = {}

    def stage(name: str, func, *a, **kw):
        on_stage(name, len(timings) + 1, 3)
        started = time.monotonic()
        value = func(*a, **kw)
        timings[name] = time.monotonic() - started
        return value

    with stack_lock(backend.state, stack_name, "edge up"):
        stack.select_stack(stack_name, backend, config or {})
        target = target_revision(backend.state, stack_name, force)
        stage("pulumi up", rollout.infrastructure, stack_name, target.revision, backend,
              stream=stream)
        result = stage("converge", rollout.configuration, stack_name, target.revision, backend,
                       progress=progress)
        if result.ok:
            _record(backend.state, stack_name, target, "up")
            StackState.of(backend.state, stack_name).clear_interrupted()
    lab = stack.lab(stack_name, backend)
    results = stage("verify", verify, lab, contract, SETTLE_S)
    return UpResult(stack_name, lab, result, results, node_states(lab), timings, target)


@dataclass
class ClearResult:
    """What `edge fault clear` did: the faults undone, the converge back to the revision, the
    contract measured after it."""

    undone: list[faults.Fault]
    converge: ConvergeResult
    results: list[Result]

    @property
    def failing(self) -> int:
        return sum(not r.ok for r in self.results)

    @property
    def ok(self) -> bool:
        return self.converge.ok and not self.failing


def clear_faults(stack_name: str, contract_path: Path | str,
                 backend: stack.Backend = stack.Backend()) -> ClearResult:
    """Undo every active fault (newest first), converge the stack to the revision it runs, and
    verify the contract green."""
    contract = load_contract(contract_path)
    lab = stack.lab(stack_name, backend)
    with stack_lock(backend.state, stack_name, "edge fault clear"):
        undone = faults.clear(stack_dir(backend.state, stack_name), lab)
        result = rollout.configuration(
            stack_name, target_revision(backend.state, stack_name).revision, backend)
    return ClearResult(undone, result, verify(lab, contract, SETTLE_S))


def inject_fault(stack_name: str, kind: str, node: str, options: dict,
                 backend: stack.Backend = stack.Backend()) -> faults.Fault:
    """Break the stack for real; the fault is recorded before it is injected."""
    lab = stack.lab(stack_name, backend)
    with stack_lock(backend.state, stack_name, f"edge fault inject {kind} {node}"):
        return faults.inject(kind, node, lab, options,
                             state_dir=stack_dir(backend.state, stack_name))


def converge(stack_name: str, check: bool = False, force: bool = False,
             backend: stack.Backend = stack.Backend(),
             progress: Progress | None = None) -> tuple[ConvergeResult, Target]:
    """Converge the stack to its recorded revision (`check`: a dry run, which writes nothing;
    `force`: the working tree instead, recorded as forced)."""
    target = target_revision(backend.state, stack_name, force)
    if check:
        return rollout.configuration(stack_name, target.revision, backend, check=True,
                                     progress=progress), target
    with stack_lock(backend.state, stack_name, "edge converge"):
        result = rollout.configuration(stack_name, target.revision, backend, progress=progress)
        if result.ok and (target.forced or load_live(backend.state, stack_name) is None):
            _record(backend.state, stack_name, target, "converge")
        if result.ok:      # every host runs the recorded revision again
            StackState.of(backend.state, stack_name).clear_interrupted()
    return result, target


def destroy(stack_name: str, backend: stack.Backend = stack.Backend()) -> None:
    """`pulumi destroy` of the stack, as its only writer."""
    with stack_lock(backend.state, stack_name, "edge down"):
        stack.select_stack(stack_name, backend)
        stack.destroy(stack_name, backend)


def interrupted(stack_name: str, backend: stack.Backend = stack.Backend()) -> str | None:
    """What an interrupted writer left of the stack, and the way back, in one sentence."""
    record = StackState.of(backend.state, stack_name).interrupted()
    if record is None:
        return None
    return (f"stack '{stack_name}' was left half-changed by an interrupted {record.what} "
            f"({record.when}): {record.state}. To bring it back: {record.way_back}")
