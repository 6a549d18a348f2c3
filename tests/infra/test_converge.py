"""The converge itself: every host configured, a second run changes nothing, and a converge
converges what runs, not only what is on disk.

The last point is issue 11: with every file as rendered, a deleted nft table, a stopped daemon, a
BGP neighbour removed with vtysh or a zone named never reloaded used to survive a converge that
reported "0 changed". Each role now compares what its daemon runs with the rendered file and
repairs it, reporting the repair as a change.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from edge.engines import configure
from edge.lab.probes import settle
from edge.model.contract import expand, load_contract
from edge.model.scope import role_defaults
from edge.workflow import daemons
from tests.lab_fixtures import ROOT, Lab

RECOVER_S = 30.0   # after the repairing converge: routes, health checks (rise 2 x 1s), NOTIFY
ROLES = ROOT / "roles"
NFT = role_defaults(ROLES, "nftables")
LB = role_defaults(ROLES, "loadbalancer")
DNS = role_defaults(ROLES, "dns")
BORDER = role_defaults(ROLES, "border")
RESOLVER = role_defaults(ROLES, "resolver")
# A lost restart: the first file on a PaaS app's command line is written again after the app
# started (what a converge killed between the write and its restart handler leaves).
APP_FILE_REWRITTEN = (
    "pid=$(supervisorctl pid $(supervisorctl status | awk '/^paas-app-/ {print $1; exit}')); "
    "f=$(tr '\\0' '\\n' < /proc/$pid/cmdline | grep -E '^/(etc|opt|srv|usr/local)/' | head -n 1); "
    "[ -n \"$f\" ] && sleep 1 && touch \"$f\"")
# Bumps the SOA serial of the zone file argv[1] in place: the file stays one the converge accepts
# as rendered (it renders the zone with the live serial), but named serves the older serial.
BUMP_SERIAL = r"""
import re, sys
path = sys.argv[1]
text = open(path).read()
bumped = re.sub(r"(IN\s+SOA\s[^(]*\(\s*)(\d+)", lambda m: m[1] + str(int(m[2]) + 1), text, count=1)
assert bumped != text, f"no SOA serial in {path}"
open(path, "w").write(bumped)
"""


@dataclass(frozen=True)
class Damage:
    """A hand-made difference between what a node runs and its rendered files."""

    node: str
    what: str                  # for the failure message
    argv: list[str]            # run in the node's container; must exit 0
    repair: str                # the task that must report the repair as changed on `node`


def damages(lab: Lab) -> list[Damage]:
    """One damage per role (and per way FRR can lose its configuration), on distinct nodes."""
    table = f"inet {NFT['nftables_table']}"
    config, socket = LB["loadbalancer_config"], LB["loadbalancer_admin_socket"]
    # The lost reload: HAProxy runs an edited copy, then the rendered file is put back unloaded.
    lost_reload = (
        f"cp -p {config} {config}.edge-test && "
        f"sed -i 's/^\\( *description \\).*/\\1sha256:edited-by-hand/' {config} && "
        "supervisorctl signal USR2 haproxy >/dev/null; loaded=no; "
        "for _ in $(seq 1 40); do "
        f"echo 'show info' | nc -NU {socket} | grep -q edited-by-hand && {{ loaded=yes; break; }}; "
        "sleep 0.25; done; "
        f"mv {config}.edge-test {config}; [ $loaded = yes ]")
    zone_file = f"{DNS['dns_primary_zone_dir']}/db.{lab.view.zone}"
    bump, zone = f"python3 -c {shlex.quote(BUMP_SERIAL)} {zone_file}", lab.view.zone
    serial = f"dig +short +norecurse SOA {zone} @{DNS['dns_control_address']} | awk '{{print $3}}'"
    stale_zone_with_journal = (
        f"{bump} && want=$(named-checkzone {zone} {zone_file} | sed -n 's/.* serial \\([0-9]*\\).*/\\1/p') && "
        f"rndc reload {zone} >/dev/null && for _ in $(seq 1 40); do "
        f"[ \"$({serial})\" = \"$want\" ] && break; sleep 0.25; done && "
        f"[ \"$({serial})\" = \"$want\" ] && [ -s {zone_file}.jnl ] && {bump}")
    neighbour = lab.address("firewall", "transit")
    return [
        Damage("firewall", f"table {table} deleted", ["nft", "delete", "table", *table.split()],
               "The loaded table is the rendered ruleset"),
        Damage("lb1", "haproxy stopped", ["supervisorctl", "stop", "haproxy"],
               "HAProxy runs the rendered configuration"),
        Damage("lb2", "haproxy runs a configuration edited by hand (its reload lost)",
               ["sh", "-c", lost_reload], "HAProxy runs the rendered configuration"),
        Damage("border", f"BGP neighbour {neighbour} removed with vtysh",
               ["vtysh", "-c", "configure terminal", "-c", f"router bgp {BORDER['border_asn']}",
                "-c", f"no neighbor {neighbour}"], "FRR runs the rendered configuration"),
        # supervisord restarts bgpd empty; `show running-config` still lists the prefix lists
        # zebra holds, so only a per-daemon comparison sees what bgpd lost.
        Damage("border2", "bgpd restarted (empty)", ["supervisorctl", "restart", "frr-bgpd"],
               "FRR runs the rendered configuration"),
        # Reloaded once in between, so named holds an IXFR journal that ends at the served serial,
        # below the file's (CI of stop 21: the journal rule took that journal for another
        # version's, removed it and hid this repair). A reload appends to such a journal.
        Damage("ns1", "zone file's serial bumped, named reloaded, bumped again and not reloaded "
                      "(serves a stale zone; its journal ends at the served serial)",
               ["sh", "-c", stale_zone_with_journal], "named serves the rendered zone"),
        Damage("ns2", "named stopped", ["supervisorctl", "stop", DNS["dns_program"]],
               "named serves the rendered zone"),
        # A stopped program is started by the same shell function for every role (lb1, ns2,
        # dea1 above); unbound stands for the programs that read their files only at start.
        Damage("resolver", "unbound.conf written after unbound started (its restart lost)",
               ["sh", "-c", f"sleep 1 && touch {RESOLVER['resolver_conf']}"], "unbound runs"),
        Damage("dea1", "an app instance stopped",
               ["sh", "-c", "supervisorctl stop $(supervisorctl status | awk '/^paas-app-/ "
                            "{print $1; exit}')"], "PaaS programs run"),
        Damage("dea2", "an app's file written after it started (its restart lost)",
               ["sh", "-c", APP_FILE_REWRITTEN], "PaaS programs run"),
    ]


def run_in(client: docker.DockerClient, lab: Lab, node: str, argv: list[str]) -> tuple[int, str]:
    code, (out, err) = client.containers.get(lab.container(node)).exec_run(argv, demux=True)
    return code, ((out or b"") + (err or b"")).decode(errors="replace").strip()


def test_first_converge_configured_every_node(lab: Lab) -> None:
    if lab.converge is None:   # EDGE_TEST_REUSE: the stack was converged outside this session
        lab = Lab(lab.stack, lab.view, configure.converge(lab.stack, lab.state, progress=None),
                  lab.state)
    assert lab.converge.ok, lab.converge.errors
    assert set(lab.converge.hosts) == set(lab.view.nodes)


def test_second_converge_changes_nothing(lab: Lab) -> None:
    again = configure.converge(lab.stack, lab.state, progress=None)
    assert again.ok, again.errors
    changed = {host: r.changed for host, r in again.hosts.items() if r.changed}
    assert changed == {}, f"not idempotent: {changed}; diffs: {again.diffs}"


def test_inventory_graph_works_for_the_stack(lab: Lab) -> None:
    """`ansible-inventory --graph` on the dynamic inventory, as a user runs it for any stack."""
    env = os.environ | {"EDGE_STACK": lab.stack, "EDGE_STATE": str(lab.state)}
    graph = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i",
                            str(ROOT / "inventory" / "edge_stack.py"), "--graph"],
                           env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for group in ("@role_border:", "@role_loadbalancer:", "@role_paas:", "@tier_dns:"):
        assert group in graph, graph
    assert all(f"|--{node}" in graph for node in lab.view.nodes), graph


@pytest.mark.usefixtures("breaks_the_lab")
def test_one_converge_repairs_what_runs(lab: Lab, docker_client: docker.DockerClient) -> None:
    """Every damage at once (each on its own node), then one converge: each repair is reported
    as a change on its node, the contract is green, and the next converge changes nothing."""
    flows = expand(load_contract(ROOT / "contract.yaml"), lab.view)
    done = damages(lab)
    repaired = False
    try:
        for damage in done:
            code, out = run_in(docker_client, lab, damage.node, damage.argv)
            assert code == 0, f"{damage.node}: could not damage ({damage.what}): {out}"
        said: list[str] = []
        repair = configure.converge(lab.stack, lab.state, progress=said.append)
        assert repair.ok, repair.errors
        missed = [f"{d.node}: {d.what}: '{d.repair}' did not report a change"
                  for d in done if f"  {d.node}: {d.repair}: changed" not in said]
        assert missed == [], "\n".join(missed + ["the converge said:", *said])
        results = settle(flows, RECOVER_S, client=docker_client)
        failing = [f"{r.flow.name}: {r.reason}" for r in results if not r.ok]
        assert failing == [], f"not green after the repairing converge: {failing}"
        half = daemons.check(lab.view)
        assert half == [], "daemons still not running their files:\n" + "\n".join(map(str, half))
        repaired = True
        again = configure.converge(lab.stack, lab.state, progress=None)
        assert again.ok, again.errors
        changed = {host: r.changed for host, r in again.hosts.items() if r.changed}
        assert changed == {}, f"the repair is not stable: {changed}; diffs: {again.diffs}"
    finally:
        if not repaired:   # leave the lab to the next suites as green as a converge makes it
            configure.converge(lab.stack, lab.state, progress=None)


def test_bgp_wait_says_what_it_waited_for(lab: Lab, docker_client: docker.DockerClient) -> None:
    """The BGP wait of the frr role, on a session bgpd does not have: a failure in words (what it
    waited for, what it saw), not an error of its own about the shape of bgpd's JSON."""
    script = (ROLES / "frr" / "files" / "bgp_established.py").read_text()
    peer = "198.18.255.254"     # a lab address no bgpd is configured with
    code, out = run_in(docker_client, lab, "border",
                       ["python3", "-c", script, "--wait", "0", "--routes", f"{peer}=nobody"])
    assert code == 1, out
    assert out == (f"waited 0s for the BGP session(s) with {peer} to be Established with a "
                   f"prefix received; last seen: {peer} (nobody): not configured in bgpd"), out
