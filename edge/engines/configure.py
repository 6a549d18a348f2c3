"""Configuration stage: run the site playbook on a stack through ansible-runner.

The result is data (per host: ok, changed, failed, unreachable, and the failed tasks' messages),
so the CLI, the tests and the change previews decide on facts rather than on scraped output.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import ansible_runner

from edge import ROOT
from edge.engines import processes
from edge.engines.stack import STATE

Progress = Callable[[str], None]
DOCKER_WRAPPER = Path(__file__).parent / "bin" / "docker"


@dataclass
class HostResult:
    """What the playbook did on one host."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0

    @property
    def healthy(self) -> bool:
        return not self.failed and not self.unreachable


@dataclass
class ConvergeResult:
    """The outcome of one playbook run over a stack."""

    status: str
    seconds: float
    hosts: dict[str, HostResult]
    errors: list[str] = field(default_factory=list)
    diffs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Hosts a task changed, or had a task under way when the run was cancelled: what a rollback
    # of this run has to converge back.
    touched: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and all(h.healthy for h in self.hosts.values())

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())


def to_stderr(line: str) -> None:
    """The default progress sink of long operations: a line on stderr, at once."""
    print(line, file=sys.stderr, flush=True)


RUNNER_PREFIX = "edge-runner-"


def runner_prefix(mark: str | None = None) -> str:
    """The name of an ansible-runner folder begins with its owner's mark, so that the folder of
    a killed edge (its unpacked inventory, the artifacts of its run) is known as such."""
    return f"{RUNNER_PREFIX}{(mark or processes.owner_mark()).replace(':', '.')}-"


def leftover_runner_dirs(parent: Path | None = None) -> list[Path]:
    """ansible-runner folders in `parent` (the temp folder) whose edge is gone."""
    found = []
    for path in sorted(Path(parent or tempfile.gettempdir()).glob(f"{RUNNER_PREFIX}*")):
        pid, dot, start = path.name[len(RUNNER_PREFIX):].partition("-")[0].partition(".")
        if dot and path.is_dir() and not processes.owner_alive(f"{pid}:{start}"):
            found.append(path)
    return found


def converge(stack: str, state: Path = STATE, check: bool = False, limit: str | None = None,
             extra_vars: dict[str, Any] | None = None, progress: Progress | None = to_stderr,
             tree: Path = ROOT, cancel: threading.Event | None = None) -> ConvergeResult:
    """Run site.yml on every host of `stack` (in check+diff mode if `check`).

    `tree` holds the desired state to converge to (roles, inventory, site.yml): the checkout, or
    an earlier revision's files (edge/model/revision.py). The tool's own settings (ansible.cfg, the
    edge package) always come from the checkout. Setting `cancel` stops the run between tasks.
    """
    errors: list[str] = []
    diffs: dict[str, list[dict[str, Any]]] = {}
    touched: set[str] = set()
    underway: dict[str, str] = {}

    def on_event(event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        host, task = data.get("host"), data.get("task", "")
        kind = event.get("event", "")
        result = data.get("res", {})
        if host and kind == "runner_on_start":
            underway[host] = task
        elif host and kind.startswith("runner_on_"):
            underway.pop(host, None)
            if result.get("changed"):
                touched.add(host)
        if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            said = [str(result.get(k, "")).strip() for k in ("msg", "reason", "stderr")]
            message = ": ".join(part for part in said if part)
            errors.append(f"{host}: {task}: {message[-600:]}")
        if kind == "runner_on_ok" and host and result.get("diff") and result.get("changed"):
            found = result["diff"] if isinstance(result["diff"], list) else [result["diff"]]
            diffs.setdefault(host, []).extend({"task": task, **d} for d in found)
        if progress and kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable") \
                and (result.get("changed") or kind != "runner_on_ok"):
            word = {"runner_on_ok": "changed", "runner_on_failed": "FAILED",
                    "runner_on_unreachable": "UNREACHABLE"}[kind]
            progress(f"  {host}: {task}: {word}")
        return True

    cmdline = "--check --diff" if check else "--diff"
    started = time.monotonic()
    # ansible-playbook runs in a pty session of its own: on an interrupt, or when the run is
    # cancelled, every process carrying this process's mark is stopped, its forks included.
    with tempfile.TemporaryDirectory(prefix=runner_prefix()) as private, \
            processes.own_children_stopped():
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(tree),
            playbook=str(tree / "site.yml"),
            inventory=str(tree / "inventory" / "edge_stack.py"),
            envvars={"EDGE_STACK": stack, "EDGE_STATE": str(state),
                     "EDGE_INVENTORY_SECRETS": "1",
                     processes.OWNER_ENV: processes.owner_mark(),
                     "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                     "PYTHONPATH": str(ROOT),
                     # The venv's ansible-playbook, whether or not the venv is on PATH; the
                     # connections' `docker`, which reaches a node on another engine (bin/docker).
                     "EDGE_DOCKER": shutil.which("docker") or "docker",
                     "PATH": os.pathsep.join([str(DOCKER_WRAPPER.parent),
                                              str(Path(sys.executable).parent),
                                              os.environ["PATH"]])},
            extravars=extra_vars or {},
            cmdline=cmdline,
            limit=limit,
            quiet=True,
            event_handler=on_event,
            cancel_callback=(lambda: cancel.is_set()) if cancel else None,
        )
        if runner.status == "canceled":
            processes.reap([p for p in processes.leftovers(processes.owner_mark())
                            if "ansible" in p.command])
        stats = runner.stats or {}
        if runner.status != "successful" and not errors:   # failed before any task ran
            said = (runner.stdout.read() if runner.stdout else "").strip().splitlines()
            errors.append("ansible-playbook: " + " ".join(said[-6:])[-600:])
    hosts: dict[str, HostResult] = {}
    for key, attr in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"),
                      ("dark", "unreachable")):
        for host, count in (stats.get(key) or {}).items():
            setattr(hosts.setdefault(host, HostResult()), attr, count)
    return ConvergeResult(runner.status, round(time.monotonic() - started, 2), hosts, errors, diffs,
                          touched | set(underway))
