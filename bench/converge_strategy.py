"""Benchmark: the site playbook with Mitogen and without it, same playbook, same lab, alternating.

site.yml runs under Mitogen's `mitogen_free` strategy (one Python interpreter per container for
the whole run). Without Mitogen is Ansible's own `free` strategy under the same name
(bench/plain_ansible, put first by ANSIBLE_STRATEGY_PLUGINS): each task then goes through the
community.docker connection, a `docker exec` and a new Python per task. Each run converges fresh
containers once per strategy (the order alternating between runs), verifies the contract green,
converges again (idempotent, `changed=0`) and destroys the containers. The converge is
edge.workflow.rollout.configuration, the function `edge up` and `edge converge` call; CPU is that of the
Ansible processes on this machine (children of this one).

Usage: .venv/bin/python bench/converge_strategy.py [--runs N]
"""

from __future__ import annotations

import resource
import time

from common import ROOT, Figures, bench_stack, environment, main, report

from edge.engines import stack
from edge.model.contract import load_contract
from edge.model.revision import Revision, worktree_tree
from edge.workflow import rollout
from edge.workflow.up import verify

NAME = "converge_strategy"
STACK, SLOT = "bench-converge", 23
# The verify only proves both ways configure the same working lab (it is not timed): on this
# shared machine under heavy load, daemons may take longer than `edge up`'s settle time.
SETTLE_S = 60.0
# The environment of each way: site.yml's Mitogen as configured, or plain Ansible under its name.
STRATEGIES = {"mitogen": {},
              "plain": {"ANSIBLE_STRATEGY_PLUGINS": str(ROOT / "bench" / "plain_ansible")}}


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def converge(revision: Revision, backend: stack.Backend, again: bool) -> tuple[float, float]:
    """(wall seconds, children's CPU seconds) of one converge that must succeed (and change
    nothing when `again`)."""
    cpu, started = children_cpu(), time.monotonic()
    result = rollout.configuration(STACK, revision, backend)
    wall, cpu = time.monotonic() - started, children_cpu() - cpu
    if not result.ok or (again and result.changed):
        raise SystemExit(f"converge{' again' if again else ''}: {result.status}, "
                         f"{result.changed} changed, {result.errors[:3]}")
    return round(wall, 2), round(cpu, 2)


def measure(runs: int) -> Figures:
    """Per run and strategy: fresh containers, converge, verify, converge again, destroy."""
    figures: Figures = {f"{name}_{what}": [] for name in STRATEGIES
                        for what in ("converge_s", "converge_again_s", "controller_cpu_s")}
    revision = Revision(worktree_tree())
    contract = load_contract(ROOT / "contract.yaml")
    with bench_stack(STACK, SLOT) as backend:
        for run in range(1, runs + 1):
            order = list(STRATEGIES) if run % 2 else list(reversed(STRATEGIES))
            for name in order:
                rollout.infrastructure(STACK, revision, backend)
                with environment(STRATEGIES[name]):
                    wall, cpu = converge(revision, backend, again=False)
                    failing = [r.flow.name for r in verify(stack.lab(STACK, backend),
                                                           contract, SETTLE_S)
                               if not r.ok]
                    if failing:
                        raise SystemExit(f"{name}: contract failing after the converge: {failing}")
                    figures[f"{name}_converge_again_s"].append(
                        converge(revision, backend, again=True)[0])
                figures[f"{name}_converge_s"].append(wall)
                figures[f"{name}_controller_cpu_s"].append(cpu)
                stack.destroy(STACK, backend, stream=False)
            report(run, runs, figures)
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
