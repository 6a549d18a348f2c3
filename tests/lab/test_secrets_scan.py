"""No secret of a stack leaks where others can find it: during and after a converge, the stack's
keys (TSIG, rndc) and the checkout's secrets passphrase appear in no file edge leaves (the state
folder, apart from the Pulumi backend's encrypted state and the passphrase file itself; report/;
ansible-runner's edge-runner-* folders, which must be gone), in no process's arguments or
environment, and in no `docker inspect` of the stack's containers. The state folder is private.

The secrets are read from the stack's outputs and the passphrase file, and only ever compared:
a failure names where a secret was found, never the secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from edge.engines import configure, stack
from edge.model.plan import LABEL_STACK
from edge.model.state import AUDIT
from tests.lab_fixtures import ROOT, Lab

RUNNER_PREFIX = "edge-runner-"   # edge/engines/configure.py's ansible-runner folders
ENCRYPTED_STATE = ("stacks", "history", "backups")   # under <state>/backend/.pulumi/
SAMPLE_S = 0.1                   # how often processes and runner folders are read during a converge
MIN_SECRET_BYTES = 16            # a shorter "secret" would match by chance


def secrets_of(lab: Lab) -> dict[str, bytes]:
    """Every secret to look for, by name: each stack secret (base64 keys also decoded, as a
    binary file would hold them) and the passphrase."""
    outputs = stack.outputs(lab.stack, stack.Backend(state=lab.state), secrets=True)
    found = {name: value.encode() for name, value in (outputs.get("secrets") or {}).items()}
    assert "edge_tsig_secret" in found, "the stack's outputs carry no TSIG secret"
    for name, value in list(found.items()):
        try:
            found[f"{name} (decoded)"] = base64.b64decode(value, validate=True)
        except binascii.Error:
            pass
    found["passphrase"] = stack.passphrase_file().read_bytes().strip()
    short = [name for name, value in found.items() if len(value) < MIN_SECRET_BYTES]
    assert not short, f"too short to look for without chance matches: {short}"
    return found


def hits(data: bytes, secrets: dict[str, bytes], where: str) -> set[str]:
    return {f"{where}: {name}" for name, value in secrets.items() if value in data}


def files_under(top: Path) -> Iterator[Path]:
    """Regular files below `top`, symlinks not followed (a folder may vanish meanwhile)."""
    for folder, _, names in os.walk(top):
        for name in names:
            path = Path(folder, name)
            try:
                if stat.S_ISREG(path.lstat().st_mode):
                    yield path
            except FileNotFoundError:
                continue


def scan_files(paths: list[Path], secrets: dict[str, bytes]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        try:
            found |= hits(path.read_bytes(), secrets, str(path))
        except (FileNotFoundError, IsADirectoryError):
            continue
    return found


def scan_processes(secrets: dict[str, bytes]) -> set[str]:
    """Every process's argv and environment on this machine (the containers' included)."""
    found: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        for part in ("cmdline", "environ"):
            try:
                data = (entry / part).read_bytes()
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            if found_here := hits(data, secrets, f"/proc/{entry.name}/{part}"):
                try:
                    comm = (entry / "comm").read_text().strip()
                except OSError:
                    comm = "gone"
                found |= {f"{hit} ({comm})" for hit in found_here}
    return found


def runner_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob(RUNNER_PREFIX + "*"))


def state_files(lab: Lab) -> list[Path]:
    """The state folder's files, without the backend's encrypted state and the passphrase."""
    encrypted = [lab.state / "backend" / ".pulumi" / part for part in ENCRYPTED_STATE]
    passphrase = stack.passphrase_file().resolve()
    return [path for path in files_under(lab.state)
            if path.resolve() != passphrase and not any(path.is_relative_to(e) for e in encrypted)]


def converge_watched(lab: Lab, secrets: dict[str, bytes]) -> tuple[configure.ConvergeResult,
                                                                    set[str], set[Path]]:
    """Converge the stack while processes and the runner folders it makes are read over and
    over; the result, what was found, and the runner folders that appeared."""
    before = runner_folders()
    found: set[str] = set()
    seen: set[Path] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            found.update(scan_processes(secrets))
            new = runner_folders() - before
            seen.update(new)
            found.update(scan_files([p for folder in new for p in files_under(folder)], secrets))
            done.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = configure.converge(lab.stack, lab.state, progress=None)
    finally:
        done.set()
        sampler.join(timeout=30)
    return result, found, seen


@pytest.fixture(scope="module")
def secrets(lab: Lab) -> dict[str, bytes]:
    return secrets_of(lab)


def test_no_secret_leaks_during_or_after_a_converge(lab: Lab, secrets: dict[str, bytes],
                                                    docker_client: docker.DockerClient) -> None:
    result, found, runners = converge_watched(lab, secrets)
    assert result.ok, "the converge failed:\n" + "\n".join(result.errors)
    assert runners, "no ansible-runner folder was seen: the converge's files went unchecked"
    left = [str(folder) for folder in runners if folder.exists()]
    assert not left, f"the converge left its ansible-runner folders: {left}"

    files = state_files(lab) + [lab.state / "stacks" / lab.stack / AUDIT]
    files += list(files_under(ROOT / "report")) + list(ROOT.glob("Pulumi.*.yaml"))
    for folder in runner_folders():        # other runs' folders: none may hold these secrets
        files += list(files_under(folder))
    found |= scan_files(files, secrets)
    found |= scan_processes(secrets)
    containers = docker_client.containers.list(all=True,
                                               filters={"label": f"{LABEL_STACK}={lab.stack}"})
    assert containers, f"no container of stack '{lab.stack}'"
    for box in containers:
        inspected = json.dumps(docker_client.api.inspect_container(box.id)).encode()
        found |= hits(inspected, secrets, f"docker inspect {box.name}")
    assert not found, "secrets found where they must not be:\n" + "\n".join(sorted(found))


def test_the_state_folder_and_the_passphrase_are_private(lab: Lab) -> None:
    mode = stat.S_IMODE(lab.state.stat().st_mode)
    assert mode == 0o700, f"{lab.state} is {mode:04o}, not 0700"
    stack_dir = lab.state / "stacks" / lab.stack
    assert stat.S_IMODE(stack_dir.stat().st_mode) == 0o700, stack_dir
    passphrase = stack.passphrase_file()
    mode = stat.S_IMODE(passphrase.stat().st_mode)
    assert mode == 0o600, f"{passphrase} is {mode:04o}, not 0600"


def test_the_checkout_state_folder_is_private() -> None:
    """The folder of the passphrase (the checkout's `.edge`, where `make up`'s stacks keep their
    state too) is the owner's alone."""
    folder = stack.passphrase_file().parent
    mode = stat.S_IMODE(folder.stat().st_mode)
    assert mode == 0o700, f"{folder} is {mode:04o}, not 0700: run `chmod 700 {folder}`"
