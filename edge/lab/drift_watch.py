"""Notice, while `edge watch` runs, that someone changed a node by hand: before a probe fails.

In 2011 a keystroke on a live node took the edge down; the probes only said so once users had
lost the service, and some keystrokes (a must-block rule flushed, a redundant daemon stopped)
never show in a must-work probe at all. So the watcher also reads, every `interval_s`, a digest
of what each node is configured and running with, and compares it with the digest read when the
watch started: a difference is a DRIFT alarm naming the node and the file, ruleset, route,
daemon or container that changed (`Alarm("DRIFT", "drift", ("lb1: program haproxy STOPPED (was
RUNNING)", ...))`), and it clears once the node is back as it was.

Cheap on purpose (a round is one `docker exec` per node, a few hashes): no playbook, no diff.
`edge drift` (edge/workflow/drift.py) is the thorough comparison with the recorded revision.

The parsing and the comparison are pure (`parse_digest`, `changes`): unit-tested on captured
digest text.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from edge.engines import docker_exec
from edge.lab.events import Alarm
from edge.model.lab import Lab

DRIFT, DRIFTED = "DRIFT", "drift"       # the alarm's class and service

# Per node, in sections: each configuration file's sha256, the ruleset without counters (`-s`:
# a counter that counts traffic is no drift) and without Docker's `ip nat` table (its embedded
# DNS rules name ports Docker picks anew at each container start), the routes, and each
# supervised program's state, kept apart per file so that a difference can be named. The
# preview's "live lab untouched" digest (edge/workflow/staged.py) is made of the same reading.
DIGEST_SCRIPT = (
    "echo '@@ files'; find /etc /opt /var/lib/bind -xdev -type f 2>/dev/null | sort"
    " | xargs -r sha256sum;"
    " echo '@@ ruleset'; nft -s list ruleset 2>/dev/null"
    " | awk '/^table ip nat /{s=1} !s{print} s&&/^}/{s=0}' | sha256sum | cut -d' ' -f1;"
    " echo '@@ routes'; ip route;"
    " echo '@@ programs'; supervisorctl status 2>/dev/null | awk '{print $1, $2}'"
)


@dataclass(frozen=True)
class NodeDigest:
    """What one node runs, as hashes and short lines; `state` is the container's state when it
    is not running (then nothing else could be read)."""

    files: dict[str, str] = field(default_factory=dict)       # path -> sha256
    ruleset: str = ""                                          # sha256 of `nft -s list ruleset`
    routes: frozenset[str] = frozenset()                       # `ip route` lines, spaces normalised
    programs: dict[str, str] = field(default_factory=dict)     # program -> supervisord state
    state: str = "running"


def parse_digest(text: str) -> NodeDigest:
    """A node's digest from DIGEST_SCRIPT's output (pure). Lines before the first section, and
    sections it does not know, are ignored."""
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@ "):
            current = parts.setdefault(line[3:].strip(), [])
        elif current is not None and line.strip():
            current.append(line.strip())
    files = {}
    for line in parts.get("files", []):
        digest, _, path = line.partition("  ")
        if path:
            files[path] = digest
    programs = {}
    for line in parts.get("programs", []):
        name, _, state = line.partition(" ")
        programs[name] = state.strip()
    return NodeDigest(files, " ".join(parts.get("ruleset", [])),
                      frozenset(_route(line) for line in parts.get("routes", [])), programs)


def _route(line: str) -> str:
    """A route as compared: spaces normalised, without the kernel's next-hop object id (`nhid
    N`: a route FRR installs again after a session flap gets a new one, the same route)."""
    return re.sub(r" nhid \d+", "", " ".join(line.split()))


def changes(node: str, before: NodeDigest, after: NodeDigest) -> list[str]:
    """What differs on `node` between two digests, one "<node>: <what>" each (pure)."""
    if before.state != after.state:
        return [f"{node}: container {after.state} (was {before.state})"]
    if after.state != "running":
        return []
    found = [f"{node}: {path} {how}" for path, how in (
        *((p, "changed") for p in sorted(before.files.keys() & after.files.keys())
          if before.files[p] != after.files[p]),
        *((p, "removed") for p in sorted(before.files.keys() - after.files.keys())),
        *((p, "added") for p in sorted(after.files.keys() - before.files.keys())))]
    if before.ruleset != after.ruleset:
        found.append(f"{node}: nft ruleset changed")
    found += [f"{node}: route {r} removed" for r in sorted(before.routes - after.routes)]
    found += [f"{node}: route {r} added" for r in sorted(after.routes - before.routes)]
    for program in sorted(before.programs.keys() | after.programs.keys()):
        was, now = before.programs.get(program, "absent"), after.programs.get(program, "absent")
        if was != now:
            found.append(f"{node}: program {program} {now} (was {was})")
    return found


def canonical(digest: NodeDigest) -> str:
    """A node's digest as one text that is the same in every process (pure): its sets sorted,
    where a set's own order changes with Python's hash seed."""
    return json.dumps({"files": digest.files, "ruleset": digest.ruleset,
                       "routes": sorted(digest.routes), "programs": digest.programs,
                       "state": digest.state}, sort_keys=True)


def read_digest(lab: Lab, node: str) -> NodeDigest:
    """One node's digest now (read-only); a container that is not running is its state."""
    try:
        said = docker_exec.run(lab.node(node), DIGEST_SCRIPT, check=False)
    except docker_exec.ContainerUnavailable as gone:
        return NodeDigest(state=gone.state)
    return parse_digest(said.stdout)


def read_digests(lab: Lab, pool: ThreadPoolExecutor) -> dict[str, NodeDigest]:
    """Every node's digest, read at the same time."""
    return dict(zip(lab.nodes, pool.map(lambda n: read_digest(lab, n), lab.nodes)))


Raise = Callable[[str, Alarm], None]      # (event kind: "alarm" or "clear", the alarm)


@dataclass
class DriftAlarm:
    """The DRIFT alarm's state (pure): one alarm naming everything that differs, raised again
    when that list changes, cleared when nothing differs any more."""

    raised: Alarm | None = None

    def step(self, found: list[str]) -> tuple[str, Alarm] | None:
        """The event one round's findings make ("alarm" or "clear", and the alarm), if any."""
        alarm = Alarm(DRIFT, DRIFTED, tuple(found)) if found else None
        if alarm == self.raised:
            return None
        event = ("clear", self.raised) if alarm is None else ("alarm", alarm)
        self.raised = alarm
        return event


class DriftWatch:
    """A thread comparing every node's digest with the baseline read at `start`, every
    `interval_s`, its findings going through a `DriftAlarm`."""

    def __init__(self, lab: Lab, interval_s: float) -> None:
        self.lab, self.interval_s = lab, interval_s
        self.baseline: dict[str, NodeDigest] = {}
        self.alarm = DriftAlarm()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="drift")

    def start(self, emit: Raise) -> None:
        """Read the baseline now (the watch starts from the lab as it is), then watch."""
        self.baseline = read_digests(self.lab, self._pool)
        self._thread = threading.Thread(target=self._run, args=(emit,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def check(self) -> list[str]:
        """What differs from the baseline now, node by node."""
        now = read_digests(self.lab, self._pool)
        return [c for node in self.lab.nodes
                for c in changes(node, self.baseline[node], now[node])]

    def _run(self, emit: Raise) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                found = self.check()
            except docker_exec.ExecError:   # the engine did not answer: the next round will
                continue
            event = None if self._stop.is_set() else self.alarm.step(found)
            if event is not None:
                emit(*event)
