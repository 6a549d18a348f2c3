"""Say where a broken flow dies, when the lab can tell: read-only checks along the path.

The checks follow the way a packet from the internet travels: the border's route to the
destination, the firewall's default-deny counter, the destination node itself (container
running, something listening), and for HTTP the load balancer's view of its backends.
"""

from __future__ import annotations

import json
from typing import Any

import docker
import docker.errors

from edge.contract import Flow
from edge.probes import run_flows

def _run(client: docker.DockerClient, container: str, *cmd: str) -> tuple[int, str]:
    try:
        box = client.containers.get(container)
    except docker.errors.NotFound:
        return -1, "missing"
    if box.status != "running":
        return -1, box.status
    code, out = box.exec_run(list(cmd))
    return code, out.decode(errors="replace")


def _nodes_with_role(outputs: dict[str, Any], role: str) -> list[str]:
    return sorted(n for n, v in outputs["nodes"].items() if v["role"] == role)


def firewall_denied(outputs: dict[str, Any], client: docker.DockerClient) -> dict[str, int]:
    """Packets counted by each firewall's default-deny rule (read before and after a probe)."""
    counts = {}
    for fw in _nodes_with_role(outputs, "firewall"):
        code, out = _run(client, outputs["nodes"][fw]["container"],
                         "nft", "-j", "list", "chain", "inet", "edge", "forward")
        if code != 0:
            continue
        for item in json.loads(out).get("nftables", []):
            rule = item.get("rule", {})
            if rule.get("comment") == "forward-denied":
                counter = next((e["counter"] for e in rule["expr"] if "counter" in e), {})
                counts[fw] = int(counter.get("packets", 0))
    return counts


def where_it_dies(flow: Flow, before: str, after: str, outputs: dict[str, Any],
                  client: docker.DockerClient | None = None) -> str:
    """The first finding along the path of a broken must-work flow (outcomes `before` and
    `after` the change), or "" if none."""
    client = client or docker.from_env()
    target_node = flow.target
    address = flow.params.get("address") or flow.params.get("server")
    target = outputs["nodes"].get(target_node, {})
    code, state = _run(client, target.get("container", ""), "true")
    if code != 0:
        return f"{target_node} is not running ({state})"
    for border in _nodes_with_role(outputs, "border"):
        code, out = _run(client, outputs["nodes"][border]["container"], "ip", "route", "get",
                         address)
        if code != 0 or "unreachable" in out:
            return f"{border} has no route to {address} (service prefix not received over BGP?)"
    if after == "timeout":   # probe this flow alone, and see whether a firewall counted a drop
        denied_before = firewall_denied(outputs, client)
        run_flows([flow], client)
        grew = [fw for fw, n in firewall_denied(outputs, client).items()
                if n > denied_before.get(fw, n)]
        if grew:
            return f"dropped by the default deny of {', '.join(grew)}"
    if before.startswith("answered") and after in ("refused", "timeout"):
        port = flow.params.get("port") or {"http": 80, "dns": 53}.get(flow.kind)
        code, out = _run(client, target["container"], "ss", "-Hlnut")
        local = {line.split()[4] for line in out.splitlines() if len(line.split()) > 4}
        if code == 0 and not local & {f"{address}:{port}", f"0.0.0.0:{port}", f"*:{port}"}:
            return f"nothing listens on {address}:{port} in {target_node}"
    if after.startswith("answered 503"):
        return f"{target_node} answers but has no healthy backend (HTTP 503)"
    return ""
