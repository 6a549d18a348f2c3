"""Run a command inside a lab container: the one exec helper, over the Docker SDK.

Faults, diagnostics, probes, traffic shifts and previews all run commands in containers. Each used
to look the container up, call `exec_run` and decode the output its own way, so a missing
container, a stopped one or a failing command each surfaced differently (a traceback, a silent
empty string, a message without the command). Here there is one way: `run` takes a container
(name, id or SDK object) and an argv or a shell line, and returns an `ExecResult`; when the
container is gone or not running it raises `ContainerUnavailable`, when the command fails (and
`check` is set) `ExecError`, each message naming the container, the command, the exit code and the
end of what the command said.

`client()` is the process's one Docker client per engine: the only place outside edge/infra/ (whose
Pulumi providers run in their own processes) that makes one. A lab node (edge/model/lab.py's Node)
as the target runs on the engine it is placed on, so every caller reaches the nodes of a stack
spread over a Swarm as it reaches those of a local one.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from edge.infra.engines import client_for
from edge.model.lab import Node
from edge.model.topology import Endpoint

Target = str | Container | Node     # a container's name or id (local engine), the SDK object, a node
Command = Sequence[str] | str       # an argv, or one shell line (run by `sh -c`)
TAIL_CHARS = 400                    # how much of a failed command's output an error quotes
TIMED_OUT = 124                     # coreutils `timeout`'s exit code when the limit is reached


def client(endpoint: Endpoint = Endpoint()) -> docker.DockerClient:
    """The process's Docker client of an engine, made once; by default the engine `docker` itself
    would use ($DOCKER_HOST or the local socket)."""
    return _client(endpoint)


@functools.cache
def _client(endpoint: Endpoint) -> docker.DockerClient:
    """One client per endpoint (a cache keyed by what is passed, so `client()` and
    `client(Endpoint())` are the same one)."""
    return client_for(endpoint)


@dataclass(frozen=True)
class ExecResult:
    """What a command did: its exit code and its two output streams, decoded."""

    exit_code: int
    stdout: str
    stderr: str


def shown(command: Command) -> str:
    """A command as a user would type it; a multi-line script argument (a `python3 -c` program)
    is summarized, so an error message stays readable."""
    if isinstance(command, str):
        return command
    return " ".join(f"<script, {arg.count(chr(10)) + 1} lines>" if "\n" in arg else shlex.quote(arg)
                    for arg in command)


def name_of(target: Target) -> str:
    """The container's name as given, the SDK object's or the node's."""
    if isinstance(target, Node):
        return target.container
    return target if isinstance(target, str) else target.name


class ExecError(RuntimeError):
    """A command that failed in a container; the message names the container, the command, the
    exit code and the end of its output."""

    def __init__(self, container: str, command: Command, result: ExecResult, what: str = "",
                 timeout: float | None = None) -> None:
        self.container, self.command, self.result, self.what = container, command, result, what
        super().__init__(self._message(timeout))

    def _message(self, timeout: float | None) -> str:
        said = self.result.stderr.strip() or self.result.stdout.strip()
        if len(said) > TAIL_CHARS:
            said = "..." + said[-TAIL_CHARS:]
        code = self.result.exit_code
        how = (f"timed out after {timeout:g}s" if timeout is not None and code == TIMED_OUT
               else f"exited {code}")
        return (f"{self.container}: {self.what + ' failed: ' if self.what else ''}"
                f"`{shown(self.command)}` {how}" + (f": {said}" if said else " (no output)"))


class ContainerUnavailable(ExecError):
    """The container is gone or not running, so nothing ran in it; `state` says which
    (missing, exited, paused, ...)."""

    def __init__(self, container: str, command: Command, state: str, what: str = "") -> None:
        self.state = state
        super().__init__(container, command, ExecResult(-1, "", ""), what)

    def _message(self, timeout: float | None) -> str:
        said = [self.container, self.what, f"cannot run `{shown(self.command)}`" if self.command
                else "", f"the container is {self.state}, not running"]
        return ": ".join(part for part in said if part)


def container(target: Target, engine: docker.DockerClient | None = None) -> Container:
    """The SDK object of a container (as it is now), or ContainerUnavailable if it is gone.
    `engine` is a client of the local engine to use instead of `client()`; a node placed on
    another engine is looked up there."""
    if isinstance(target, Node):
        if not target.endpoint.local:
            engine = client(target.endpoint)
        target = target.container
    if not isinstance(target, str):
        return target
    try:
        return (engine or client()).containers.get(target)
    except docker.errors.NotFound:
        raise ContainerUnavailable(target, (), "missing") from None


def is_running(target: Target, engine: docker.DockerClient | None = None) -> bool:
    """Whether the container exists and runs now."""
    try:
        return container(target, engine).status == "running"
    except ContainerUnavailable:
        return False


def _state_now(box: Container) -> str:
    """The container's state as the engine reports it now ("missing" once removed)."""
    try:
        box.reload()
    except docker.errors.NotFound:
        return "missing"
    return box.status


def run(target: Target, command: Command, *, timeout: float | None = None, check: bool = True,
        what: str = "", engine: docker.DockerClient | None = None, user: str = "") -> ExecResult:
    """Run `command` in the container and wait for it. A string is one shell line (`sh -c`).

    `timeout` (seconds) stops the command inside the container (coreutils `timeout`), so a
    daemon that hangs (a wedged vtysh) cannot hang the caller. With `check` a non-zero exit raises
    ExecError; `what` says in its message what the command was for ("reading the ruleset").
    `engine` is a client of the local engine to use instead of `client()` (see `container`).
    """
    argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
    if timeout is not None:
        argv = ["timeout", "--kill-after=5", f"{timeout:g}", *argv]
    try:
        box = container(target, engine)
    except ContainerUnavailable as gone:
        raise ContainerUnavailable(name_of(target), command, gone.state, what) from None
    try:
        code, (out, err) = box.exec_run(argv, demux=True, user=user)
    except docker.errors.APIError as error:     # the engine refused: the container is gone,
        state = _state_now(box)                  # stopped or paused, or the exec itself failed
        if state != "running":
            raise ContainerUnavailable(name_of(target), command, state, what) from None
        said = str(error.explanation or error)
        raise ExecError(name_of(target), command, ExecResult(-1, "", said), what) from None
    result = ExecResult(code, (out or b"").decode(errors="replace"),
                        (err or b"").decode(errors="replace"))
    if check and code != 0:
        raise ExecError(name_of(target), command, result, what, timeout)
    return result


def python(target: Target, program: str, *args: str, **options: Any) -> ExecResult:
    """Run a Python program (its source) with `args` in the container's python3: how the probe
    and netem agents and the faults' small scripts reach the node's own namespaces and files.
    `options` are `run`'s."""
    return run(target, ["python3", "-c", program, *args], **options)
