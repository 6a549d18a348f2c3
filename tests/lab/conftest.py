"""Fixtures for tests that drive the real Docker engine and the real Pulumi CLI.

These tests never skip: `make test` runs setup first, so a missing engine, CLI or image is a
failure with the command to run. Everything they create carries the label
edge-testbed.purpose=test and is removed by that label before and after the session, because CI
runs in a fresh clone on an engine that may still hold an earlier run's leftovers.

Address slots used here (the user's stacks take the low ones: lab 0, staging 1):
  30: the Pulumi lifecycle stack; 31: direct provider tests.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from edge import cleanup
from edge.images import image_ref
from edge.plan import LABEL_PROJECT, LABEL_PURPOSE, LABEL_STACK, PROJECT

ROOT = Path(__file__).resolve().parents[2]
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
