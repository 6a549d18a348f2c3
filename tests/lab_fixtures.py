"""Fixtures of the suites that drive the real Docker engine and the real Pulumi CLI (tests/lab,
tests/infra, tests/e2e, tests/preview, tests/replay).

tests/conftest.py registers this module (pytest takes `pytest_plugins` from the top conftest
only), but nothing here is autouse: a test that asks for none of these fixtures, as every test of
tests/unit, never contacts an engine. The lab suites never skip for a missing engine: `make test`
runs setup first, so a missing engine, CLI or image is a failure with the command to run.

Runs: every object a test run creates carries edge-testbed.purpose=test and edge-testbed.run=RUN,
RUN naming this process (pid, its start time, host). Several runs may share one engine (a
unit-only run beside a lab run, or bench/edge_up.py's nested run of tests/e2e), so a run removes
only what no live run owns: at its start the leftovers of runs whose process is gone, at its end
its own objects. A process of another host cannot be checked, so its objects are always spared.
Each run also keeps a marker volume for its whole life, which is how other runs know it is alive
before it has created anything else.

Lanes: address slots and stack names a run uses (the user's stacks take the low slots: lab 0,
staging 1; bench/ takes 16-23). Lane 0, what CI runs: 27 the configured lab `t-lab` shared by
tests/infra, tests/e2e, tests/preview, tests/replay and tests/cli; 24 its staging copy
`t-staging`; 28 the address-clash test; 30 the Pulumi lifecycle stack; 31 direct provider
tests. EDGE_TEST_LANE=1 or 2 moves a run to slots 5-9 or 10-14 and stack names `t1-…`/`t2-…`, so two
checkouts (or a developer beside CI) run the lab suites at once; two runs in one lane clash on
addresses and names (the second one's `pulumi up` says which network overlaps), and neither
removes the other's objects.

Set EDGE_TEST_REUSE=STACK to run the infra and e2e suites against an already configured stack of
the project's own state (`make up`, or `edge up --stack NAME --slot N`; EDGE_STATE names another
state folder) instead of a fresh one: handy while writing a role, and how bench/edge_up.py times
the e2e suite; CI never sets it. The suites that break the lab and roll it back ask for
`breaks_the_lab` and are skipped then.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from edge.engines import cleanup, configure, stack
from edge.engines.images import image_ref
from edge.model.lab import Lab as LabView
from edge.model.plan import LABEL_PROJECT, LABEL_PURPOSE, LABEL_RUN, LABEL_STACK, PROJECT, shift
from edge.model.topology import Topology, load_topology
from edge.workflow.up import bring_up

ROOT = Path(__file__).resolve().parents[1]
LANE = os.environ.get("EDGE_TEST_LANE", "0")
LANES = {"0": {"lab": 27, "staging": 24, "clash": 28, "lifecycle": 30,
               "provider": 31},
         "1": {"lab": 5, "staging": 6, "clash": 7, "lifecycle": 8, "provider": 9},
         "2": {"lab": 10, "staging": 11, "clash": 12, "lifecycle": 13,
               "provider": 14}}
if LANE not in LANES:
    raise pytest.UsageError(f"EDGE_TEST_LANE={LANE!r}: choose one of {', '.join(LANES)}")


def lane_stack(use: str) -> str:
    """The name of the test stack for `use` (a key of LANES) in this run's lane."""
    return f"t-{use}" if LANE == "0" else f"t{LANE}-{use}"


def lane_slot(use: str) -> int:
    return LANES[LANE][use]


@functools.cache
def _reference() -> Topology:
    """The reference topology, read once: lane_address is called for every address a test
    module names."""
    return load_topology(ROOT / "topology" / "reference.yaml")


def lane_address(address: str, use: str) -> str:
    """`address`, written for slot 0 of the reference topology, moved to the slot of `use`."""
    return str(shift(ipaddress.IPv4Address(address), _reference(), lane_slot(use)))


CONFIGURED_STACK, CONFIGURED_SLOT = lane_stack("lab"), lane_slot("lab")
STAGING, STAGING_SLOT = lane_stack("staging"), lane_slot("staging")
REUSE = os.environ.get("EDGE_TEST_REUSE", "")
TEST_LABELS = {LABEL_PURPOSE: "test"}
RUN_RE = re.compile(r"(?P<pid>\d+)\.(?P<start>\d+)@(?P<host>.+)")


def process_start(pid: int) -> str | None:
    """When process `pid` started (field 22 of /proc/PID/stat, clock ticks after boot), or None
    if there is no such process. With the pid it names one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]   # fields after "pid (comm)" start at field 3


RUN = f"{os.getpid()}.{process_start(os.getpid())}@{socket.gethostname()}"


def run_alive(run: str) -> bool:
    """Whether the test run a label value names is still going (see the module docstring)."""
    found = RUN_RE.fullmatch(run)
    if found is None:          # not written by this module: no live run of it owns the object
        return False
    if found["host"] != socket.gethostname():
        return True
    return process_start(int(found["pid"])) == found["start"]


def labels_for(stack_name: str, **extra: str) -> dict[str, str]:
    """Labels for an object a test creates itself (not through a stack)."""
    return {LABEL_PROJECT: PROJECT, LABEL_STACK: stack_name, **TEST_LABELS, LABEL_RUN: RUN, **extra}


def stack_config(slot: int) -> dict[str, str]:
    """The Pulumi config of a test stack: its slot, purpose=test and this run (the
    edge-testbed.run label of every object of the stack)."""
    return {"slot": str(slot), "purpose": "test", "run": RUN}


def remove_leftovers(client: docker.DockerClient, me: str = RUN) -> cleanup.Leftovers:
    """Remove the test objects no other live run owns: those of runs whose process is gone, those
    of run `me` (this one, at its start and end), and those without a run label (left by stacks
    whose program does not set it) when no other run is alive. A test that plays "the next run"
    passes another `me`, so the run it is part of keeps its own lab."""
    runs = {labels.get(LABEL_RUN) for labels in cleanup.labels_found(TEST_LABELS, client)}
    others_alive = any(run_alive(run) for run in runs - {None, me})

    def owned_by_a_live_run(labels: dict[str, str]) -> bool:
        run = labels.get(LABEL_RUN)
        if run is None:
            return others_alive
        return run != me and run_alive(run)

    return cleanup.remove(TEST_LABELS, client, keep=owned_by_a_live_run)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The engine, for this run: dead runs' test objects removed first, this run's marker up
    while it runs, and everything this run left removed at the end."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as err:
        pytest.fail(f"no Docker engine answers ({err}); run `make setup`")
    remove_leftovers(client)
    marker = "edge-testbed-test-run-" + hashlib.sha256(RUN.encode()).hexdigest()[:16]
    client.api.create_volume(marker, labels=labels_for("test-run"))
    yield client
    remove_leftovers(client)


@pytest.fixture(scope="session")
def image(docker_client: docker.DockerClient) -> str:
    ref = image_ref(ROOT)
    try:
        docker_client.images.get(ref)
    except docker.errors.ImageNotFound:
        pytest.fail(f"base image {ref} is not built; run `make setup`")
    return ref


@dataclass(frozen=True)
class Lab:
    """A running, configured stack: its name, its nodes, networks and zone as edge reads them
    (`view`, edge.model.lab.Lab) and the first converge's result."""

    stack: str
    view: LabView
    converge: configure.ConvergeResult | None
    state: Path

    def container(self, node: str) -> str:
        return self.view.node(node).container

    def address(self, node: str, network: str) -> str:
        return self.view.node(node).address(network)


@pytest.fixture(scope="session")
def lab(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The reference lab, up and configured once for the whole session (or EDGE_TEST_REUSE)."""
    if REUSE:
        state = Path(os.environ.get("EDGE_STATE", stack.STATE))
        yield Lab(REUSE, stack.lab(REUSE, stack.Backend(state=state)), None, state)
        return
    backend = stack.Backend(state=tmp_path_factory.mktemp("lab-state"))
    try:
        # Exactly what a user's `edge up` does: up, converge, the revision recorded as what the
        # stack runs (previews and applies start there), the contract settled and measured.
        up = bring_up(CONFIGURED_STACK, ROOT / "contract.yaml",
                      config=stack_config(CONFIGURED_SLOT), backend=backend)
        assert up.converge.ok, "first converge failed:\n" + "\n".join(up.converge.errors)
        yield Lab(CONFIGURED_STACK, up.lab, up.converge, backend.state)
    finally:
        stack.destroy(CONFIGURED_STACK, backend, stream=False)
        stack.remove_stack(CONFIGURED_STACK, backend)


@pytest.fixture(scope="session")
def staging(lab: Lab) -> Iterator[stack.Backend]:
    """The session's staging stack (t-staging, the lane's slot) in the lab's state folder, shared
    by the preview, apply and kill suites. One owner forgets it, once, at the session's end:
    when each suite removed it on its own, whichever ran second failed on a stack that was gone.
    """
    backend = stack.Backend(state=lab.state)
    stack.select_stack(STAGING, backend, stack_config(STAGING_SLOT))
    yield backend
    stack.destroy(STAGING, backend, stream=False)
    stack.remove_stack(STAGING, backend)


def refuse_a_reused_stack(reuse: str) -> None:
    """Skip, visibly and saying why, a test that breaks the lab when the run reuses stack
    `reuse` (EDGE_TEST_REUSE): a user's own stack is never broken on purpose."""
    if reuse:
        pytest.skip(f"EDGE_TEST_REUSE={reuse}: this test breaks the lab and rolls it back, so it "
                    f"runs only on the session's own throw-away stack, never on stack '{reuse}'. "
                    "Unset EDGE_TEST_REUSE to run it.")


@pytest.fixture
def breaks_the_lab() -> None:
    """Asked for by the tests that break the lab on purpose and roll it back (faults, the path
    shift, replays, previews and applies): they run on the session's throw-away stack only, never
    on a user's stack named by EDGE_TEST_REUSE."""
    refuse_a_reused_stack(REUSE)


@dataclass(frozen=True)
class Taken:
    """What one `edge preview` of a pool said: the staging stack it took, and its stderr."""

    staging: str
    said: str


def previews_at_once(live: str, staging: str, examples: dict[str, int], state: Path,
                     out: Path) -> dict[str, Taken]:
    """`edge preview` of each example (name -> the exit code its verdict must give) started at
    once, each its own command as users run them, on `staging` (a stack or a pool `a,b`)."""
    runs = {name: subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "preview",
         str(ROOT / "changes" / "examples" / f"{name}.yaml"), "--stack", live,
         "--staging", staging, "--out", str(out / name)],
        cwd=ROOT, env={**os.environ, "EDGE_STATE": str(state)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in examples}
    said = {name: run.communicate(timeout=1800) for name, run in runs.items()}
    for name, code in examples.items():
        assert runs[name].returncode == code, f"{name}:\n{said[name][0]}\n{said[name][1][-3000:]}"
    return {name: Taken(json.loads((out / name / "preview.json").read_text())["staging"],
                        said[name][1]) for name in examples}
