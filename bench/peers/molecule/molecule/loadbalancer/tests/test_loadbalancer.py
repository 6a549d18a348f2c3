"""Molecule's verify step: the checks of tests/infra/test_loadbalancer.py, on the scenario's one
load balancer (Molecule's ansible inventory, `host` fixture) and its client.

Same assertions as the project's own: HAProxy runs under supervisord, listens on its dmz address
only, its file is valid; the admin socket is a local unix socket of mode 600; every backend
server is UP; two graceful reloads drop none of a stream of client requests.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import testinfra

testinfra_hosts = ["ansible://loadbalancer"]

CODES, STOP = "/tmp/edge-reload-test.codes", "/tmp/edge-reload-test.stop"
REQUESTS_BETWEEN, REQUESTS_WAIT_S = 10, 30.0


def dmz(host) -> str:
    return host.ansible.get_variables()["edge_addresses"]["dmz"]


def test_haproxy_runs_listens_and_config_is_valid(host) -> None:
    assert "RUNNING" in host.check_output("supervisorctl status haproxy")
    assert host.socket(f"tcp://{dmz(host)}:80").is_listening
    assert host.run("haproxy -c -q -f /etc/haproxy/haproxy.cfg").rc == 0


def test_admin_socket_is_local_only(host) -> None:
    sock = host.file("/run/haproxy/admin.sock")
    assert sock.is_socket and sock.mode == 0o600
    listening = {line.split()[3] for line in host.check_output("ss -Htln").splitlines()}
    listening = {s for s in listening if not s.startswith("127.0.0.11:")}   # Docker's own DNS
    assert listening == {f"{dmz(host)}:80"}, listening


def test_every_backend_server_is_up(host) -> None:
    deadline = time.monotonic() + 10
    while True:   # health checks need a few intervals after a converge
        stat = host.check_output("echo 'show stat' | nc -NU /run/haproxy/admin.sock")
        rows = [line.split(",") for line in stat.splitlines() if line and not line.startswith("#")]
        servers = {(r[0], r[1]): r[17] for r in rows if r[1] not in ("FRONTEND", "BACKEND")}
        if servers and all(s == "UP" for s in servers.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert servers and all(s == "UP" for s in servers.values()), servers


def test_reload_drops_no_request(host) -> None:
    """Requests from the client keep succeeding while HAProxy reloads twice (master-worker)."""
    client = testinfra.get_host("ansible://hpeer-mol-client",
                                ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])
    zone = host.ansible.get_variables()["edge_zone"]
    client.check_output(f"rm -f {CODES} {STOP}")
    loop = (f"until [ -e {STOP} ]; do curl -s -m 2 -o /dev/null -w '%{{http_code}}\\n' "
            f"-H 'Host: hello.apps.{zone}' http://{dmz(host)}/ >> {CODES}; sleep 0.02; done")

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
            for _ in range(2):
                wait_answered(answered() + REQUESTS_BETWEEN)
                host.check_output("supervisorctl signal USR2 haproxy")
            wait_answered(answered() + REQUESTS_BETWEEN)
        finally:
            client.check_output(f"touch {STOP}")
            sending.result()
            seen = client.check_output(f"cat {CODES}").split()
            client.check_output(f"rm -f {CODES} {STOP}")
    assert len(seen) >= 3 * REQUESTS_BETWEEN and set(seen) == {"200"}, sorted(set(seen))
    assert "RUNNING" in host.check_output("supervisorctl status haproxy")
