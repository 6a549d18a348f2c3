"""Fixtures for tests that drive the real Docker engine and the real Pulumi CLI.

These tests never skip: `make test` runs setup first, so a missing engine, CLI or image is a
failure with the command to run. Everything they create carries the label
edge-testbed.purpose=test and is removed by that label before and after the session, because CI
runs in a fresh clone on an engine that may still hold an earlier run's leftovers.

Address slots used here (the user's stacks take the low ones: lab 0, staging 1):
  24: the staging copy of tests/preview; 27: the configured lab shared by tests/infra, tests/e2e
  and tests/preview; 28: the address-clash test;
  30: the Pulumi lifecycle stack; 31: direct provider tests.

Set EDGE_TEST_REUSE=STACK to run the infra and e2e suites against an already configured stack of
the project's own state (`make up`, or `edge up --stack NAME --slot N`; EDGE_STATE names another
state folder) instead of a fresh one: handy while writing a role, and how bench/edge_up.py times
the e2e suite; CI never sets it.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

import os
from dataclasses import dataclass

from edge import cleanup, configure, stack
from edge.cli import SETTLE_S
from edge.contract import expand, load_contract
from edge.probes import settle
from edge.revision import Revision, save_live, worktree_tree
from edge.images import image_ref
from edge.plan import LABEL_PROJECT, LABEL_PURPOSE, LABEL_STACK, PROJECT

ROOT = Path(__file__).resolve().parents[1]
CONFIGURED_STACK, CONFIGURED_SLOT = "t-lab", 27
TEST_LABELS = {LABEL_PURPOSE: "test"}


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as err:
        pytest.fail(f"no Docker engine answers ({err}); run `make setup`")
    return client


@pytest.fixture(scope="session")
def image(docker_client: docker.DockerClient) -> str:
    ref = image_ref(ROOT)
    try:
        docker_client.images.get(ref)
    except docker.errors.ImageNotFound:
        pytest.fail(f"base image {ref} is not built; run `make setup`")
    return ref


@pytest.fixture(scope="session", autouse=True)
def no_test_leftovers(docker_client: docker.DockerClient):
    """Remove earlier runs' test objects (by label only), and this run's afterwards."""
    cleanup.remove(TEST_LABELS, docker_client)
    yield
    cleanup.remove(TEST_LABELS, docker_client)


def labels_for(stack: str, **extra: str) -> dict[str, str]:
    return {LABEL_PROJECT: PROJECT, LABEL_STACK: stack, **TEST_LABELS, **extra}


@dataclass(frozen=True)
class Lab:
    """A running, configured stack: its name, its Pulumi outputs and the first converge's result."""

    stack: str
    outputs: dict
    converge: configure.ConvergeResult | None
    state: Path

    def container(self, node: str) -> str:
        return self.outputs["nodes"][node]["container"]

    def address(self, node: str, network: str) -> str:
        return self.outputs["nodes"][node]["addresses"][network]


@pytest.fixture(scope="session")
def lab(image: str, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """The reference lab, up and configured once for the whole session (or EDGE_TEST_REUSE)."""
    reuse = os.environ.get("EDGE_TEST_REUSE")
    if reuse:
        state = Path(os.environ.get("EDGE_STATE", stack.STATE))
        yield Lab(reuse, stack.outputs(reuse, stack.Backend(state=state)), None, state)
        return
    backend = stack.Backend(state=tmp_path_factory.mktemp("lab-state"))
    stack.select_stack(CONFIGURED_STACK, backend,
                       {"slot": str(CONFIGURED_SLOT), "purpose": "test"})
    try:
        stack.up(CONFIGURED_STACK, backend, stream=False)
        result = configure.converge(CONFIGURED_STACK, backend.state, progress=None)
        assert result.ok, "first converge failed:\n" + "\n".join(result.errors)
        # What the stack runs now, as `edge up` records it: previews and applies start here.
        save_live(backend.state, CONFIGURED_STACK, Revision(worktree_tree()), "test session")
        outputs = stack.outputs(CONFIGURED_STACK, backend)
        # Let the lab settle (routes, health checks) as `edge up` does; the suites then measure.
        settle(expand(load_contract(ROOT / "contract.yaml"), outputs), SETTLE_S)
        yield Lab(CONFIGURED_STACK, outputs, result, backend.state)
    finally:
        stack.destroy(CONFIGURED_STACK, backend, stream=False)
        stack.remove_stack(CONFIGURED_STACK, backend)
