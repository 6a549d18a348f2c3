"""The change measured by bench/floor.py for edge/infra/docker_provider.py (not applied there):
start a container and wait for its entrypoint to hand over, instead of a fixed 0.5 s sleep.

edge-init (the lab image's PID 1) removes the default route, installs the topology's routes and
then execs tini. A container whose routes fail exits before that exec; one that reached it is
set up. So the provider can poll until either happens (with a deadline) rather than sleep
START_GRACE_S after every start: the check stays as strict, and a good container costs the time
edge-init really takes (tens of ms) instead of half a second. The hand-over is read through the
engine (`docker top`), so it works with a remote engine too.
"""

from __future__ import annotations

import time

import docker
import docker.errors

HANDOVER = "/usr/bin/tini"   # what edge-init execs once the routes are in
DEADLINE_S = 10.0            # an entrypoint still busy after this is an error
POLL_S = 0.02


def handed_over(client: docker.DockerClient, id_: str, pid: int) -> bool:
    """Whether the container's PID 1 (host pid `pid`) runs tini now."""
    try:
        top = client.api.top(id_)
    except docker.errors.APIError:   # stopped meanwhile: the caller's state check says so
        return False
    pid_col, cmd_col = top["Titles"].index("PID"), top["Titles"].index("CMD")
    return any(row[pid_col] == str(pid) and row[cmd_col].startswith(HANDOVER)
               for row in top["Processes"])


def start_and_wait(self: object, client: docker.DockerClient, id_: str) -> None:
    """ContainerProvider._start with a wait on the container's state instead of a sleep."""
    client.api.start(id_)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        state = client.api.inspect_container(id_)["State"]
        if not state.get("Running") or state.get("Restarting"):
            logs = client.api.logs(id_, tail=5).decode(errors="replace").strip()
            raise RuntimeError(f"container {id_[:12]} stopped right after start "
                               f"(exit {state.get('ExitCode')}): {logs}")
        if handed_over(client, id_, state["Pid"]):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"container {id_[:12]}: its entrypoint did not hand over to "
                               f"{HANDOVER} within {DEADLINE_S:g}s")
        time.sleep(POLL_S)
