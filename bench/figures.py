"""What every benchmark measures, as data: the one place a figure is described.

The terminal table of `bench/run.py` and the README's "## Timings" table are both rendered from
these descriptions and bench/results/<benchmark>.json, so a figure's wording, unit, target and
peer (what its ratio is taken against) are written once, here, and never by hand in the README.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured quantity of a benchmark (a key of its results file)."""

    key: str
    text: str                 # what it is, as the README says it (markdown)
    unit: str = "s"           # "s", "ms", "%" (of one core) or "" (a count)
    target: str = ""          # the bound it must stay under, if the project promised one
    peer: str = ""            # the key of the same benchmark this one is compared with (ratio)


@dataclass(frozen=True)
class Benchmark:
    """A benchmark script of bench/ and the figures it records, in the order they are shown."""

    name: str                 # module bench/<name>.py and results file bench/results/<name>.json
    text: str
    figures: tuple[Figure, ...]


# Lab sizes of bench/scale.py (nodes): the reference lab, then twice and four times as big.
SCALE_SIZES: tuple[int, ...] = (13, 26, 52)
SCALE_STEPS: tuple[tuple[str, str], ...] = (
    ("up_{}_s", "full `edge up` (pulumi up + converge + verify)"),
    ("pulumi_up_{}_s", "`pulumi up`"),
    ("converge_{}_s", "converge, fresh containers"),
    ("converge_again_{}_s", "converge again (idempotent)"),
    ("verify_{}_s", "verify (the contract's flows)"),
    ("destroy_{}_s", "`pulumi destroy`"),
)


def scale_figures() -> tuple[Figure, ...]:
    """Each step at each size, compared with the same step at the smallest size (linear growth
    is a ratio of nodes ÷ 13), and the number of contract flows probed at each size."""
    first = SCALE_SIZES[0]
    figures = [Figure(key.format(n), f"{text}, {n} nodes",
                      peer=key.format(first) if n != first else "")
               for key, text in SCALE_STEPS for n in SCALE_SIZES]
    return tuple(figures + [Figure(f"flows_{n}", f"contract flows probed, {n} nodes", unit="")
                            for n in SCALE_SIZES])


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("lab_lifecycle", "warm setup, `pulumi up` and `pulumi destroy` of the reference lab", (
        Figure("setup_warm_s", "setup, warm (everything already there)"),
        Figure("pulumi_up_s", "`pulumi up` of the reference lab (19 resources)", target="≤ 20 s"),
        Figure("pulumi_up_no_change_s", "`pulumi up` with no change"),
        Figure("pulumi_destroy_s", "`pulumi destroy`", target="≤ 10 s"),
    )),
    Benchmark("floor", "`pulumi up`/`destroy` against the same containers and networks made with "
              "the Docker SDK alone (10 threads), alternating in one run, and where the rest goes", (
        Figure("floor_up_s", "floor: networks, volume, containers created and started by the "
               "Docker SDK (10 threads, no grace sleep)"),
        Figure("floor_down_s", "floor: the same removed by the SDK"),
        Figure("pulumi_up_s", "`pulumi up` of the same stack (`edge.engines.stack.up`)", peer="floor_up_s"),
        Figure("pulumi_destroy_s", "`pulumi destroy` of it", peer="floor_down_s"),
        Figure("floor_up_grace_s", "floor + the providers' 0.5 s grace sleep after each start, "
               "10 threads", peer="floor_up_s"),
        Figure("floor_up_4_threads_grace_s", "floor + grace sleep, 4 threads (the Python dynamic "
               "provider's gRPC pool)", peer="floor_up_s"),
        Figure("pulumi_up_parallel_16_s", "`pulumi up --parallel 16` (default 8)",
               peer="pulumi_up_s"),
        Figure("pulumi_up_16_provider_threads_s", "`pulumi up --parallel 16`, provider gRPC pool "
               "of 16 threads (bench-only patch)", peer="pulumi_up_s"),
        Figure("pulumi_up_state_wait_s", "`pulumi up`, grace sleep replaced by a wait for "
               "edge-init to hand over to tini (bench-only patch)", peer="pulumi_up_s"),
        Figure("pulumi_up_both_s", "`pulumi up --parallel 16`, 16 provider threads and the state "
               "wait", peer="pulumi_up_s"),
        Figure("pulumi_up_no_change_s", "`pulumi up` with no change (the fixed cost of a run)"),
        Figure("pulumi_cli_start_s", "`pulumi version` (CLI start-up)"),
        Figure("provider_start_s", "dynamic provider process start (`python -m pulumi.dynamic` "
               "to its port line)"),
        Figure("program_imports_s", "the Pulumi program's imports (pulumi, docker, edge)"),
    )),
    Benchmark("edge_up", "`edge up` (pulumi up + converge + verify) on a fresh lab each run, a "
              "second converge and the e2e suite", (
        Figure("pulumi_up_s", "`pulumi up` within `edge up`", target="≤ 20 s"),
        Figure("converge_s", "converge, fresh containers", target="≤ 30 s"),
        Figure("converge_again_s", "converge again (idempotent, `changed=0`)", target="≤ 15 s"),
        Figure("verify_s", "verify (the contract's flows)"),
        Figure("full_up_s", "full up (`pulumi up` + converge + verify)", target="≤ 90 s"),
        Figure("e2e_suite_s", "e2e suite (`pytest tests/e2e` on a configured lab)",
               target="≤ 10 s"),
    )),
    Benchmark("converge_strategy", "the same site playbook on the same lab with Mitogen "
              "(`mitogen_free`) and with plain Ansible (`free`), alternating", (
        Figure("mitogen_converge_s", "converge, fresh containers, Mitogen"),
        Figure("plain_converge_s", "converge, fresh containers, plain Ansible",
               peer="mitogen_converge_s"),
        Figure("mitogen_converge_again_s", "converge again (idempotent), Mitogen"),
        Figure("plain_converge_again_s", "converge again (idempotent), plain Ansible",
               peer="mitogen_converge_again_s"),
        Figure("mitogen_controller_cpu_s", "controller CPU of a fresh converge, Mitogen "
               "(ansible processes on this machine)"),
        Figure("plain_controller_cpu_s", "controller CPU of a fresh converge, plain Ansible",
               peer="mitogen_controller_cpu_s"),
    )),
    Benchmark("probe_cost", "the contract measured by the probe agent (one `docker exec` per "
              "vantage point) versus `dig`/`curl`/`nc`, one `docker exec` per probe", (
        Figure("agent_contract_s", "whole contract, probe agent"),
        Figure("shell_contract_s", "whole contract, a `docker exec` of dig/curl/nc per probe",
               peer="agent_contract_s"),
        Figure("agent_work_s", "must-work flows only (one `edge watch` round), probe agent"),
        Figure("shell_work_s", "must-work flows only, a `docker exec` per probe",
               peer="agent_work_s"),
        Figure("agent_contract_cpu_s", "CPU of the whole contract, probe agent (vantage "
               "containers + this process)"),
        Figure("shell_contract_cpu_s", "CPU of the whole contract, per-probe exec",
               peer="agent_contract_cpu_s"),
        Figure("agent_contract_engine_cpu_s", "engine CPU of it (dockerd, containerd, the "
               "vantage shims; others share them), probe agent"),
        Figure("shell_contract_engine_cpu_s", "engine CPU of it, per-probe exec",
               peer="agent_contract_engine_cpu_s"),
        Figure("verdict_disagreements", "flows whose verdict differs between the two", unit="",
               target="0"),
    )),
    Benchmark("change_gate", "the change gate with staging up", (
        Figure("preview_s", "`edge preview` of a one-host change to a verdict, staging up",
               target="≤ 30 s"),
        Figure("static_stage_s", "its static stage alone (`pulumi preview` + check mode)",
               target="≤ 10 s"),
        Figure("apply_verify_s", "`edge apply` + post-apply verification (4 s watch window "
               "included)", target="≤ 20 s"),
        Figure("rollback_detect_s", "rollback: first failed probe → the watchdog decides"),
        Figure("rollback_restore_s", "rollback: first failed probe → service restored",
               target="≤ 15 s"),
    )),
    Benchmark("engines", "the reference lab on this engine against the same lab split over two "
              "engines of a Swarm (load balancers and PaaS on a second dockerd of this machine), "
              "a fresh `edge up` each run", (
        Figure("one_pulumi_up_s", "`pulumi up`, one engine"),
        Figure("two_pulumi_up_s", "`pulumi up`, split over two", peer="one_pulumi_up_s"),
        Figure("one_converge_s", "converge, one engine"),
        Figure("two_converge_s", "converge, split over two", peer="one_converge_s"),
        Figure("one_verify_s", "verify (the contract), one engine"),
        Figure("two_verify_s", "verify, split over two", peer="one_verify_s"),
        Figure("one_e2e_suite_s", "the e2e suite (pytest tests/e2e), one engine"),
        Figure("two_e2e_suite_s", "the e2e suite, split over two", peer="one_e2e_suite_s"),
        Figure("one_latency_ms", "median latency of the must-work flows, one engine", unit="ms"),
        Figure("two_latency_ms", "the same across the overlay", unit="ms",
               peer="one_latency_ms"),
    )),
    Benchmark("preview_pool", "four `edge preview` commands of different one-host changes "
              "started at once: one staging stack against a pool of two on two engines of a Swarm "
              "(`--staging a,b`, b wholly on a second dockerd of this machine's two cores)", (
        Figure("one_staging_s", "all four verdicts, one staging stack (they take turns)"),
        Figure("pool_of_two_s", "all four verdicts, a pool of two staging stacks, one per engine",
               target="≤ 0.6× one stack", peer="one_staging_s"),
    )),
    Benchmark("molecule_peer", "`edge preview` of a one-host change to the loadbalancer role "
              "(`lb2-health-checks-slower`) against Molecule's full cycle of that role (Docker "
              "driver, base image, the load-balancer testinfra checks), alternating", (
        Figure("molecule_test_s", "`molecule test` (create, prepare, converge, idempotence, "
               "verify, destroy): the role on one load balancer, two stand-in backends, a client"),
        Figure("preview_s", "`edge preview` to a SAFE verdict, staging up: the whole contract "
               "and redundant sets on a full lab copy", target="≤ `molecule_test_s`",
               peer="molecule_test_s"),
        Figure("preview_not_safe", "previews whose verdict was not the example's SAFE (flows "
               "slowed by the machine's load)", unit="", target="0"),
    )),
    Benchmark("emulator_peer", "`pulumi up`/`destroy` of the reference lab per node against "
              "containerlab's published figure (Kathará, the peer asked for, cannot get its "
              "network plugin here: see bench/emulator_peer.py) and the Docker SDK floor", (
        Figure("containerlab_per_node_s", "containerlab, published: 6 nodes and 10 links in "
               "about 5 s (not measured here)"),
        Figure("floor_up_per_node_s", "floor (Docker SDK, 10 threads) up, per node",
               peer="containerlab_per_node_s"),
        Figure("pulumi_up_per_node_s", "`pulumi up`, per node", target="≤ 1.5× emulator",
               peer="containerlab_per_node_s"),
        Figure("floor_down_per_node_s", "floor down, per node"),
        Figure("pulumi_destroy_per_node_s", "`pulumi destroy`, per node",
               peer="floor_down_per_node_s"),
        Figure("nodes", "nodes of the reference lab", unit=""),
        Figure("networks", "its networks", unit=""),
        Figure("attachments", "its node-network attachments (containerlab's links have two)",
               unit=""),
    )),
    Benchmark("watch", "incident replays (time to detect, to recover) and a quiet soak", (
        Figure("cloudfoundry-2011-keystroke_detect_s", "`edge watch`: full outside outage "
               "(`cloudfoundry-2011-keystroke`) detected", target="≤ 1 s"),
        Figure("partial-dns_detect_s", "`edge watch`: DNS redundancy lost (`partial-dns`) "
               "detected", target="≤ 2 s"),
        Figure("cloudfoundry-2011-storage_detect_s", "`edge watch`: storage loss (INTERNAL) "
               "detected", target="≤ 3 s"),
        Figure("aws-2011-network-shift_detect_s", "`edge watch`: network shift (DEGRADED) "
               "detected", target="≤ 3 s"),
        Figure("cloudfoundry-2011-keystroke_recover_s", "back to green after the restore: "
               "keystroke"),
        Figure("cloudfoundry-2011-storage_recover_s", "back to green after the restore: storage"),
        Figure("aws-2011-network-shift_recover_s", "back to green after the restore: shift"),
        Figure("partial-dns_recover_s", "back to green after the restore: partial DNS"),
        Figure("soak_s", "length of the quiet soak"),
        Figure("soak_alarms", "false alarms in the quiet soak", unit="", target="0"),
        Figure("soak_probes", "probes made during the soak", unit=""),
        Figure("agents_cpu_pct_of_one_core", "the two probe agents' CPU together, 200 ms "
               "interval", unit="%", target="< 5 %"),
    )),
    Benchmark("scale", "cost as the lab grows: the reference lab generated at 13, 26 and 52 "
              "nodes (`edge topology generate`), a fresh `edge up`, a second converge and a "
              "destroy at each size; ratios are to the 13-node figure (linear: 2× and 4×)",
              scale_figures()),
)

NAMES: tuple[str, ...] = tuple(b.name for b in BENCHMARKS)


def benchmark(name: str) -> Benchmark:
    """The description of benchmark `name` (one of NAMES)."""
    return next(b for b in BENCHMARKS if b.name == name)
