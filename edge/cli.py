"""`edge`: the command line. It only wires the stages together; each stage lives in its module."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import sys
import time
from pathlib import Path

from edge.engines import cleanup, configure, docker_exec, processes, stack, swarm
from edge.lab import faults, signing
from edge.lab.drift_watch import DriftWatch
from edge.lab.probes import Result
from edge.lab.watch import (
    Thresholds,
    Watcher,
    WatchError,
    json_sink,
    status_line,
    terminal_sink,
    webhook_sink,
)
from edge.model import topogen
from edge.model.change import Change, ChangeError, load_change, working_tree_change
from edge.model.contract import ContractError, expand, load_contract
from edge.model.lab import Lab, LabError
from edge.model.plan import LABEL_STACK
from edge.model.revision import RevisionError, load_live, stack_dir
from edge.model.state import StackLocked, StateError, stack_lock
from edge.model.topology import TopologyError, load_topology
from edge.report.preview import preview_table, write_reports
from edge.report.replay import write_report
from edge.report.table import converge_table, results_table, text_table
from edge.report.timeline import timeline_text
from edge.report.timings import Timings
from edge.workflow import doctor as workflow_doctor
from edge.workflow import drift as workflow_drift
from edge.workflow import preview as workflow_preview
from edge.workflow import up as workflow_up
from edge.workflow.apply import run_apply
from edge.workflow.replay import ReplayError, load_catalog, run_replay

TIER_ORDER = ["vantage", "internet", "routing", "firewall", "load balancing", "dns", "paas"]


def summary_table(lab: Lab, states: dict[str, str]) -> str:
    """The lab as a table: tier, node, state, container (and on a spread stack its engine) and
    its address on each network."""
    engine = (lambda node: (node.engine,)) if lab.spread else (lambda node: ())
    rows = [("TIER", "NODE", "STATE", "CONTAINER", *(("ENGINE",) if lab.spread else ()),
             "ADDRESSES")]
    order = sorted(lab.nodes.values(), key=lambda n: (TIER_ORDER.index(n.tier)
                                                      if n.tier in TIER_ORDER else 99, n.name))
    for node in order:
        addresses = " ".join(f"{net}={addr}" for net, addr in sorted(node.addresses.items()))
        rows.append((node.tier, node.name, states.get(node.name, "?"), node.container,
                     *engine(node), addresses))
    return text_table(rows)


def _print_stage(stack_name: str):
    def on_stage(name: str, number: int, total: int) -> None:
        print(f"edge: [{number}/{total}] {name} (stack '{stack_name}')", file=sys.stderr)
    return on_stage


def cmd_up(args: argparse.Namespace) -> int:
    """Infrastructure, then configuration, then verification, each timed."""
    up = workflow_up.bring_up(args.stack, args.contract,
                              config={"slot": str(args.slot)} if args.slot is not None else {},
                              stream=True, force=args.force, progress=configure.to_stderr,
                              on_stage=_print_stage(args.stack))
    print(converge_table(up.converge))
    for error in up.converge.errors:
        print(f"  {error}", file=sys.stderr)
    print(results_table(up.results))
    print("\n" + summary_table(up.lab, up.states))
    print(f"\nstack '{args.stack}' (slot {up.lab.slot}, zone {up.lab.zone}): "
          f"{len(up.states) - len(up.down)}/{len(up.states)} nodes running, converge "
          f"{'ok' if up.converge.ok else 'FAILED'}, {up.failing} of {len(up.results)} contract "
          "flows failing; " + ", ".join(f"{k} {v:.1f}s" for k, v in up.timings.items()))
    for url in lab_urls(up.results):
        print(f"  {url}")
    if up.down:
        print(f"not running: {', '.join(up.down)}", file=sys.stderr)
    if up.target:
        _say_pending(args.stack, up.target)
    return 0 if up.ok else 1


def lab_urls(results: list[Result]) -> list[str]:
    """What outside users reach, as the contract probes it: URL, then the addresses serving it."""
    serving: dict[str, list[str]] = {}
    for r in results:
        if r.flow.kind == "http" and r.flow.must == "work" and r.flow.vantage == "client":
            url = f"http://{r.flow.params['host']}{r.flow.params.get('path', '/')}"
            serving.setdefault(url, []).append(r.flow.params["address"] + ("" if r.ok else " (down)"))
    return [f"{url}  via {', '.join(addresses)}" for url, addresses in serving.items()]


def cmd_verify(args: argparse.Namespace) -> int:
    contract = load_contract(args.contract)
    results = workflow_up.verify(stack.lab(args.stack), contract)
    print(results_table(results))
    return 0 if all(r.ok for r in results) else 1


def _progress(args: argparse.Namespace) -> configure.Progress:
    """The progress sink of a command: stderr, and the step marks of --timings."""
    timer = getattr(args, "timer", None)
    return timer.progress(configure.to_stderr) if timer else configure.to_stderr


def _mark(args: argparse.Namespace, step: str) -> None:
    """With --timings, `step` starts now."""
    if getattr(args, "timer", None):
        args.timer.mark(step)


def cmd_converge(args: argparse.Namespace) -> int:
    _mark(args, "converge: the stack's outputs (pulumi stack output)")
    stack.lab(args.stack)   # LabError when the stack is not up: nothing to converge
    _mark(args, "converge: Ansible (site.yml" + (", check mode)" if args.check else ")"))
    result, target = workflow_up.converge(args.stack, check=args.check, force=args.force,
                                          progress=_progress(args))
    _mark(args, "converge: printing the result")
    print(converge_table(result))
    for error in result.errors:
        print(f"  {error}", file=sys.stderr)
    print(f"converge of '{args.stack}' to revision {target.revision.id}"
          f"{' (forced: the working tree)' if target.forced else ''}: {result.status}, "
          f"{result.changed} changed, {result.seconds:.1f}s")
    _say_pending(args.stack, target)
    return 0 if result.ok else 1


def _say_pending(stack_name: str, target: workflow_up.Target) -> None:
    """The working tree's edits that a writer left out, and the ways to bring them."""
    if target.pending:
        print(f"edge: the working tree's desired state (tree {target.pending[:12]}) is not the "
              f"revision '{stack_name}' runs ({target.revision.id}): it was left out. Bring it "
              f"through `edge preview` + `edge apply --stack {stack_name}`, or take it as it is "
              "with --force (recorded in the audit log).", file=sys.stderr)


def _change(args: argparse.Namespace) -> Change:
    """The change a command is about: a change file, or the working tree's edits. A change
    file's own mistakes are told first, before anything asks the stack."""
    if args.change:
        load_change(args.change)
    nodes = set(stack.lab(args.stack).nodes)   # LabError when the stack is not up
    if args.change:
        return load_change(args.change, nodes)
    live = load_live(stack.STATE, args.stack)
    if live is None:
        raise ChangeError(f"stack '{args.stack}' has no recorded revision: `edge up` first")
    return working_tree_change(live)


def cmd_preview(args: argparse.Namespace) -> int:
    """Try a change on the staging stack; exit 0 SAFE or NO-OP, 1 UNSAFE, 2 ERROR."""
    workflow_preview.staging_pool(args.stack, args.staging)
    _mark(args, "preview: the change file, the live stack's outputs, revision, config digest")
    change = _change(args)
    out = Path(args.out or stack.ROOT / "report" / f"preview-{change.digest}")
    result = workflow_preview.preview(change, args.stack, args.staging, Path(args.contract), out,
                                      wait=not args.no_wait, progress=_progress(args))
    _mark(args, "preview: printing the verdict, writing the reports (table, JSON, JUnit, HTML)")
    print(preview_table(result))
    for path in write_reports(result, out):
        print(f"  {path}")
    return result.exit_code


def cmd_apply(args: argparse.Namespace) -> int:
    """Apply a previewed change to the live stack under the watchdog; 0 applied, 1 rolled
    back, 2 refused or failed."""
    _mark(args, "apply: the change file and the live stack's outputs")
    change = _change(args)
    _mark(args, "apply: the gate (the SAFE preview), starting the watchdog")
    result = run_apply(change, args.stack, load_contract(args.contract), force=args.force,
                       staging=args.staging, progress=_progress(args),
                       sinks=[terminal_sink(sys.stderr)])
    _mark(args, "apply: printing the outcome")
    for reason in result.reasons:
        print(f"  - {reason}", file=sys.stderr)
    figures = {"apply": result.apply_s, "apply+verify": result.verified_s,
               "time-to-detect": result.detect_s, "time-to-restore": result.restore_s}
    said = ", ".join(f"{k} {v:.1f}s" for k, v in figures.items() if v is not None)
    print(f"{result.outcome.upper()}{' (forced)' if result.forced else ''}: change "
          f"{change.digest} on '{args.stack}'"
          + (f", now at revision {result.revision}" if result.revision else "")
          + (f"; {said}" if said else ""))
    return result.exit_code


def cmd_watch(args: argparse.Namespace) -> int:
    """Probe the must-work flows continuously; alarms to the terminal, a JSON log, a webhook."""
    contract = load_contract(args.contract)
    if args.drift_interval < 0:
        raise WatchError(f"edge watch: --drift-interval {args.drift_interval:g} is not usable: "
                         "use a number of seconds, or 0 to turn the drift check off")
    lab = stack.lab(args.stack)
    sinks = [terminal_sink()] + ([json_sink(args.log)] if args.log else []) \
        + ([webhook_sink(args.webhook, signing.read_key(args.webhook_key)
                         if args.webhook_key else None)] if args.webhook else [])
    watcher = Watcher(expand(contract, lab), contract,
                      Thresholds(args.interval, args.window, args.down, recover=args.recover,
                                 settle_s=args.settle, block_interval_s=args.block_interval),
                      sinks, drift=DriftWatch(lab, args.drift_interval)
                      if args.drift_interval else None)
    print(f"watching {len(watcher.flows)} must-work flows of '{args.stack}' every "
          f"{args.interval * 1000:.0f} ms (down: {args.down} of {args.window} failed) and "
          f"{len(watcher.block_flows)} must-block flows every {args.block_interval:g} s; Ctrl-C "
          "stops", file=sys.stderr)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    with watcher:
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(1.0)
                if sys.stderr.isatty():
                    print("\r" + status_line(watcher), end="", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            pass
    raised = sum(e.kind == "alarm" for e in watcher.events)
    print(f"\n{len(watcher.samples)} probes, {raised} alarms raised", file=sys.stderr)
    return 1 if raised else 0


def cmd_drift(args: argparse.Namespace) -> int:
    """What differs between the live nodes and the recorded revision (exit 1 on drift); with
    --revert, bring the drifted nodes back and verify the contract (exit 0 when green)."""
    if not args.revert:
        report = workflow_drift.check(args.stack)
        print(report.render())
        return report.exit_code
    reverted = workflow_drift.revert(args.stack, load_contract(args.contract))
    print(reverted.found.render())
    for error in reverted.converge.errors if reverted.converge else []:
        print(f"  {error}", file=sys.stderr)
    print(f"revert of '{args.stack}': " + (
        "nothing to revert" if reverted.converge is None and not reverted.found.errors else
        f"converged {', '.join(reverted.found.nodes) or 'no host'} back to revision "
        f"{reverted.found.revision}, {len(reverted.failing)} contract flows failing, "
        f"{reverted.seconds:.1f}s"))
    for failing in reverted.failing:
        print(f"  - {failing}")
    return reverted.exit_code


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay an incident of the catalog; 0 when the watcher raised the expected alarm in time
    and the lab came back green, 1 otherwise."""
    catalog = load_catalog(args.catalog)
    if args.incident is None:
        rows = [("INCIDENT", "FAULTS", "EXPECTED")]
        rows += [(i.name, ", ".join(map(str, i.steps)),
                  f"{i.expect_class} ({i.expect_service}) <= {i.within_s:g}s")
                 for i in catalog.values()]
        print(text_table(rows))
        return 0
    if args.incident not in catalog:
        raise ReplayError(f"{args.catalog}: no incident '{args.incident}'. Known: "
                          f"{', '.join(catalog)} (edge replay lists them).")
    incident = catalog[args.incident]
    if args.hold is not None:
        incident = dataclasses.replace(incident, hold_s=args.hold)
    lab = stack.lab(args.stack)
    with stack_lock(stack.STATE, args.stack, f"edge replay {incident.name}"):
        result = run_replay(incident, lab, load_contract(args.contract),
                            restore=not args.no_restore,
                            state_dir=stack_dir(stack.STATE, args.stack))
    print(timeline_text(result.events, result.samples))
    print(f"\n{'PASS' if result.ok else 'FAIL'}: {incident.name}: detected "
          f"{result.detected or 'nothing'}"
          + (f" in {result.detect_s:.2f}s" if result.detect_s is not None else "")
          + (f"; recovered in {result.recover_s:.2f}s" if result.recover_s is not None else ""))
    for problem in result.problems:
        print(f"  - {problem}")
    out = Path(args.out or stack.ROOT / "report" / f"replay-{incident.name}")
    for path in write_report(result, out):
        print(f"  {path}")
    return 0 if result.ok else 1


def cmd_fault(args: argparse.Namespace) -> int:
    """Break the stack for real (recorded until cleared), list what is broken, or undo it all;
    `clear` then converges the stack to its revision and verifies it green."""
    state_dir = stack_dir(stack.STATE, args.stack)
    if args.action == "inject":
        options = {"network": args.network, "delay_ms": args.delay_ms,
                   "loss_pct": args.loss_pct, "rate": args.rate, "mode": args.mode}
        fault = workflow_up.inject_fault(args.stack, args.kind, args.node, options)
        print(f"injected: {fault}  (undo: edge fault clear --stack {args.stack})")
        return 0
    if args.action == "list":
        print("\n".join(str(fault) for fault in faults.active(state_dir)) or "no active fault")
        return 0
    cleared = workflow_up.clear_faults(args.stack, args.contract)
    print("\n".join(f"undone: {fault}" for fault in cleared.undone) or "no active fault")
    print(results_table(cleared.results))
    print(f"stack '{args.stack}': converge {'ok' if cleared.converge.ok else 'FAILED'}, "
          f"{cleared.failing} contract flows failing")
    return 0 if cleared.ok else 1


def add_fault_command(sub: argparse._SubParsersAction) -> None:
    """`edge fault inject KIND NODE [options] | list | clear`, each with --stack."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", default="lab", help="stack name (default: lab)")
    fault = sub.add_parser("fault", help="inject real faults on a stack, list or undo them")
    fault.set_defaults(func=cmd_fault)
    actions = fault.add_subparsers(dest="action", required=True)
    inject = actions.add_parser("inject", parents=[common],
                                help="break something; recorded until `edge fault clear`")
    inject.add_argument("kind", choices=list(faults.KINDS))
    inject.add_argument("node", help="a node of the stack, e.g. lb1")
    inject.add_argument("--network", help="disconnect, netem: which of the node's networks")
    inject.add_argument("--delay-ms", type=float, help="netem: delay added to what it sends")
    inject.add_argument("--loss-pct", type=float, help="netem: share of frames dropped")
    inject.add_argument("--rate", help="netem: rate limit, e.g. 1mbit")
    inject.add_argument("--mode", choices=faults.STORAGE_MODES, help="storage: gone or readonly")
    actions.add_parser("list", parents=[common], help="the stack's active faults, oldest first")
    clear = actions.add_parser("clear", parents=[common], help="undo every active fault (newest "
                               "first), converge, verify green")
    clear.add_argument("--contract", default=str(stack.ROOT / "contract.yaml"))


def cmd_status(args: argparse.Namespace) -> int:
    try:
        lab = stack.lab(args.stack)
    except LabError as err:
        print(err)      # the answer to "what is up?", not a mistake: exit 1, not 2
        return 1
    states = workflow_up.node_states(lab)
    print(summary_table(lab, states))
    live = load_live(stack.STATE, args.stack)
    print(f"revision: {live.id if live else 'none recorded (edge up)'}"
          + (f" (tree {live.tree[:12]}, {len(live.vars)} applied variables, stopped: "
             f"{', '.join(live.stop) or 'none'})" if live else ""))
    active = faults.active(stack_dir(stack.STATE, args.stack))
    print(f"active faults: {', '.join(map(str, active)) or 'none'}")
    return 0 if all(s == "running" for s in states.values()) else 1


def cmd_down(args: argparse.Namespace) -> int:
    workflow_up.destroy(args.stack)
    left = cleanup.count({LABEL_STACK: args.stack})
    print(f"stack '{args.stack}' destroyed; {left.total} labelled objects left "
          f"({left.containers} containers, {left.networks} networks, {left.volumes} volumes)")
    return 0 if left.total == 0 else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    """One line per check with what to do; exit 1 when any fails (after --fix, when asked)."""
    for done in (workflow_doctor.fix() if args.fix else []):
        print(f"fixed: {done}")
    checks = workflow_doctor.examine()
    rows = [("CHECK", "", "WHAT", "FIX")]
    rows += [(c.name, "ok" if c.ok else "FAIL", c.detail, c.fix) for c in checks]
    print(text_table(rows))
    return 0 if all(c.ok for c in checks) else 1


def cmd_clean(args: argparse.Namespace) -> int:
    labels = {LABEL_STACK: args.stack} if args.stack else {"edge-testbed.purpose": args.purpose}
    gone = cleanup.remove(labels)
    print(f"removed {gone.containers} containers, {gone.networks} networks, "
          f"{gone.volumes} volumes labelled {labels}")
    return 0


def cmd_swarm(args: argparse.Namespace) -> int:
    """Make, grow, show or undo the Swarm of this machine's engine (edge/engines/swarm.py)."""
    client = docker_exec.client()
    try:
        if args.action == "init":
            if args.slot is None:
                raise swarm.SwarmError("init needs --slot N: the address slot whose internal "
                                       "block's top /20 the engines use")
            plan = swarm.swarm_plan(load_topology(args.topology), args.slot, args.name)
            swarm.init(plan, client)
            print(f"swarm '{plan.name}': this engine is its manager at {plan.manager} on "
                  f"{plan.bridge_name} ({plan.bridge}); address pool {plan.pool}")
        elif args.action == "join":
            if args.endpoint:
                if not args.advertise_addr:
                    raise swarm.SwarmError("--endpoint needs --advertise-addr: the address the "
                                           "engine is reached at by the other engines")
                swarm.join(client, args.engine, swarm.Endpoint(args.endpoint, *args.tls),
                           args.advertise_addr)
            else:
                swarm.join_local(load_topology(args.topology), args.engine, client,
                                 configure.to_stderr)
            print(f"engine '{args.engine}' joined the Swarm as a worker")
        elif args.action == "leave":
            for line in swarm.leave(args.name, client):
                print(line)
            return 0
        # init and join wait for the members to report in; status shows them as they are
        found = swarm.wait_ready(client, deadline_s=0 if args.action == "status" else 60)
    except (swarm.SwarmError, swarm.EngineAPIError, TopologyError) as err:
        print(f"edge: swarm {args.action}: {err}", file=sys.stderr)
        return 2
    rows = [("ENGINE", "HOSTNAME", "ROLE", "STATE", "AVAILABILITY", "ADDRESS", "VERSION",
             "ENDPOINT")]
    rows += [dataclasses.astuple(member) for member in found]
    print(text_table(rows))
    return 0 if all(m.state == "ready" for m in found) else 1


def add_swarm_command(sub: argparse._SubParsersAction) -> None:
    """`edge swarm init|join|status|leave`."""
    cmd = sub.add_parser("swarm", help="join Docker engines in a Swarm, so that a lab can "
                         "spread over them")
    cmd.add_argument("action", choices=("init", "join", "status", "leave"))
    cmd.add_argument("engine", nargs="?", default="engine2", help="join: the engine's name "
                     "(default: engine2, started here in a container unless --endpoint)")
    cmd.add_argument("--name", default="swarm", help="init/leave: the label of what edge makes "
                     "for the Swarm (default: swarm)")
    cmd.add_argument("--slot", type=int, help="init: the address slot whose internal block's "
                     "top /20 the engines use (one no stack of this Swarm's labs uses)")
    cmd.add_argument("--topology", default=str(stack.ROOT / "topology" / "reference.yaml"))
    cmd.add_argument("--endpoint", help="join: an engine of another machine (ssh://user@host, "
                     "tcp://host:2376 with --tls)")
    cmd.add_argument("--advertise-addr", type=ipaddress.IPv4Address,
                     help="join --endpoint: that engine's address")
    cmd.add_argument("--tls", nargs=3, default=("", "", ""), metavar=("CA", "CERT", "KEY"),
                     help="join --endpoint tcp://...: the TLS files")
    cmd.set_defaults(func=cmd_swarm)


def cmd_topology(args: argparse.Namespace) -> int:
    """`edge topology generate`: the reference lab grown to N load balancers, M name servers and
    K execution nodes, validated, on stdout (or --out)."""
    try:
        written = topogen.text(args.lbs, args.ns, args.deas, Path(args.reference))
    except TopologyError as err:
        print(f"edge: {err}", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(written)
    else:
        sys.stdout.write(written)
    return 0


def add_topology_command(sub: argparse._SubParsersAction) -> None:
    """`edge topology generate --lbs N --ns M --deas K`."""
    cmd = sub.add_parser("topology", help="generate bigger labs of the reference's shape")
    cmd.add_argument("action", choices=("generate",))
    for flag, what in (("--lbs", "load balancers"), ("--ns", "name servers"),
                       ("--deas", "execution nodes")):
        cmd.add_argument(flag, type=int, default=2, help=f"how many {what} (default 2)")
    cmd.add_argument("--reference", default=str(topogen.REFERENCE),
                     help="the topology whose shape is grown (default: topology/reference.yaml)")
    cmd.add_argument("--out", help="write it to this file (default: stdout)")
    cmd.set_defaults(func=cmd_topology)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="edge", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    commands = {}
    for name, func, text in (("up", cmd_up, "create or update the lab, configure it, print it"),
                             ("converge", cmd_converge, "run the Ansible roles on the lab"),
                             ("verify", cmd_verify, "probe the contract's flows from inside"),
                             ("preview", cmd_preview, "try a change on the staging stack"),
                             ("apply", cmd_apply, "apply a previewed change under the watchdog"),
                             ("watch", cmd_watch, "probe continuously, raise alarms"),
                             ("replay", cmd_replay, "replay an incident of replays.yaml"),
                             ("drift", cmd_drift, "what differs between the live nodes and "
                              "their recorded revision"),
                             ("status", cmd_status, "print the lab's nodes and their state"),
                             ("down", cmd_down, "destroy the lab (pulumi destroy)")):
        commands[name] = cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--stack", default="lab", help="stack name (default: lab)")
        cmd.set_defaults(func=func)
    commands["up"].add_argument("--slot", type=int, help="address slot of a new stack")
    for name in ("preview", "apply"):
        commands[name].add_argument("change", nargs="?", help="a change file (see "
                                    "changes/examples/); none: the working tree's edits")
    commands["apply"].add_argument("--force", action="store_true", help="emergency: apply "
                                   "without a SAFE preview (still watched, recorded as forced)")
    replay = commands["replay"]
    replay.add_argument("incident", nargs="?", help="an incident of the catalog (none: list them)")
    replay.add_argument("--catalog", default=str(stack.ROOT / "replays.yaml"))
    replay.add_argument("--hold", type=float, help="seconds the faults stay before the "
                        "automatic restore (default: the incident's hold_s)")
    replay.add_argument("--no-restore", action="store_true",
                        help="leave the faults in place (edge fault clear undoes them)")
    replay.add_argument("--out", help="report folder (default: report/replay-INCIDENT)")
    watch = commands["watch"]
    watch.add_argument("--interval", type=float, default=0.2, help="seconds between probes")
    watch.add_argument("--window", type=int, default=3, help="M: samples judged per flow")
    watch.add_argument("--down", type=int, default=2, help="N: failed samples that make it down")
    watch.add_argument("--recover", type=int, default=3, help="good probes in a row before a "
                       "flow that was down counts as recovered")
    watch.add_argument("--settle", type=float, default=2.0, help="a recovering service changes "
                       "class at most once per this many seconds")
    watch.add_argument("--block-interval", type=float, default=5.0, help="seconds between "
                       "probes of the must-block flows (0: off)")
    watch.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    watch.add_argument("--drift-interval", type=float, default=30.0, help="seconds between two "
                       "reads of every node's configuration digest, a change being a DRIFT alarm "
                       "(0: off)")
    commands["drift"].add_argument("--revert", action="store_true", help="bring the drifted "
                                   "nodes back to the recorded revision, verify the contract")
    watch.add_argument("--log", help="append every event as a JSON line to this file")
    watch.add_argument("--webhook", help="POST alarms and clears as JSON to this URL")
    watch.add_argument("--webhook-key", help="sign each webhook body (HMAC-SHA256, header "
                       "X-Edge-Signature) with the key in this file (0600)")
    commands["preview"].add_argument("--staging", default="staging",
                                     help="the stack the change is tried on (default: staging), "
                                     "or a pool a,b,... of which it takes a free one")
    commands["apply"].add_argument("--staging", default="staging", help="the staging stack "
                                   "(or pool a,b,...) the preview this apply relies on was made "
                                   "on (default: staging)")
    commands["preview"].add_argument("--out", help="report folder (default: report/preview-DIGEST)")
    commands["preview"].add_argument("--no-wait", action="store_true", help="refuse, instead "
                                     "of waiting, when another preview holds the staging stack")
    for name in ("up", "converge"):
        commands[name].add_argument("--force", action="store_true", help="take the working "
                                    "tree's edits without preview + apply (recorded in the "
                                    "audit log)")
    for name in ("up", "verify", "preview", "apply", "watch", "replay", "drift"):
        commands[name].add_argument("--contract", default=str(stack.ROOT / "contract.yaml"),
                                    help="the connectivity contract (default: contract.yaml)")
    commands["converge"].add_argument("--check", action="store_true",
                                      help="dry run: show what would change (--check --diff)")
    for name in ("preview", "apply", "converge"):
        commands[name].add_argument("--timings", action="store_true", help="at the end, print "
                                    "where the wall time went, step by step (on stderr)")
    doctor = sub.add_parser("doctor", help="check this machine, the stacks' state and what "
                            "interrupted runs left; one line per check with the fix")
    doctor.add_argument("--fix", action="store_true", help="first stop leftover processes and "
                        "delete DOCKER-USER rules of bridges that are gone")
    doctor.set_defaults(func=cmd_doctor)
    clean = sub.add_parser("clean", help="remove leftovers by label, without Pulumi")
    group = clean.add_mutually_exclusive_group(required=True)
    group.add_argument("--stack", help="every object of this stack")
    group.add_argument("--purpose", help="every object of this purpose (e.g. test)")
    clean.set_defaults(func=cmd_clean)
    add_fault_command(sub)
    add_swarm_command(sub)
    add_topology_command(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.timer = Timings.since_process_start() if getattr(args, "timings", False) else None
    _mark(args, "edge: stopping leftovers of killed commands, recovering interrupted runs")
    processes.install_signal_handlers()
    left = processes.reap(processes.leftovers())
    for process in left:
        print(f"edge: stopped a leftover of a killed edge command: {process}", file=sys.stderr)
    try:
        if getattr(args, "stack", None) and args.command not in ("doctor", "clean"):
            pool = workflow_preview.staging_pool(args.stack, args.staging) \
                if args.command == "preview" else []
            for name in [args.stack] + pool:
                for line in workflow_doctor.recover(name):
                    print(f"edge: recovered: {line}", file=sys.stderr)
        said = workflow_up.interrupted(args.stack) if getattr(args, "stack", None) else None
        if said:
            print(f"edge: WARNING: {said}", file=sys.stderr)
        return args.func(args)
    except (stack.PulumiError, ContractError, ChangeError, RevisionError, ReplayError,
            faults.FaultError, StateError, StackLocked, WatchError, LabError,
            signing.WebhookKeyError) as err:
        print(f"edge: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        # The processes it started were stopped on the way out (edge/engines/processes.py).
        print(f"\nedge: interrupted ({interrupt or 'Ctrl-C'}); the processes it started are "
              "stopped", file=sys.stderr)
        return 130
    finally:
        if args.timer:
            args.timer.finish()
            print(f"\nedge {args.command}: where the time went\n{args.timer.table()}",
                  file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
