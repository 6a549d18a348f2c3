"""testinfra checks of the HAProxy load balancers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import testinfra

from tests.conftest import Lab

LBS = ["lb1", "lb2"]


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
    """Requests from the client keep succeeding while HAProxy reloads twice (master-worker)."""
    client = host_of(lab, "client")
    lb1 = host_of(lab, "lb1")
    url = f"http://{lab.address('lb1', 'dmz')}/"
    host = f"hello.apps.{lab.outputs['zone']}"
    loop = (f"for i in $(seq 1 40); do curl -s -m 2 -o /dev/null -w '%{{http_code}}\\n' "
            f"-H 'Host: {host}' {url}; sleep 0.02; done")
    with ThreadPoolExecutor(max_workers=1) as pool:
        codes = pool.submit(client.check_output, loop)
        for _ in range(2):
            time.sleep(0.2)
            lb1.check_output("supervisorctl signal USR2 haproxy")
        seen = codes.result().split()
    assert len(seen) == 40 and set(seen) == {"200"}, sorted(set(seen))
    assert "RUNNING" in lb1.check_output("supervisorctl status haproxy")
