"""Benchmark: the contract measured by the probe agent versus the same flows probed with
`dig`/`curl`/`nc`, one `docker exec` per probe, from the same vantage containers.

The probe agent (edge/lab/probes.py) is one `docker exec` of `python3 -c AGENT` per vantage point,
probing its flows from a thread pool; the alternative forks a command per flow through the engine,
from as many threads on this machine as there are flows, as a shell-script prober would. Both
are judged by the same edge.lab.probes.judge. Wall time, and CPU in two parts: the vantage
containers' cgroups plus this process (only the probes use them), and the engine's processes
(dockerd, containerd, the vantage containers' shims: shared with whatever else drives the engine,
so noisier). The two ways alternate (order swapped every run), for the whole contract and for
the must-work flows alone (one round of `edge watch`).

Usage: .venv/bin/python bench/probe_cost.py [--runs N]
"""

from __future__ import annotations

import math
import os
import re
import resource
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
from common import ROOT, Figures, bench_stack, edge_up, main, report

from edge.engines import docker_exec
from edge.lab.probes import judge, run_flows
from edge.model.contract import Flow, expand, load_contract

NAME = "probe_cost"
STACK, SLOT = "bench-probes", 16
TICKS = os.sysconf("SC_CLK_TCK")   # the unit of /proc/PID/stat times
Raw = dict[str, Any]
Prober = Callable[[list[Flow], docker.DockerClient], list[Raw]]


def _seconds(timeout: float) -> str:
    """dig and nc take whole seconds."""
    return str(max(1, math.ceil(timeout)))


def command(flow: Flow) -> list[str]:
    """The one command that probes `flow` from its vantage container."""
    p = flow.params
    if flow.kind == "dns":
        return ["dig", f"@{p['server']}", "-p", str(p.get("port", 53)), p["name"],
                p.get("type", "A"), "+tries=1", f"+time={_seconds(p['timeout'])}",
                "+noall", "+answer", "+comments", *(["+tcp"] if p.get("transport") == "tcp"
                                                    else [])]
    if flow.kind == "http":
        return ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time",
                f"{p['timeout']:g}", "-H", f"Host: {p.get('host') or p['address']}",
                f"http://{p['address']}:{p.get('port', 80)}{p.get('path', '/')}"]
    return ["nc", "-z", "-v", "-w", _seconds(p["timeout"]), p["address"], str(p["port"])]


def failure(said: str) -> str:
    """The outcome word for a failed command, from what it printed."""
    said = said.lower()
    for words, outcome in ((("timed out", "timeout", "no servers could be reached"), "timeout"),
                           (("refused",), "refused"),
                           (("no route", "unreachable"), "unreachable")):
        if any(w in said for w in words):
            return outcome
    return "error"


def outcome(flow: Flow, result: docker_exec.ExecResult) -> Raw:
    """The command's result in the probe agent's terms (what edge.lab.probes.judge reads)."""
    said = result.stdout + result.stderr
    if flow.kind == "dns" and result.exit_code == 0:
        wanted = flow.params.get("type", "A")
        status = re.search(r"status: (\w+)", result.stdout)
        answers = sorted(line.split()[-1] for line in result.stdout.splitlines()
                         if line and not line.startswith(";") and line.split()[3:4] == [wanted])
        return {"outcome": "answered", "rcode": status.group(1) if status else "?",
                "answers": answers}
    if flow.kind == "http" and result.exit_code == 0:
        return {"outcome": "answered", "status": int(result.stdout.strip() or 0)}
    if flow.kind == "http" and result.exit_code == 28:
        return {"outcome": "timeout"}
    if flow.kind == "tcp" and result.exit_code == 0:
        return {"outcome": "open"}
    return {"outcome": failure(said), "error": said.strip()[-200:]}


def shell_probes(flows: list[Flow], client: docker.DockerClient) -> list[Raw]:
    """Every flow by its own `docker exec`, all at once."""
    def probe(flow: Flow) -> Raw:
        return outcome(flow, docker_exec.run(flow.container, command(flow), check=False,
                                             engine=client))
    with ThreadPoolExecutor(max_workers=len(flows)) as pool:
        return list(pool.map(probe, flows))


def agent_probes(flows: list[Flow], client: docker.DockerClient) -> list[Raw]:
    """The flows as `edge verify` measures them (one agent per vantage point)."""
    return [{"outcome": r.outcome, **r.detail} for r in run_flows(flows, client)]


def _stat_ticks(pid: int, fields: slice) -> int:
    """Sum of the given fields of /proc/PID/stat after the command name (0 if it is gone)."""
    try:
        after = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(v) for v in after[fields])


def cgroup_cpu_s(pid: int) -> float:
    """CPU seconds of the cgroup of process `pid` (a container's PID 1): cgroup v1 cpuacct, or
    v2 cpu.stat."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            usage = Path(f"/sys/fs/cgroup/cpuacct{path}/cpuacct.usage")
            if usage.exists():
                return int(usage.read_text()) / 1e9
    path = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
    stat = Path(f"/sys/fs/cgroup{path}/cpu.stat").read_text()
    return int(re.search(r"usage_usec (\d+)", stat).group(1)) / 1e6


class CpuMeter:
    """CPU seconds spent by the probes: in the vantage containers and this process, and in the
    engine (dockerd, containerd, the vantage containers' shims, their finished children too)."""

    def __init__(self, client: docker.DockerClient, containers: list[str]) -> None:
        infos = [client.api.inspect_container(c) for c in containers]
        self.pids = [info["State"]["Pid"] for info in infos]
        ids = {info["Id"] for info in infos}
        self.engine = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            name = Path(argv[0].decode(errors="replace")).name
            if name in ("dockerd", "containerd") or (
                    name.startswith("containerd-shim")
                    and any(a.decode(errors="replace") in ids for a in argv)):
                self.engine.append(int(proc.name))

    def read(self) -> tuple[float, float]:
        """(probe side, engine side) CPU seconds so far."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        probes = sum(cgroup_cpu_s(pid) for pid in self.pids) + own.ru_utime + own.ru_stime
        engine = sum(_stat_ticks(pid, slice(11, 15)) for pid in self.engine) / TICKS
        return probes, engine


def measured(prober: Prober, flows: list[Flow], client: docker.DockerClient,
             meter: CpuMeter) -> tuple[float, float, float, list[bool]]:
    """(wall s, probe-side CPU s, engine CPU s, verdict per flow) of one round."""
    cpu0, started = meter.read(), time.monotonic()
    raws = prober(flows, client)
    wall, cpu = time.monotonic() - started, meter.read()
    return (round(wall, 3), round(cpu[0] - cpu0[0], 3), round(cpu[1] - cpu0[1], 3),
            [judge(f, r)[0] for f, r in zip(flows, raws)])


def measure(runs: int) -> Figures:
    """Agent and per-probe exec alternately: the whole contract, then the must-work flows."""
    probers: dict[str, Prober] = {"agent": agent_probes, "shell": shell_probes}
    figures: Figures = {f"{way}_{what}": [] for way in probers for what in (
        "contract_s", "work_s", "contract_cpu_s", "contract_engine_cpu_s")}
    figures["verdict_disagreements"] = []
    client = docker.DockerClient.from_env(max_pool_size=64)
    with bench_stack(STACK, SLOT) as backend:
        flows = expand(load_contract(ROOT / "contract.yaml"), edge_up(STACK, backend).lab)
        work = [f for f in flows if f.must == "work"]
        meter = CpuMeter(client, sorted({f.container for f in flows}))
        for run in range(1, runs + 1):
            order = list(probers) if run % 2 else list(reversed(probers))
            verdicts = {}
            for way in order:
                wall, cpu, engine, verdicts[way] = measured(probers[way], flows, client, meter)
                figures[f"{way}_contract_s"].append(wall)
                figures[f"{way}_contract_cpu_s"].append(cpu)
                figures[f"{way}_contract_engine_cpu_s"].append(engine)
            for way in order:
                figures[f"{way}_work_s"].append(measured(probers[way], work, client, meter)[0])
            figures["verdict_disagreements"].append(
                sum(a != s for a, s in zip(verdicts["agent"], verdicts["shell"])))
            if not all(verdicts["agent"]):
                raise SystemExit("the probe agent finds the contract failing: not a quiet lab")
            report(run, runs, figures)
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
