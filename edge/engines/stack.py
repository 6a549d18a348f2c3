"""Run the real Pulumi CLI against the project's local file backend, never a Pulumi service.

Setup (scripts/setup) records where the CLI was built in `.edge/tools.env`; this module builds the
environment every Pulumi call needs offline (backend URL, passphrase file, no update checks, no
plugin downloads) and wraps the few commands the rest of the project uses.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from edge import ROOT
from edge.engines import processes
from edge.model.lab import Lab
from edge.model.plan import PROJECT
from edge.model.state import StackState, StagingRecord

# The checkout's own folder: setup's tools.env and the secrets passphrase (Pulumi keeps every
# stack's salt in Pulumi.<stack>.yaml beside Pulumi.yaml, so one passphrase serves the checkout).
CHECKOUT_STATE = ROOT / ".edge"
# Where stacks' state lives: the checkout's folder, or EDGE_STATE (tests, benchmarks, a second
# set of stacks).
STATE = Path(os.environ.get("EDGE_STATE") or CHECKOUT_STATE)


class PulumiError(RuntimeError):
    """A Pulumi command failed; the message holds the tail of its output."""


class StackMissing(PulumiError):
    """The stack does not exist in this state folder."""


def tools_env(root: Path = ROOT) -> dict[str, str]:
    """KEY=VALUE pairs written by setup (e.g. PULUMI_BIN); empty before setup ran."""
    path = root / ".edge" / "tools.env"
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def passphrase_file(state: Path = CHECKOUT_STATE) -> Path:
    """The secrets passphrase, generated once per checkout and never committed."""
    path = state / "passphrase"
    if not path.exists():
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 by open(2) itself: the secret is never readable by others, not even for
        # the moment between a write and a chmod. O_EXCL: two first calls never both write.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path


@dataclass(frozen=True)
class Backend:
    """Where a set of stacks keeps its state: a folder used as a Pulumi file backend."""

    state: Path = STATE

    def env(self) -> dict[str, str]:
        """The environment for one Pulumi call: offline, local state, project's tools on PATH."""
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.state / "backend").mkdir(mode=0o700, exist_ok=True)
        tools = tools_env()
        path = [p for p in (tools.get("PULUMI_BIN"), str(ROOT / ".venv" / "bin")) if p]
        env = dict(os.environ)
        env |= {
            "PATH": os.pathsep.join(path + [env.get("PATH", "")]),
            "PULUMI_BACKEND_URL": f"file://{self.state / 'backend'}",
            # One passphrase per checkout, whatever the backend: Pulumi keeps each stack's salt in
            # Pulumi.<stack>.yaml beside Pulumi.yaml, shared by every backend of the checkout.
            "PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase_file()),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
        }
        env.pop("PULUMI_ACCESS_TOKEN", None)
        env.pop("PULUMI_CONFIG_PASSPHRASE", None)
        return env


def pulumi(args: list[str], backend: Backend = Backend(), stream: bool = False,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `pulumi ARGS` in the project; stream its output live (long operations) or capture it."""
    cmd = ["pulumi", *args, "--non-interactive"]
    # Interrupted, pulumi gets SIGINT and time to cancel (its lock released, no pending
    # operations), never a SIGKILL 0.25 s after Ctrl-C.
    proc = processes.run(cmd, cwd=ROOT, env=backend.env(), capture=not stream)
    if check and proc.returncode != 0:
        said = ((proc.stdout or "") + (proc.stderr or "")).strip().splitlines()
        raise PulumiError(f"`pulumi {' '.join(args)}` failed (exit {proc.returncode})"
                          + (":\n" + "\n".join(said[-25:]) if said else ""))
    return proc


def select_stack(stack: str, backend: Backend = Backend(),
                 config: dict[str, str] | None = None) -> None:
    """Select `stack`, creating it on first use, and set its config values."""
    pulumi(["stack", "select", "--create", stack], backend)
    for key, value in (config or {}).items():
        pulumi(["config", "set", key, value, "--stack", stack], backend)


def _config_file(stack: str) -> dict:
    path = ROOT / f"Pulumi.{stack}.yaml"
    return (yaml.safe_load(path.read_text()) if path.exists() else None) or {}


def stack_config(stack: str) -> dict:
    """The stack's own config values (Pulumi.<stack>.yaml), keys without the project prefix."""
    prefix = f"{PROJECT}:"
    return {k.removeprefix(prefix): v for k, v in (_config_file(stack).get("config") or {}).items()}


def salt(stack: str) -> str:
    """The stack's secrets salt, which a copy of its config file must carry."""
    return _config_file(stack).get("encryptionsalt", "")


def set_config(stack: str, values: dict) -> None:
    """Set plain (non-secret) config values of a selected stack by editing Pulumi.<stack>.yaml,
    which is what `pulumi config set` does, without a CLI start per value."""
    path = ROOT / f"Pulumi.{stack}.yaml"
    doc = _config_file(stack)
    doc["config"] = (doc.get("config") or {}) | {
        f"{PROJECT}:{k}": (v if isinstance(v, (list, dict)) else str(v)) for k, v in values.items()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=True))
    tmp.replace(path)


def up(stack: str, backend: Backend = Backend(), stream: bool = True) -> None:
    """Create or update the stack's lab and wait until it is all there."""
    pulumi(["up", "--yes", "--skip-preview", "--suppress-outputs", "--stack", stack], backend,
           stream=stream)


def destroy(stack: str, backend: Backend = Backend(), stream: bool = True) -> None:
    """Remove everything the stack created. A staging stack's record of the revision its nodes
    run goes back to unknown: its next containers are new, and the next preview configures all."""
    pulumi(["destroy", "--yes", "--skip-preview", "--stack", stack], backend, stream=stream)
    store = StackState.of(backend.state, stack)
    if store.staging() is not None:
        store.save_staging(StagingRecord())


def remove_stack(stack: str, backend: Backend = Backend()) -> None:
    """Forget a (destroyed) stack: its state and its Pulumi.<stack>.yaml."""
    pulumi(["stack", "rm", "--yes", "--force", "--stack", stack], backend, check=False)


def outputs(stack: str, backend: Backend = Backend(), secrets: bool = False) -> dict:
    """The stack's outputs (nodes, networks, zone...) as data; secrets in clear only if asked."""
    args = ["stack", "output", "--json", "--stack", stack] + (["--show-secrets"] if secrets else [])
    out = pulumi(args, backend, check=False)
    if out.returncode != 0 and "no stack named" in (out.stderr or ""):
        raise StackMissing(f"stack '{stack}' does not exist in {backend.state}: bring it up "
                           f"with `edge up --stack {stack}`")
    if out.returncode != 0:
        raise PulumiError(f"`pulumi {' '.join(args)}` failed (exit {out.returncode}): "
                          + " ".join((out.stderr or "").split())[-400:])
    return json.loads(out.stdout or "{}")


def lab(stack: str, backend: Backend = Backend()) -> Lab:
    """The stack as every stage reads it: its outputs parsed once into typed nodes, networks and
    zone. StackMissing when the stack does not exist, LabError (naming the stack) when it is not
    up or its outputs are not what this edge writes."""
    return Lab.from_outputs({"stack": stack} | outputs(stack, backend))


# --- what a killed pulumi leaves in the file backend ---------------------------------------------
# Pulumi cancelled with SIGINT releases its lock and records no pending operation; one killed
# outright (SIGKILL, the machine reset) leaves both: a lock file naming its pid and host, which
# makes every later command on the stack fail ("the stack is currently locked"), and in the
# stack's checkpoint the operations it had started, which Pulumi refuses to go on from.


def lock_holder_alive(lock: dict, hostname: str = "") -> bool:
    """Whether the pulumi that wrote a lock file's content (pid, hostname) may still run: one of
    another host cannot be checked, so it counts as alive; here, its pid must be a pulumi."""
    if lock.get("hostname") != (hostname or socket.gethostname()):
        return True
    try:
        command = Path(f"/proc/{int(lock.get('pid', 0))}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"pulumi" in command


def stale_locks(stack_name: str, backend: Backend = Backend()) -> list[Path]:
    """The stack's lock files whose pulumi is gone (an unreadable one counts as stale)."""
    locks = backend.state / "backend" / ".pulumi" / "locks"
    found = []
    for path in sorted(locks.glob(f"*/{PROJECT}/{stack_name}/*.json")) if locks.is_dir() else []:
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            content = None
        if not isinstance(content, dict) or not lock_holder_alive(content):
            found.append(path)
    return found


def pending_operations(checkpoint: dict) -> list[tuple[str, str, str]]:
    """The pending operations of a stack's checkpoint file's content: (type, urn, the name the
    resource was given) each (pure)."""
    latest = (checkpoint.get("checkpoint") or {}).get("latest") or {}
    return [(op.get("type", "?"), op.get("resource", {}).get("urn", "?"),
             str((op.get("resource", {}).get("inputs") or {}).get("name", "")))
            for op in latest.get("pending_operations") or []]


def checkpoint(stack_name: str, backend: Backend = Backend()) -> dict:
    """The stack's checkpoint file as Pulumi's file backend keeps it (plain or gzipped); empty
    when the stack has none yet."""
    base = backend.state / "backend" / ".pulumi" / "stacks" / PROJECT / stack_name
    for path, read in ((base.with_suffix(".json"), Path.read_bytes),
                       (base.with_suffix(".json.gz"), lambda p: gzip.decompress(p.read_bytes()))):
        if path.is_file():
            try:
                return json.loads(read(path))
            except (OSError, ValueError) as err:
                raise PulumiError(f"{path}: unreadable checkpoint ({err}); see `edge doctor`")
    return {}


def recover(stack_name: str, backend: Backend = Backend(),
            find_id: Callable[[str, str], str | None] = lambda urn, name: None) -> list[str]:
    """Undo what a killed pulumi left on the stack, each thing said in a line: its stale locks
    are removed, and its pending operations settled by `pulumi refresh` (a pending create whose
    object exists, `find_id` giving its id from the urn and name, is imported; one that does not
    is dropped)."""
    said = []
    for lock in stale_locks(stack_name, backend):
        lock.unlink(missing_ok=True)
        said.append(f"removed the lock of a pulumi that is gone ({lock.name})")
    locks = backend.state / "backend" / ".pulumi" / "locks"
    if locks.is_dir() and any(locks.glob(f"*/{PROJECT}/{stack_name}/*.json")):
        return said   # a pulumi at work: its pending operations are its own
    pending = pending_operations(checkpoint(stack_name, backend))
    if pending:
        imports = [(urn, id_) for kind, urn, name in pending if kind == "creating"
                   and (id_ := find_id(urn, name))]
        # Pulumi takes the imports first, then drops the creates left.
        pulumi(["refresh", "--yes", "--skip-preview", "--stack", stack_name,
                *(arg for pair in imports for part in pair
                  for arg in ("--import-pending-creates", part)),
                "--clear-pending-creates"], backend)
        said.append(f"settled {len(pending)} pending operation(s) of a pulumi that was killed "
                    f"(pulumi refresh): " + ", ".join(f"{kind} {urn.split('::')[-1]}"
                                                      for kind, urn, _ in pending))
    return said


def main(argv: list[str]) -> None:
    """`python -m edge.engines.stack ARGS` runs pulumi with the project's environment;
    `--print-env` prints it as shell exports instead (scripts/env.sh sources them)."""
    env = Backend().env()
    if argv == ["--print-env"]:
        keys = ["PATH"] + sorted(k for k in env if k.startswith("PULUMI_"))
        print("\n".join(f"export {k}={shlex.quote(env[k])}" for k in keys))
        return
    os.execvpe("pulumi", ["pulumi", *argv], env)


if __name__ == "__main__":
    main(sys.argv[1:])
