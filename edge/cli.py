"""`edge`: the command line. It only wires the stages together; each stage lives in its module."""

from __future__ import annotations

import argparse
import sys
import time

import docker
import docker.errors

from pathlib import Path

from edge import cleanup, configure, stack
from edge.change import ChangeError, load_change
from edge.contract import ContractError, expand, load_contract
from edge.plan import LABEL_STACK
from edge.preview import run_preview
from edge.preview_report import preview_table, write_reports
from edge.probes import Result, results_table, settle
from edge.table import text_table

# After a converge, how long failing flows may take to recover (BGP, health checks) before they
# count as failures.
SETTLE_S = 20.0
TIER_ORDER = ["vantage", "internet", "routing", "firewall", "load balancing", "dns", "paas"]


def node_states(outputs: dict) -> dict[str, str]:
    """Each node's container state as the engine reports it (running, exited, missing...)."""
    api = docker.from_env().api
    states = {}
    for name, node in (outputs.get("nodes") or {}).items():
        try:
            states[name] = api.inspect_container(node["container_id"])["State"]["Status"]
        except docker.errors.NotFound:
            states[name] = "missing"
    return states


def summary_table(outputs: dict, states: dict[str, str]) -> str:
    """The lab as a table: tier, node, state, container and its address on each network."""
    nodes = outputs.get("nodes") or {}
    rows = [("TIER", "NODE", "STATE", "CONTAINER", "ADDRESSES")]
    order = sorted(nodes, key=lambda n: (TIER_ORDER.index(nodes[n]["tier"])
                                         if nodes[n]["tier"] in TIER_ORDER else 99, n))
    for name in order:
        node = nodes[name]
        addresses = " ".join(f"{net}={addr}" for net, addr in sorted(node["addresses"].items()))
        rows.append((node["tier"], name, states.get(name, "?"), node["container"], addresses))
    return text_table(rows)


def cmd_up(args: argparse.Namespace) -> int:
    """Infrastructure, then configuration, then verification, each timed."""
    timings: dict[str, float] = {}

    def stage(name: str, func, *a, **kw):
        print(f"edge: [{len(timings) + 1}/3] {name} (stack '{args.stack}')", file=sys.stderr)
        started = time.monotonic()
        value = func(*a, **kw)
        timings[name] = time.monotonic() - started
        return value

    stack.select_stack(args.stack, config={"slot": str(args.slot)} if args.slot is not None else {})
    stage("pulumi up", stack.up, args.stack)
    result = stage("converge", configure.converge, args.stack)
    print(configure.converge_table(result))
    for error in result.errors:
        print(f"  {error}", file=sys.stderr)
    outputs = stack.outputs(args.stack)
    results = stage("verify", verify, outputs, args.contract, SETTLE_S)
    failed = sum(not r.ok for r in results)
    states = node_states(outputs)
    print("\n" + summary_table(outputs, states))
    down = sorted(n for n, s in states.items() if s != "running")
    print(f"\nstack '{args.stack}' (slot {outputs.get('slot')}, zone {outputs.get('zone')}): "
          f"{len(states) - len(down)}/{len(states)} nodes running, converge "
          f"{'ok' if result.ok else 'FAILED'}, {failed} of {len(results)} contract flows failing"
          f"; " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    for url in lab_urls(results):
        print(f"  {url}")
    if down:
        print(f"not running: {', '.join(down)}", file=sys.stderr)
    return 1 if down or failed or not result.ok else 0


def lab_urls(results: list[Result]) -> list[str]:
    """What outside users reach, as the contract probes it: URL, then the addresses serving it."""
    serving: dict[str, list[str]] = {}
    for r in results:
        if r.flow.kind == "http" and r.flow.must == "work" and r.flow.vantage == "client":
            url = f"http://{r.flow.params['host']}{r.flow.params.get('path', '/')}"
            serving.setdefault(url, []).append(r.flow.params["address"] + ("" if r.ok else " (down)"))
    return [f"{url}  via {', '.join(addresses)}" for url, addresses in serving.items()]


def verify(outputs: dict, contract_path: str, settle_s: float = 0.0) -> list[Result]:
    """Probe the contract's flows on a stack (waiting up to `settle_s` for failing ones to
    recover, as right after a converge) and print the table."""
    results = settle(expand(load_contract(contract_path), outputs), settle_s)
    print(results_table(results))
    return results


def cmd_verify(args: argparse.Namespace) -> int:
    return 0 if all(r.ok for r in verify(stack.outputs(args.stack), args.contract)) else 1


def cmd_converge(args: argparse.Namespace) -> int:
    result = configure.converge(args.stack, check=args.check)
    print(configure.converge_table(result))
    for error in result.errors:
        print(f"  {error}", file=sys.stderr)
    print(f"converge of '{args.stack}': {result.status}, {result.changed} changed, "
          f"{result.seconds:.1f}s")
    return 0 if result.ok else 1


def cmd_preview(args: argparse.Namespace) -> int:
    """Try a change on the staging stack; exit 0 SAFE, 1 UNSAFE, 2 ERROR."""
    nodes = set(stack.outputs(args.stack).get("nodes") or {})
    if not nodes:
        print(f"edge: stack '{args.stack}' is not up: nothing to preview against (make up)",
              file=sys.stderr)
        return 2
    change = load_change(args.change, nodes)
    result = run_preview(change, args.stack, args.staging, Path(args.contract))
    print(preview_table(result))
    out = Path(args.out or stack.ROOT / "report" / f"preview-{change.digest}")
    for path in write_reports(result, out):
        print(f"  {path}")
    return result.exit_code


def cmd_status(args: argparse.Namespace) -> int:
    outputs = stack.outputs(args.stack)
    if not outputs:
        print(f"stack '{args.stack}' has no outputs: it is not up (run `make up`).")
        return 1
    states = node_states(outputs)
    print(summary_table(outputs, states))
    return 0 if all(s == "running" for s in states.values()) else 1


def cmd_down(args: argparse.Namespace) -> int:
    stack.select_stack(args.stack)
    stack.destroy(args.stack)
    left = cleanup.count({LABEL_STACK: args.stack})
    print(f"stack '{args.stack}' destroyed; {left.total} labelled objects left "
          f"({left.containers} containers, {left.networks} networks, {left.volumes} volumes)")
    return 0 if left.total == 0 else 1


def cmd_clean(args: argparse.Namespace) -> int:
    labels = {LABEL_STACK: args.stack} if args.stack else {"edge-testbed.purpose": args.purpose}
    gone = cleanup.remove(labels)
    print(f"removed {gone.containers} containers, {gone.networks} networks, "
          f"{gone.volumes} volumes labelled {labels}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="edge", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    commands = {}
    for name, func, text in (("up", cmd_up, "create or update the lab, configure it, print it"),
                             ("converge", cmd_converge, "run the Ansible roles on the lab"),
                             ("verify", cmd_verify, "probe the contract's flows from inside"),
                             ("preview", cmd_preview, "try a change on the staging stack"),
                             ("status", cmd_status, "print the lab's nodes and their state"),
                             ("down", cmd_down, "destroy the lab (pulumi destroy)")):
        commands[name] = cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--stack", default="lab", help="stack name (default: lab)")
        cmd.set_defaults(func=func)
    commands["up"].add_argument("--slot", type=int, help="address slot of a new stack")
    commands["preview"].add_argument("change", help="a change file (see changes/examples/)")
    commands["preview"].add_argument("--staging", default="staging",
                                     help="the stack the change is tried on (default: staging)")
    commands["preview"].add_argument("--out", help="report folder (default: report/preview-DIGEST)")
    for name in ("up", "verify", "preview"):
        commands[name].add_argument("--contract", default=str(stack.ROOT / "contract.yaml"),
                                    help="the connectivity contract (default: contract.yaml)")
    commands["converge"].add_argument("--check", action="store_true",
                                      help="dry run: show what would change (--check --diff)")
    clean = sub.add_parser("clean", help="remove leftovers by label, without Pulumi")
    group = clean.add_mutually_exclusive_group(required=True)
    group.add_argument("--stack", help="every object of this stack")
    group.add_argument("--purpose", help="every object of this purpose (e.g. test)")
    clean.set_defaults(func=cmd_clean)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (stack.PulumiError, ContractError, ChangeError) as err:
        print(f"edge: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
