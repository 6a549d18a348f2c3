"""Everything edge records about a stack, in `<state>/stacks/<stack>/`, read and written here only.

What a stack runs (`live.json`), the gate's preview verdicts (`previews/<digest>.json`), the
staging stack's record (`staging.json`), the faults in place (`faults.json`) and the audit log
(`audit.jsonl`) decide what edge does next: apply or refuse a change, converge only some hosts,
undo a fault. A half-written or hand-damaged file must therefore never be half-read, and two
writers must never interleave. So, for every file:

- Typed records: each file has one dataclass; reading checks every field and a damaged file is one
  `StateError` naming the file, what is wrong and how to repair it (never a JSON traceback).
- Atomic writes: a temporary file in the same folder, written, flushed and fsynced, then renamed
  over the old one and the folder fsynced, so a crash leaves the old record or the new one.
- Private: files are created 0600 and folders 0700 (with that mode, never chmod-ed afterwards);
  the audit log names users and the fault records say how to undo damage.
- Read-modify-write (the fault list, audit appends) under a short `flock` of `state.lock`.
- One writer per stack: `stack_lock` (a `flock` of `writer.lock` holding who holds it) refuses a
  second writer naming the holder, or waits for it.
- Faults are recorded *before* they are injected (status `injecting`, then `active`), so a process
  killed halfway never leaves damage that no record knows about.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import sys
import tempfile
import time
import typing
import uuid
from contextlib import AbstractContextManager, contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

INJECTING, ACTIVE = "injecting", "active"
LIVE, STAGING, FAULTS, AUDIT = "live.json", "staging.json", "faults.json", "audit.jsonl"
INTERRUPTED = "interrupted.json"
PREVIEWS = "previews"
WRITER_LOCK, RECORDS_LOCK = "writer.lock", "state.lock"


class StateError(ValueError):
    """A state file that cannot be read; the message names it, what is wrong and the repair."""


class StackLocked(RuntimeError):
    """Another process writes to the stack now; the message names it."""


def timestamp() -> str:
    """Local time as the records under `<state>/stacks/` write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _process() -> tuple[str, str]:
    """This process as records name it: ("pid N", "user@host")."""
    return f"pid {os.getpid()}", f"{getpass.getuser()}@{socket.gethostname()}"


# --- the records ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveRecord:
    """What a stack runs: a desired-state tree, the applied overlay, and how it got there."""

    tree: str
    vars: dict[str, Any] = field(default_factory=dict)
    stop: tuple[str, ...] = ()
    id: str = ""
    how: str = ""                     # up, apply DIGEST, rollback of ID...
    when: str = field(default_factory=timestamp)


@dataclass(frozen=True)
class PreviewRecord:
    """A preview's verdict, as the gate needs it: per live stack, per change digest.

    With it, everything the verdict was reached under, so that an apply doing anything else is
    refused: the contract (its file and the sha256 of its bytes), the staging stack, the hosts
    in the change's scope, and the revision pair (live before, target after, and the target's
    desired-state tree, which the apply converges from Git). Records of older versions lack
    these fields; they read as empty, and the gate asks for a new preview."""

    digest: str
    verdict: str
    live_revision: str
    description: str = ""
    reasons: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)   # what the static stage saw change
    report: str = ""
    when: str = field(default_factory=timestamp)
    contract: str = ""                 # the contract file the flows were measured against
    contract_digest: str = ""          # sha256 of its bytes then
    staging: str = ""                  # the stack the change was staged on
    scope: list[str] = field(default_factory=list)   # the hosts the change can touch...
    every_host: bool = False           # ...or every host of the stack
    target_revision: str = ""          # the revision the live stack runs once it is applied
    target_tree: str = ""              # that revision's desired-state tree (a Git tree id)


@dataclass(frozen=True)
class StagingRecord:
    """Which revision the staging stack runs (`at`, "" when unknown), and the hosts the last
    preview changed on top of revision `base`."""

    at: str = ""
    base: str = ""
    hosts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FaultRecord:
    """One fault on a stack: what is done to which node, and what undoing it needs (`restore`,
    known once injected). `injecting`: recorded, being injected (or its process died meanwhile)."""

    kind: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)
    restore: dict[str, Any] = field(default_factory=dict)
    status: str = ACTIVE
    id: str = ""
    by: str = ""                      # pid N (user@host) of the process that injected it
    since: str = ""

    def __str__(self) -> str:
        words = [self.kind, self.target, *(f"{k}={v}" for k, v in self.options.items())]
        if self.status == INJECTING:
            words.append(f"(being injected by {self.by or 'an unknown process'} since "
                         f"{self.since or 'an unknown time'}, or interrupted)")
        return " ".join(words)


@dataclass(frozen=True)
class InterruptedRecord:
    """A writer that was interrupted and could not put the stack back: what it was doing, what
    state the stack may be in, and the command that brings it back. Removed by the writer that
    brings the stack back to its recorded revision."""

    what: str
    state: str
    way_back: str
    when: str = ""


@dataclass(frozen=True)
class AuditEvent:
    """One line of the audit log: who did what to which stack, and its figures (`details`)."""

    stack: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)
    user: str = field(default_factory=getpass.getuser)
    when: str = field(default_factory=timestamp)

    def to_json(self) -> dict[str, Any]:
        return {"when": self.when, "stack": self.stack, "user": self.user,
                "action": self.action, **self.details}


Record = TypeVar("Record", LiveRecord, PreviewRecord, StagingRecord, FaultRecord)


# --- reading: one clear error per damaged file ----------------------------------------------------

@dataclass(frozen=True)
class _Where:
    """A file being read, and how to repair it: what every StateError says."""

    path: Path
    repair: str

    def error(self, problem: str, line: int | None = None) -> StateError:
        at = f"{self.path}:{line}" if line else str(self.path)
        return StateError(f"{at}: {problem}. {self.repair}")


def _read_text(where: _Where) -> str | None:
    """The file's text; None when it does not exist."""
    try:
        return where.path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise where.error("is not UTF-8 text (damaged)") from None
    except OSError as err:
        raise StateError(f"{where.path}: cannot read it ({err.strerror}). Check its owner and "
                         "permissions: edge's state is private to the user running edge.") from None


def _parse(text: str, where: _Where, line: int | None = None) -> Any:
    if not text.strip():
        raise where.error("is empty (truncated by a crash or a full disk?)", line)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise where.error(f"is not valid JSON ({err.msg} at line {err.lineno} column "
                          f"{err.colno}; truncated or edited by hand?)", line) from None


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a record field's type (a JSON list for a tuple)."""
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple):
        item = typing.get_args(hint)[0]
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    return origin is Any or isinstance(value, origin)


def _describe(hint: Any) -> str:
    """A field's type in JSON words, for the error saying what it should be."""
    nouns = {str: "string", dict: "JSON object"}
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple):
        item = typing.get_args(hint)[0]
        return f"a JSON list of {nouns.get(typing.get_origin(item) or item, 'value')}s"
    return f"a {nouns.get(origin, 'value')}"


def _kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON words."""
    return {dict: "a JSON object", list: "a JSON list", str: "a string", bool: "true/false",
            int: "a number", float: "a number"}.get(type(value), "null")


def _decode(cls: type[Record], doc: Any, where: _Where, context: str = "") -> Record:
    """A record from its JSON object, every field checked; missing optional fields (and null
    ones, as older versions wrote) take their defaults, unknown keys are ignored."""
    if not isinstance(doc, dict):
        raise where.error(f"{context}expected a JSON object, found {_kind(doc)}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for spec in fields(cls):
        value = doc.get(spec.name)
        if value is None:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise where.error(f"{context}field '{spec.name}' is missing")
            continue
        if not _matches(value, hints[spec.name]):
            raise where.error(f"{context}field '{spec.name}' is {json.dumps(value)[:60]}, not "
                              f"{_describe(hints[spec.name])}")
        values[spec.name] = tuple(value) if typing.get_origin(hints[spec.name]) is tuple else value
    return cls(**values)


# --- writing: atomic, private ---------------------------------------------------------------------

def _mkdirs(path: Path) -> None:
    """Create `path` and its missing parents, each 0700 from the start."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:       # another process made it meanwhile
            pass


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` by `data` so that a crash at any point leaves the old file or the new one,
    never a part; a failed write leaves no temporary file behind."""
    _mkdirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _dump(doc: Any) -> bytes:
    return (json.dumps(doc, indent=1) + "\n").encode()


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` of lock file `path` (0600), waiting for it; released and closed
    however the block ends."""
    _mkdirs(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _to_stderr(message: str) -> None:
    print(f"edge: {message}", file=sys.stderr)


# --- one stack's state ---------------------------------------------------------------------------

@dataclass(frozen=True)
class StackState:
    """The state folder of one stack (`<state>/stacks/<stack>`) and every record in it."""

    dir: Path

    @classmethod
    def of(cls, state_root: Path, stack: str) -> StackState:
        return cls(state_root / "stacks" / stack)

    @property
    def stack(self) -> str:
        return self.dir.name

    def ensure(self) -> Path:
        """The folder, created (0700, with its missing parents) if need be."""
        _mkdirs(self.dir)
        return self.dir

    # One JSON document per file.

    def _load(self, cls: type[Record], name: str, repair: str) -> Record | None:
        where = _Where(self.dir / name, repair)
        text = _read_text(where)
        return None if text is None else _decode(cls, _parse(text, where), where)

    def _save(self, name: str,
              record: LiveRecord | PreviewRecord | StagingRecord | InterruptedRecord) -> None:
        write_atomic(self.dir / name, _dump(asdict(record)))

    def interrupted(self) -> InterruptedRecord | None:
        """The record an interrupted writer left, if any."""
        return self._load(InterruptedRecord, INTERRUPTED, f"Run `edge converge --stack "
                                                          f"{self.stack}`, then remove it.")

    def save_interrupted(self, record: InterruptedRecord) -> None:
        self._save(INTERRUPTED, replace(record, when=record.when or timestamp()))

    def clear_interrupted(self) -> None:
        """The stack runs its recorded revision again."""
        (self.dir / INTERRUPTED).unlink(missing_ok=True)

    def live(self) -> LiveRecord | None:
        """The revision last brought up or applied, if any."""
        return self._load(LiveRecord, LIVE, f"Remove it and run `edge up --stack {self.stack}` "
                                            "to record the revision again.")

    def save_live(self, record: LiveRecord) -> None:
        self._save(LIVE, record)

    def preview(self, digest: str) -> PreviewRecord | None:
        """The last preview of change `digest` against this (live) stack, if any."""
        return self._load(PreviewRecord, f"{PREVIEWS}/{digest}.json",
                          f"Remove it and run `edge preview` of that change with --stack "
                          f"{self.stack} again: the gate needs a readable verdict.")

    def save_preview(self, record: PreviewRecord) -> None:
        self._save(f"{PREVIEWS}/{record.digest}.json", record)

    def staging(self) -> StagingRecord | None:
        """What this (staging) stack was last brought to by a preview, if anything."""
        return self._load(StagingRecord, STAGING, "Remove it: the next `edge preview` then "
                                                  "converges every host of the staging stack.")

    def save_staging(self, record: StagingRecord) -> None:
        self._save(STAGING, record)

    # The fault list: read-modify-write under the records lock.

    def _records_locked(self) -> AbstractContextManager[None]:
        """Held (briefly) by every read-modify-write of the stack's records."""
        return _flock(self.dir / RECORDS_LOCK)

    def faults(self) -> list[FaultRecord]:
        """The faults recorded on the stack, oldest first."""
        where = _Where(self.dir / FAULTS, (
            f"Its faults can no longer be undone by `edge fault clear`: check the nodes "
            f"(`edge status --stack {self.stack}`), then repair the file or remove it and "
            f"converge the stack back (`edge up --stack {self.stack}`)."))
        text = _read_text(where)
        if text is None:
            return []
        doc = _parse(text, where)
        if not isinstance(doc, list):
            raise where.error(f"expected a JSON list of faults, found {_kind(doc)}")
        return [_decode(FaultRecord, entry, where, f"fault {n}: ")
                for n, entry in enumerate(doc, 1)]

    def update_faults(self, change: Callable[[list[FaultRecord]], list[FaultRecord]]
                      ) -> list[FaultRecord]:
        """Replace the fault list by `change(list)`, with no other writer in between."""
        with self._records_locked():
            faults = change(self.faults())
            write_atomic(self.dir / FAULTS, _dump([asdict(f) for f in faults]))
            return faults

    def add_fault(self, fault: FaultRecord) -> FaultRecord:
        """Record `fault` (given an id, this process and the time, unless it has them)."""
        if not fault.id:
            pid, user_host = _process()
            fault = replace(fault, id=uuid.uuid4().hex[:12], by=f"{pid} ({user_host})",
                            since=timestamp())
        self.update_faults(lambda faults: [*faults, fault])
        return fault

    def replace_fault(self, old: FaultRecord, new: FaultRecord) -> None:
        """Put `new` in the place of `old` (at the end if `old` was forgotten meanwhile)."""
        self.update_faults(lambda faults: [new if f == old else f for f in faults]
                           if old in faults else [*faults, new])

    def forget_fault(self, fault: FaultRecord) -> None:
        """Drop `fault`'s record (once it is undone, or was never injected)."""
        self.update_faults(lambda faults: [f for f in faults if f != fault])

    # The audit log: append-only JSON lines.

    def append_audit(self, event: AuditEvent) -> None:
        """Add one line to the audit log, on disk before this returns. A line a crash cut short
        stays on a line of its own (and is reported when read), never glued to this one."""
        line = (json.dumps(event.to_json()) + "\n").encode()
        path = self.dir / AUDIT
        with self._records_locked():
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def audit(self) -> list[AuditEvent]:
        """The audit log, oldest first."""
        where = _Where(self.dir / AUDIT, "The log is append-only: move the file aside (e.g. "
                                         f"to {AUDIT}.damaged) and edge starts a new one.")
        events = []
        for number, text in enumerate((_read_text(where) or "").splitlines(), 1):
            doc = _parse(text, where, number)
            if not isinstance(doc, dict) or not isinstance(doc.get("action"), str):
                raise where.error("expected a JSON object with an 'action'", number)
            known = {k: doc.pop(k) for k in ("when", "stack", "user", "action") if k in doc}
            events.append(AuditEvent(**{"stack": self.stack, **known, "details": doc}))
        return events

    # The writer lock.

    @contextmanager
    def lock(self, what: str, wait: bool = False,
             say: Callable[[str], None] = _to_stderr) -> Iterator[None]:
        """Be the stack's only writer while the block runs (`what`: what this process does, for
        whoever is refused). When another process holds it: refuse naming it, or with `wait`
        say who holds it and wait until it is released."""
        path = self.dir / WRITER_LOCK
        _mkdirs(self.dir)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or \
                    "another process"
                if not wait:
                    raise StackLocked(f"stack '{self.stack}' is locked by {holder}: wait until "
                                      "it is done (a second writer at the same time is refused)"
                                      ) from None
                say(f"stack '{self.stack}' is locked by {holder}: waiting until it is done")
                fcntl.flock(fd, fcntl.LOCK_EX)
            pid, user_host = _process()
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{pid} ({user_host}, since {timestamp()}, {what})".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def stack_lock(state_root: Path, stack: str, what: str, wait: bool = False,
               say: Callable[[str], None] = _to_stderr) -> AbstractContextManager[None]:
    """`StackState.lock` of stack `stack` under `state_root`: for any writer (up, converge,
    preview, apply, fault, replay, down)."""
    return StackState.of(state_root, stack).lock(what, wait, say)
