"""`edge watch`'s outputs on the session's lab: one agent process per vantage point (never a
process per probe), alarms and clears posted to a webhook (a local receiver) and written to the
JSON log, through a real fault (ns1 stopped, then started again)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker

from edge.lab import faults
from edge.lab.watch import DEGRADED, Watcher, json_sink, webhook_sink
from edge.model.contract import expand, load_contract
from tests.lab_fixtures import ROOT, Lab

CONTRACT = load_contract(ROOT / "contract.yaml")
POSTED_S = 10.0   # the webhook posts from threads of their own: wait this long at most for them


def receiver() -> tuple[ThreadingHTTPServer, list[dict]]:
    """A webhook receiver on loopback that keeps every JSON body it is sent."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def agent_processes(lab: Lab, node: str) -> int:
    out = docker.from_env().containers.get(lab.container(node)).exec_run(
        ["sh", "-c", "ps -eo args | grep -c '^python3 -c .*Probe agent'"]).output
    return int(out.strip() or 0)


def test_alarms_reach_the_webhook_and_the_log(lab: Lab, tmp_path: Path) -> None:
    server, received = receiver()
    log = tmp_path / "watch.jsonl"
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    watcher = Watcher(expand(CONTRACT, lab.view), CONTRACT,
                      sinks=[json_sink(str(log)), webhook_sink(url)])
    fault = None
    try:
        with watcher:
            # Green needs samples from every vantage point: each agent runs by now.
            assert watcher.wait_green(15.0), watcher.down()
            assert agent_processes(lab, "client") == 1 and agent_processes(lab, "inside") == 1
            start = watcher.mark("fault", "stop ns1").t
            fault = faults.inject("stop", "ns1", lab.view)
            alarm = watcher.wait_event("alarm", start, 10.0)
            assert alarm and alarm.label.startswith(f"{DEGRADED} (dns)"), watcher.events
            faults.undo(fault, lab.view)
            fault = None
            assert watcher.wait_event("green", alarm.t, 60.0), watcher.down()
            deadline = time.monotonic() + POSTED_S
            while "clear" not in [body["kind"] for body in received] \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        if fault:
            faults.undo(fault, lab.view)
        server.shutdown()
    assert agent_processes(lab, "client") == 0, "the agent outlived the watcher"
    kinds = [body["kind"] for body in received]
    assert "alarm" in kinds and "clear" in kinds, received
    assert received[0]["label"].startswith(DEGRADED)
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["kind"] for e in logged][:2] == ["green", "fault"]
    assert any(e["kind"] == "alarm" and e["active"] for e in logged)
