"""Probe agent: runs *inside* a lab vantage container and measures flows as a user would.

It is sent to the container as the program text of `python3 -c` (see edge/probes.py), so it
imports nothing from this project: only the standard library and dnspython, which the image has.
DNS questions go to the named server with dnspython's query functions: no resolver library,
no /etc/hosts, no Docker embedded DNS can answer for the lab zone. Input (argv[1]): a JSON list of
flows; output: one JSON list of results, in the same order.
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


def _failure(err: BaseException) -> str:
    """The outcome word for a failed attempt: timeout, refused or unreachable."""
    if isinstance(err, (socket.timeout, TimeoutError, dns.exception.Timeout)):
        return "timeout"
    if isinstance(err, ConnectionRefusedError):
        return "refused"
    if isinstance(err, OSError) and err.errno in UNREACHABLE:
        return "unreachable"
    return "error"


def probe_dns(flow: dict[str, Any]) -> dict[str, Any]:
    query = dns.message.make_query(flow["name"], flow.get("type", "A"))
    ask = dns.query.tcp if flow.get("transport") == "tcp" else dns.query.udp
    reply = ask(query, flow["server"], timeout=flow["timeout"], port=flow.get("port", 53))
    answers = sorted(item.to_text() for rrset in reply.answer for item in rrset
                     if item.rdtype == dns.rdatatype.from_text(flow.get("type", "A")))
    return {"outcome": "answered", "rcode": dns.rcode.to_text(reply.rcode()), "answers": answers}


def probe_http(flow: dict[str, Any]) -> dict[str, Any]:
    conn = http.client.HTTPConnection(flow["address"], flow.get("port", 80),
                                      timeout=flow["timeout"])
    try:
        conn.request("GET", flow.get("path", "/"), headers={"Host": flow.get("host") or
                                                            flow["address"]})
        resp = conn.getresponse()
        body = resp.read(400).decode(errors="replace")
        return {"outcome": "answered", "status": resp.status, "body": body,
                "lb": resp.getheader("X-Edge-LB"), "server": resp.getheader("X-Edge-Server")}
    finally:
        conn.close()


def probe_tcp(flow: dict[str, Any]) -> dict[str, Any]:
    with socket.create_connection((flow["address"], flow["port"]), timeout=flow["timeout"]):
        return {"outcome": "open"}


PROBES = {"dns": probe_dns, "http": probe_http, "tcp": probe_tcp}


def measure(flow: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = PROBES[flow["kind"]](flow)
    except Exception as err:  # every failure is a measurement, never a crash of the agent
        result = {"outcome": _failure(err), "error": f"{type(err).__name__}: {err}"[:200]}
    result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def main() -> None:
    flows = json.loads(sys.argv[1])
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(flows)))) as pool:
        print(json.dumps(list(pool.map(measure, flows))))


if __name__ == "__main__":
    main()
