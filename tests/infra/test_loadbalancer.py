"""testinfra checks of the HAProxy load balancers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import testinfra

from tests.lab_fixtures import Lab

LBS = ["lb1", "lb2"]
# The reload test's files in the client container, and how many answered requests it waits for
# before each reload and after the last one (at most REQUESTS_WAIT_S for each such wait).
CODES, STOP = "/tmp/edge-reload-test.codes", "/tmp/edge-reload-test.stop"
REQUESTS_BETWEEN, REQUESTS_WAIT_S = 10, 30.0


def host_of(lab: Lab, node: str):
    return testinfra.get_host(f"docker://{lab.container(node)}")


@pytest.mark.parametrize("node", LBS)
def test_haproxy_runs_listens_and_config_is_valid(lab: Lab, node: str) -> None:
    host = host_of(lab, node)
    assert "RUNNING" in host.check_output("supervisorctl status haproxy")
    assert host.socket(f"tcp://{lab.address(node, 'dmz')}:80").is_listening
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0


@pytest.mark.parametrize("node", LBS)
def test_admin_socket_is_local_only(lab: Lab, node: str) -> None:
    host = host_of(lab, node)
    sock = host.file("/run/haproxy/admin.sock")
    assert sock.is_socket and sock.mode == 0o600
    listening = {line.split()[3] for line in host.check_output("ss -Htln").splitlines()}
    listening = {s for s in listening if not s.startswith("127.0.0.11:")}   # Docker's own DNS
    assert listening == {f"{lab.address(node, 'dmz')}:80"}, listening   # no TCP admin port


@pytest.mark.parametrize("node", LBS)
def test_every_backend_server_is_up(lab: Lab, node: str) -> None:
    host = host_of(lab, node)
    deadline = time.monotonic() + 10
    while True:   # health checks need a few intervals after a converge
        stat = host.check_output("echo 'show stat' | nc -NU /run/haproxy/admin.sock")
        rows = [line.split(",") for line in stat.splitlines() if line and not line.startswith("#")]
        servers = {(r[0], r[1]): r[17] for r in rows if r[1] not in ("FRONTEND", "BACKEND")}
        if servers and all(s == "UP" for s in servers.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert servers and all(s == "UP" for s in servers.values()), servers


def test_reload_drops_no_request(lab: Lab) -> None:
    """Requests from the client keep succeeding while HAProxy reloads twice (master-worker).

    The client sends requests one after the other until told to stop, each status code a line of
    CODES; each reload waits until REQUESTS_BETWEEN more have been answered, so both fall in the
    middle of the stream however fast this machine is."""
    client = host_of(lab, "client")
    lb1 = host_of(lab, "lb1")
    url = f"http://{lab.address('lb1', 'dmz')}/"
    host = f"hello.apps.{lab.view.zone}"
    client.check_output(f"rm -f {CODES} {STOP}")
    loop = (f"until [ -e {STOP} ]; do curl -s -m 2 -o /dev/null -w '%{{http_code}}\\n' "
            f"-H 'Host: {host}' {url} >> {CODES}; sleep 0.02; done")

    def answered() -> int:
        return int(client.check_output(f"cat {CODES} 2>/dev/null | wc -l"))

    def wait_answered(count: int) -> None:
        deadline = time.monotonic() + REQUESTS_WAIT_S
        while answered() < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answered() >= count, f"the client's requests stalled at {answered()}"

    with ThreadPoolExecutor(max_workers=1) as pool:
        sending = pool.submit(client.check_output, loop)
        try:
            for _ in range(2):   # requests answered, then a reload; twice; then more answered
                wait_answered(answered() + REQUESTS_BETWEEN)
                lb1.check_output("supervisorctl signal USR2 haproxy")
            wait_answered(answered() + REQUESTS_BETWEEN)
        finally:
            client.check_output(f"touch {STOP}")
            sending.result()
            seen = client.check_output(f"cat {CODES}").split()
            client.check_output(f"rm -f {CODES} {STOP}")
    assert len(seen) >= 3 * REQUESTS_BETWEEN and set(seen) == {"200"}, sorted(set(seen))
    assert "RUNNING" in lb1.check_output("supervisorctl status haproxy")
