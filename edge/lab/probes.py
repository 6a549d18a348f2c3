"""Measure contract flows from inside the lab's vantage containers, and judge them.

The host never sends traffic to lab addresses (when the lab is down, its default route would
carry the packets off the machine): the probe agent runs in each vantage container's own
network namespace, through `docker exec`.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from edge.engines import docker_exec
from edge.model.contract import Flow

AGENT = (Path(__file__).parent / "probe_agent.py").read_text()
BLOCKED = ("timeout", "unreachable")


@dataclass(frozen=True)
class Result:
    """A measured flow and whether it met the contract."""

    flow: Flow
    outcome: str                 # answered, open, timeout, refused, unreachable, error
    detail: dict[str, Any]
    latency_ms: float
    ok: bool
    reason: str                  # why it is not ok ("" when ok)


def judge(flow: Flow, raw: dict[str, Any]) -> tuple[bool, str]:
    """Does a raw measurement meet the flow's contract? Returns (ok, reason)."""
    outcome = raw.get("outcome", "error")
    if flow.must == "block":
        if outcome in BLOCKED:
            return True, ""
        return False, f"should be blocked but was {outcome}"
    if flow.kind == "dns":
        if outcome != "answered":
            return False, f"no answer ({outcome})"
        if raw.get("rcode") != "NOERROR":
            return False, f"rcode {raw.get('rcode')}"
        expected = flow.expect.get("answers")
        if expected is not None and raw.get("answers") != expected:
            return False, f"answers {raw.get('answers')} != expected {expected}"
        truncated = flow.expect.get("truncated")
        if truncated is not None and raw.get("truncated") != truncated:
            return False, ("the UDP answer was not truncated: the flow no longer tests the "
                           "fallback to TCP" if truncated else "the UDP answer was truncated")
        least = flow.expect.get("min_bytes")
        if least is not None and raw.get("bytes", 0) < least:
            return False, f"the answer is {raw.get('bytes', 0)} bytes, expected at least {least}"
        return True, ""
    if flow.kind == "http":
        if outcome != "answered":
            return False, f"no HTTP answer ({outcome})"
        status = flow.expect.get("status", 200)
        if raw.get("status") != status:
            return False, f"HTTP {raw.get('status')} != expected {status}"
        size = flow.expect.get("body_bytes")
        if size is not None and raw.get("body_bytes") != size:
            return False, f"body of {raw.get('body_bytes')} bytes != expected {size}"
        return True, ""
    return (outcome == "open", "" if outcome == "open" else f"port {outcome}")


def run_flows(flows: list[Flow], client: docker.DockerClient | None = None) -> list[Result]:
    """Measure every flow, all vantage points at once; results in the order of `flows`."""
    by_vantage: dict[str, list[Flow]] = defaultdict(list)
    for flow in flows:
        by_vantage[flow.container].append(flow)

    def measure(container: str) -> list[tuple[Flow, dict[str, Any]]]:
        batch = by_vantage[container]
        payload = json.dumps([{"kind": f.kind, **f.params} for f in batch])
        try:
            engine = client if batch[0].endpoint.local else docker_exec.client(batch[0].endpoint)
            raws = json.loads(docker_exec.python(container, AGENT, payload, engine=engine,
                                                  user="nobody").stdout)
        except (docker_exec.ExecError, json.JSONDecodeError):
            raws = None
        if raws is None:   # the vantage point itself is gone: every flow from it failed
            raws = [{"outcome": "error", "error": f"vantage {container} cannot probe"}] * len(batch)
        return list(zip(batch, raws))

    with ThreadPoolExecutor(max_workers=max(1, len(by_vantage))) as pool:
        measured = {flow.name: raw for part in pool.map(measure, by_vantage) for flow, raw in part}
    results = []
    for flow in flows:
        raw = measured[flow.name]
        ok, reason = judge(flow, raw)
        results.append(Result(flow, raw.get("outcome", "error"),
                              {k: v for k, v in raw.items() if k not in ("outcome", "latency_ms")},
                              float(raw.get("latency_ms", 0.0)), ok, reason))
    return results


def settle(flows: list[Flow], timeout_s: float, interval_s: float = 1.0,
           client: docker.DockerClient | None = None) -> list[Result]:
    """Measure, then re-measure the failing flows until all pass or `timeout_s` has passed.

    Right after a converge the lab is still settling (BGP routes installed, health checks
    rising, zone transfers): this waits that out, and what still fails afterwards is real.
    """
    deadline = time.monotonic() + timeout_s
    results = {r.flow.name: r for r in run_flows(flows, client)}
    while time.monotonic() < deadline and not all(r.ok for r in results.values()):
        time.sleep(interval_s)
        retry = [r.flow for r in results.values() if not r.ok]
        results |= {r.flow.name: r for r in run_flows(retry, client)}
    return [results[f.name] for f in flows]
