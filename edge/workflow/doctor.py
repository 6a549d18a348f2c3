"""`edge doctor`: is this machine fit to run the lab, and what did interrupted runs leave behind?

One line per check, each with what to do when it fails. The checks only read; the fixes they
name are commands a person runs (or that the next `edge` command runs for processes).

Why these checks: each one is a way this tool has been seen to fail on a machine that looked
fine: no engine, a Pulumi CLI or base image missing, a stack's state locked by a killed `pulumi`
or holding pending operations, a damaged state file, processes of a killed `edge` still
converging, Docker objects of a stack whose state is gone, DOCKER-USER rules of bridges that no
longer exist, and a host route that overlaps a stack's address plan.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker.errors

from edge.engines import cleanup, configure, docker_exec, processes, stack, swarm
from edge.engines.images import image_exists, image_ref
from edge.infra import bridge_filter
from edge.infra.addressing import conflicts, taken_prefixes
from edge.infra.engines import client_for
from edge.model.plan import LABEL_PURPOSE, LABEL_STACK, stack_plan
from edge.model.revision import half_unpacked
from edge.model.state import StackState, StateError
from edge.model.topology import LOCAL, Endpoint, load_topology


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _engine() -> Check:
    try:
        version = docker_exec.client().version().get("Version", "?")
    except docker.errors.DockerException as err:
        return Check("engine", False, f"no Docker engine answers ({err})",
                     "run scripts/setup-docker.sh (log: /var/log/edge-testbed-dockerd.log)")
    return Check("engine", True, f"Docker {version} answers")


def _swarm() -> list[Check]:
    """The Swarm a spread stack needs: each member ready, and its engine's API answering at the
    endpoint edge recorded (the converge and the probes reach its containers there)."""
    client = docker_exec.client()
    if client.info()["Swarm"]["LocalNodeState"] != "active":
        return [Check("swarm", True, "this engine is in no Swarm: every stack stays on it")]
    try:
        found = swarm.members(client)
    except docker.errors.APIError as err:   # a worker: the manager elsewhere answers for it
        return [Check("swarm", True, f"this engine is a Swarm worker ({err.explanation})")]
    checks = []
    for member in found:
        if member.state != "ready":
            checks.append(Check(f"engine {member.engine}", False, f"Swarm node {member.hostname} "
                                f"is {member.state}", "start its engine, or `edge swarm leave`"))
            continue
        if member.endpoint in (LOCAL, "?"):
            checks.append(Check(f"engine {member.engine}", True, f"{member.role}, ready"))
            continue
        try:
            engine = client_for(Endpoint(member.endpoint), timeout=10)
            version = engine.version().get("Version", "?")
            engine.close()
        except docker.errors.DockerException as err:
            checks.append(Check(f"engine {member.engine}", False, f"{member.endpoint} does not "
                                f"answer ({err})", "start that engine, or `edge swarm leave`"))
            continue
        checks.append(Check(f"engine {member.engine}", True,
                            f"{member.role}, ready, Docker {version} at {member.endpoint}"))
    return checks


def _pulumi() -> Check:
    bin_dir = stack.tools_env().get("PULUMI_BIN")
    exe = Path(bin_dir or "/nonexistent") / "pulumi"
    if not exe.is_file():
        return Check("pulumi", False, "the Pulumi CLI is not set up", "run `make setup`")
    out = subprocess.run([str(exe), "version"], capture_output=True, text=True,
                         env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"})
    return Check("pulumi", out.returncode == 0, f"{exe} {out.stdout.strip()}",
                 "" if out.returncode == 0 else "run `make setup` to rebuild it")


def _image() -> Check:
    ref = image_ref(stack.ROOT)
    if image_exists(ref):
        return Check("image", True, f"{ref} is in the engine")
    return Check("image", False, f"{ref} is not built", "run `make setup`")


def stacks(backend: stack.Backend) -> list[str]:
    """The stacks of the backend (empty when the backend is unreadable)."""
    out = stack.pulumi(["stack", "ls", "--json"], backend, check=False)
    try:
        return sorted(s["name"] for s in json.loads(out.stdout or "[]"))
    except (ValueError, KeyError, TypeError):
        return []


def _backend(backend: stack.Backend, names: list[str]) -> list[Check]:
    """Per stack: a lock left by a killed pulumi, pending operations."""
    checks = []
    for name in names:
        stale = stack.stale_locks(name, backend)
        if stale:
            checks.append(Check(f"pulumi lock {name}", False, f"{len(stale)} lock file(s) "
                                f"({stale[0].name}) of a pulumi that is gone",
                                f"any edge command on the stack removes them: `edge status "
                                f"--stack {name}`"))
        try:
            pending = stack.pending_operations(stack.checkpoint(name, backend))
        except stack.PulumiError as err:
            checks.append(Check(f"state {name}", False, str(err)))
            continue
        checks.append(Check(f"state {name}", not pending,
                            f"{len(pending)} pending operation(s)" if pending else "readable",
                            f"when no pulumi runs on it, any edge command on the stack settles "
                            f"them: `edge status --stack {name}`" if pending else ""))
    return checks


def _edge_state(backend: stack.Backend) -> list[Check]:
    """Every stack's edge state files (revision, previews, faults, audit) readable."""
    checks = []
    for folder in sorted((backend.state / "stacks").glob("*")):
        store = StackState.of(backend.state, folder.name)
        try:
            store.live()
            faults = store.faults()
            store.audit()
        except StateError as err:
            checks.append(Check(f"edge state {folder.name}", False, str(err)))
            continue
        unfinished = [f for f in faults if f.status != "active"]
        checks.append(Check(f"edge state {folder.name}", not unfinished,
                            f"{len(faults)} active fault(s)" + (
                                f", {len(unfinished)} interrupted while injecting"
                                if unfinished else ""),
                            f"`edge fault clear --stack {folder.name}`" if unfinished else ""))
    return checks


def _processes() -> Check:
    left = processes.leftovers()
    if not left:
        return Check("processes", True, "no process of a killed edge command is left")
    return Check("processes", False, f"{len(left)} left by a killed edge command: "
                 + "; ".join(map(str, left[:3])),
                 "any `edge` command stops them first (or `edge doctor --fix`)")


def _runner_dirs() -> Check:
    left = configure.leftover_runner_dirs()
    if not left:
        return Check("runner folders", True, "no ansible-runner folder of a killed edge is left")
    return Check("runner folders", False, f"{len(left)} of a killed edge: {left[0]}",
                 "any `edge` command on a stack removes them (or `edge doctor --fix`)")


def _labelled(names: list[str]) -> Check:
    """Docker objects of user stacks that the backend no longer knows."""
    found: dict[str, int] = {}
    for labels in cleanup.labels_found({}):
        name = labels.get(LABEL_STACK, "")
        if labels.get(LABEL_PURPOSE) == "lab" and name and name not in names:
            found[name] = found.get(name, 0) + 1
    if not found:
        return Check("leftovers", True, "every labelled object belongs to a known stack")
    return Check("leftovers", False, ", ".join(f"{n}: {c} object(s)" for n, c in found.items())
                 + " of stacks the backend does not know",
                 " ; ".join(f"`edge clean --stack {n}`" for n in found))


def _bridge_rules() -> Check:
    """DOCKER-USER rules of this project whose bridge is gone."""
    listed = subprocess.run(["iptables", "-w", "10", "-S", bridge_filter.CHAIN],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        return Check("docker-user", True, "no DOCKER-USER chain (Docker's iptables off)")
    bridges = set(os.listdir("/sys/class/net"))
    stale = sorted({rule.split(" -i ", 1)[1].split()[0] for rule in listed.stdout.splitlines()
                    if "edge-testbed" in rule and " -i " in rule} - bridges)
    if not stale:
        return Check("docker-user", True, "every edge-testbed rule has its bridge")
    return Check("docker-user", False, f"rules for bridges that no longer exist: "
                 f"{', '.join(stale)}", "`edge doctor --fix` deletes them")


def _routes(backend: stack.Backend, names: list[str]) -> list[Check]:
    """Each stack's address plan against the host's routes and the other stacks' networks."""
    checks = []
    client = docker_exec.client()
    for name in names:
        config = stack.stack_config(name)
        try:
            topology = load_topology(stack.ROOT / (config.get("topology")
                                                   or "topology/reference.yaml"))
            slot = int(config["slot"]) if "slot" in config else topology.slots.get(name)
            if slot is None:
                continue
            plan = stack_plan(topology, name, slot, config.get("purpose", "lab"))
        except (ValueError, OSError) as err:
            checks.append(Check(f"addresses {name}", False, f"plan unreadable: {err}"))
            continue
        found = conflicts(plan, taken_prefixes(name, client))
        checks.append(Check(f"addresses {name}", not found, "; ".join(found) or
                            "no host route or other network overlaps its plan",
                            "give the stack a free slot: `pulumi config set slot N -s "
                            f"{name}`" if found else ""))
    return checks


def examine(backend: stack.Backend = stack.Backend()) -> list[Check]:
    """Every check, in the order a person would fix them."""
    checks = [_engine()]
    if not checks[0].ok:
        return checks
    names = stacks(backend)
    steps: list[Callable[[], Check | list[Check]]] = [
        _swarm, _pulumi, _image, lambda: _backend(backend, names), lambda: _edge_state(backend),
        _processes, _runner_dirs, lambda: _labelled(names), _bridge_rules,
        lambda: _routes(backend, names)]
    for step in steps:
        found = step()
        checks += found if isinstance(found, list) else [found]
    return checks


def _docker_id(_urn: str, name: str) -> str | None:
    """The id of the container, network or volume named `name`, if the engine has one: what a
    pending create of a killed pulumi made (the stack's resources all have fixed names)."""
    api = docker_exec.client().api
    for inspect, key in ((api.inspect_container, "Id"), (api.inspect_network, "Id"),
                         (api.inspect_volume, "Name")):
        try:
            return inspect(name)[key] if name else None
        except docker.errors.NotFound:
            continue
    return None


def recover(stack_name: str, backend: stack.Backend = stack.Backend()) -> list[str]:
    """What every command on a stack does first: undo what an earlier killed command left
    (Pulumi's stale lock and pending operations, ansible-runner's folders, half-unpacked
    revision trees), one line each."""
    said = stack.recover(stack_name, backend, find_id=_docker_id) + _remove_runner_dirs()
    for folder in half_unpacked(backend.state):
        shutil.rmtree(folder, ignore_errors=True)
        said.append(f"removed a revision tree a killed edge left half-unpacked ({folder.name})")
    return said


def _remove_runner_dirs() -> list[str]:
    """Remove the ansible-runner folders of killed edge commands (the temp folder's), saying
    each."""
    said = []
    for folder in configure.leftover_runner_dirs():
        shutil.rmtree(folder, ignore_errors=True)
        said.append(f"removed the ansible-runner folder of a killed edge ({folder})")
    return said


def fix() -> list[str]:
    """What `edge doctor --fix` may repair without a person's judgement: leftover processes of
    killed edge commands and DOCKER-USER rules of bridges that are gone."""
    done = [f"stopped {p}" for p in processes.reap(processes.leftovers())]
    done += _remove_runner_dirs()
    stale = _bridge_rules()
    if not stale.ok:
        for bridge in stale.detail.split(": ", 1)[1].split(", "):
            bridge_filter.remove(bridge)
            done.append(f"deleted the DOCKER-USER rule of {bridge}")
    return done
