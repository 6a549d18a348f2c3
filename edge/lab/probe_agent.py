"""Probe agent: runs *inside* a lab vantage container and measures flows as a user would.

It is sent to the container as the program text of `python3 -c` (see edge/lab/probes.py), so it
imports nothing from this project: only the standard library and dnspython, which the image has.
DNS questions go to the named server with dnspython's query functions: no resolver library,
no /etc/hosts, no Docker embedded DNS can answer for the lab zone. Input (argv[1]): a JSON list of
flows; output: one JSON list of results, in the same order.

Watch mode (argv[2] = interval in seconds, argv[3] = how long to run at most): every interval
each flow is probed again (a flow with `"every": SECONDS` at that rate instead: the watcher's
must-block flows, every 5 s), by a pool of threads (never a process per probe), and each result
is printed as it completes, one JSON line `{"i": flow index, "t": start (epoch s), ...}`. A probe
that hangs does not delay the next one, so a dead path is seen as fast as its timeout allows. The
agent ends when its reader goes away (broken pipe) or after the time limit, whichever is first.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import queue
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import dns.exception
import dns.flags
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
    """Ask `name` at `server` over UDP, TCP, or (transport "fallback") as a resolver does: over
    UDP with an EDNS buffer of `payload` bytes (1232 unless said), then over TCP if the answer
    came back truncated. A fallback result says whether UDP was truncated and how big the answer
    is, and counts its records rather than listing them (they are big on purpose)."""
    rdtype = flow.get("type", "A")
    transport = flow.get("transport", "udp")
    server, port, timeout = flow["server"], flow.get("port", 53), flow["timeout"]
    if transport == "fallback":
        query = dns.message.make_query(flow["name"], rdtype, use_edns=0,
                                       payload=flow.get("payload", 1232))
    else:
        query = dns.message.make_query(flow["name"], rdtype)
    ask = dns.query.tcp if transport == "tcp" else dns.query.udp
    reply = ask(query, server, timeout=timeout, port=port)
    found: dict[str, Any] = {}
    if transport == "fallback":
        found["truncated"] = bool(reply.flags & dns.flags.TC)
        if found["truncated"]:
            try:
                reply = dns.query.tcp(query, server, timeout=timeout, port=port)
            except Exception as err:
                return {"outcome": _failure(err), "truncated": True,
                        "error": f"over TCP after a truncated UDP answer: "
                                 f"{type(err).__name__}: {err}"[:200]}
    answers = sorted(item.to_text() for rrset in reply.answer for item in rrset
                     if item.rdtype == dns.rdatatype.from_text(rdtype))
    found |= {"bytes": len(reply.to_wire()), "records": len(answers)} \
        if transport == "fallback" else {"answers": answers}
    return {"outcome": "answered", "rcode": dns.rcode.to_text(reply.rcode()), **found}


# The most of an HTTP body a probe reads (and counts): what the contract's biggest flow fetches.
MAX_BODY = 1 << 20


def probe_http(flow: dict[str, Any]) -> dict[str, Any]:
    """GET `path` and read the whole body (counted, the first 400 bytes kept): an answer whose
    body stops coming (a path that cannot carry full-size packets) is a timeout, whose error
    says how much of the body came."""
    conn = http.client.HTTPConnection(flow["address"], flow.get("port", 80),
                                      timeout=flow["timeout"])
    try:
        conn.request("GET", flow.get("path", "/"), headers={"Host": flow.get("host") or
                                                            flow["address"]})
        resp = conn.getresponse()
        head, size = b"", 0
        try:
            while size <= MAX_BODY and (chunk := resp.read1(65536)):
                head += chunk[:400 - len(head)]
                size += len(chunk)
        except (socket.timeout, TimeoutError) as err:
            raise TimeoutError(f"the body stalled after {size} bytes "
                               f"(HTTP {resp.status})") from err
        return {"outcome": "answered", "status": resp.status,
                "body": head.decode(errors="replace"), "body_bytes": size,
                "lb": resp.getheader("X-Edge-LB"), "server": resp.getheader("X-Edge-Server")}
    finally:
        conn.close()


def probe_tcp(flow: dict[str, Any]) -> dict[str, Any]:
    with socket.create_connection((flow["address"], flow["port"]), timeout=flow["timeout"]):
        return {"outcome": "open"}


PROBES = {"dns": probe_dns, "http": probe_http, "tcp": probe_tcp}
# What a watcher needs of each result to judge it (the body and headers stay here).
WATCHED = ("outcome", "status", "rcode", "answers", "latency_ms")


def measure(flow: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = PROBES[flow["kind"]](flow)
    except Exception as err:  # every failure is a measurement, never a crash of the agent
        result = {"outcome": _failure(err), "error": f"{type(err).__name__}: {err}"[:200]}
    result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def schedule(periods: list[float], start: float) -> Iterator[tuple[float, list[int]]]:
    """When to probe which flows, forever: flow i every periods[i] from `start`. Times are
    counted from `start` (no drift over hours); flows due together come in one wake-up."""
    rounds = [0] * len(periods)
    while True:
        due = [start + n * period for n, period in zip(rounds, periods)]
        when = min(due)
        ready = [i for i, t in enumerate(due) if t <= when + 1e-6]
        for i in ready:
            rounds[i] += 1
        yield when, ready


def watch(flows: list[dict[str, Any]], interval_s: float, limit_s: float) -> None:
    """Probe every flow at its rate (see the module docstring), print each result as one JSON
    line."""
    lines: queue.Queue[str] = queue.Queue()
    periods = [f.get("every", interval_s) for f in flows]
    # enough threads for every probe that may still wait out its timeout, and the next one
    workers = sum(int(f["timeout"] / period) + 2 for f, period in zip(flows, periods))

    def probe(i: int, flow: dict[str, Any]) -> None:
        started = time.time()
        result = {k: v for k, v in measure(flow).items() if k in WATCHED}
        lines.put(json.dumps({"i": i, "t": round(started, 3), **result}, separators=(",", ":")))

    def write() -> None:
        while True:
            line = lines.get()
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, OSError):   # the watcher went away: so does the agent
                os._exit(0)

    threading.Thread(target=write, daemon=True).start()
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for when, ready in schedule(periods, start):
            if when >= start + limit_s:
                break
            time.sleep(max(0.0, when - time.monotonic()))
            for i in ready:
                pool.submit(probe, i, flows[i])
    os._exit(0)


def main() -> None:
    flows = json.loads(sys.argv[1])
    if len(sys.argv) > 3:
        watch(flows, float(sys.argv[2]), float(sys.argv[3]))
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(flows)))) as pool:
        print(json.dumps(list(pool.map(measure, flows))))


if __name__ == "__main__":
    main()
