"""Least privilege on a configured lab: each container has exactly the capabilities its role's
table grants (SYS_ADMIN only where FRR runs), HAProxy's workers, the PaaS programs and the probe
agents run unprivileged, rndc's key is the stack's own and the image carries no apt credentials.

Secrets read here are compared by digest, so a failing assertion never prints one.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import docker
import pytest
import testinfra

from edge.engines import stack
from edge.lab.watch import Watcher
from edge.model.contract import expand, load_contract
from edge.model.scope import role_closure, role_defaults
from edge.model.topology import load_topology
from tests.lab_fixtures import ROOT, Lab

TOPOLOGY = load_topology(ROOT / "topology" / "reference.yaml")
ROLES = ROOT / "roles"
LB = role_defaults(ROLES, "loadbalancer")
PAAS = role_defaults(ROLES, "paas")
DNS = role_defaults(ROLES, "dns")
CAP_SYS_ADMIN = 21           # bit of CAP_SYS_ADMIN in /proc/PID/status capability masks
NOBODY_UID = 65534


def host_of(lab: Lab, node: str):
    return testinfra.get_host(f"docker://{lab.container(node)}")


def digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()[:16]


def nodes_of(*roles: str) -> list[str]:
    return sorted(name for name, node in TOPOLOGY.nodes.items() if node.role in roles)


def uid_of(host, pid: int | str) -> int:
    """The real uid of a process in the container."""
    status = host.check_output(f"cat /proc/{pid}/status")
    return int(re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE).group(1))


def test_only_routers_running_frr_are_granted_sys_admin() -> None:
    """SYS_ADMIN is granted for FRR alone (its zebra and bgpd exit without it): a role that gets
    it must run the frr role."""
    closure = role_closure(ROLES)
    granted = {r.name: r for r in TOPOLOGY.roles.values() if "SYS_ADMIN" in r.capabilities}
    assert granted, "the routers need SYS_ADMIN for FRR"
    for name, role in granted.items():
        assert "frr" in closure[role.ansible_role], f"{name} gets SYS_ADMIN but runs no FRR"
        assert "FRR" in role.capabilities["SYS_ADMIN"], role.capabilities


@pytest.mark.parametrize("node", sorted(TOPOLOGY.nodes))
def test_a_container_has_exactly_its_roles_capabilities(lab: Lab, node: str) -> None:
    role = TOPOLOGY.roles[TOPOLOGY.nodes[node].role]
    info = docker.from_env().api.inspect_container(lab.container(node))["HostConfig"]
    assert sorted(info["CapAdd"] or []) == sorted(role.capabilities), info["CapAdd"]
    assert not info["Privileged"] and not info["Devices"], info
    bounding = int(re.search(r"^CapBnd:\s+([0-9a-f]+)", host_of(lab, node).check_output(
        "cat /proc/1/status"), re.MULTILINE).group(1), 16)
    assert bool(bounding >> CAP_SYS_ADMIN & 1) == ("SYS_ADMIN" in role.capabilities), hex(bounding)


@pytest.mark.parametrize("node", nodes_of("loadbalancer"))
def test_haproxy_workers_run_unprivileged_and_the_admin_socket_is_roots(lab: Lab,
                                                                         node: str) -> None:
    host = host_of(lab, node)
    procs = [line.split() for line in host.check_output(
        "ps -o pid=,ppid=,user= -C haproxy").splitlines()]
    pids = {pid for pid, _, _ in procs}
    masters = [p for p in procs if p[1] not in pids]
    workers = [p for p in procs if p[1] in pids]
    assert len(masters) == 1 and masters[0][2] == "root", procs
    assert workers and all(user == LB["loadbalancer_user"] for _, _, user in workers), procs
    sock = host.file(LB["loadbalancer_admin_socket"])
    assert sock.user == "root" and sock.mode == 0o600
    info = host.check_output(f"echo 'show info' | nc -NU {LB['loadbalancer_admin_socket']}")
    assert "Name: HAProxy" in info


@pytest.mark.parametrize("node", nodes_of("controller", "dea"))
def test_paas_programs_run_as_the_paas_user(lab: Lab, node: str) -> None:
    host = host_of(lab, node)
    paas_uid = int(host.check_output(f"id -u {PAAS['paas_user']}"))
    assert paas_uid != 0
    programs = [line.split()[0] for line in host.check_output(
        "supervisorctl status").splitlines() if line.startswith("paas-")]
    assert programs, "no PaaS program runs"
    for program in programs:
        pid = host.check_output(f"supervisorctl pid {program}")
        assert pid.isdigit() and pid != "0", f"{program}: {pid}"
        assert uid_of(host, pid) == paas_uid, program


def test_the_controllers_storage_is_the_paas_users(lab: Lab) -> None:
    host = host_of(lab, "controller")
    db = PAAS["paas_db"]
    for path in (str(Path(db).parent), db):
        assert host.file(path).user == PAAS["paas_user"], path
    # Written as that user: the controller (as paas) records heartbeats in it all the time.
    check = host.run(f"setpriv --reuid={PAAS['paas_user']} --regid={PAAS['paas_user']} "
                     f"--clear-groups test -w {db}")
    assert check.rc == 0, check.stderr


def test_probe_agents_run_as_nobody(lab: Lab) -> None:
    contract = load_contract(ROOT / "contract.yaml")
    with Watcher(expand(contract, lab.view), contract) as watcher:
        assert watcher.wait_green(15.0), watcher.down()
        pids = watcher.agent_pids()
        assert len(pids) == 2, pids       # one per vantage point
        for pid in pids:                  # the host's view of the exec'd process
            status = Path(f"/proc/{pid}/status").read_text()
            uids = re.search(r"^Uid:\s+(.*)$", status, re.MULTILINE).group(1).split()
            assert set(map(int, uids)) == {NOBODY_UID}, (pid, uids)


def test_rndc_key_is_the_stacks_own(lab: Lab) -> None:
    secrets = stack.outputs(lab.stack, stack.Backend(state=lab.state), secrets=True)["secrets"]
    assert "edge_rndc_secret" in secrets, "the stack's outputs carry no rndc key"
    want = digest(secrets["edge_rndc_secret"])
    key_file = DNS["dns_rndc_key_file"]
    read = f"sed -n 's/.*secret \"\\(.*\\)\".*/\\1/p' {key_file}"
    # A node that runs no named keeps the image's key, if the image has one: the key every stack
    # would share.
    image_key = host_of(lab, nodes_of("loadbalancer")[0]).run(read)
    assert image_key.rc != 0 or digest(image_key.stdout) != want
    for node in nodes_of("dns"):
        host = host_of(lab, node)
        assert digest(host.check_output(read)) == want, f"{node}: not the stack's rndc key"
        key = host.file(key_file)
        assert (key.user, key.group, key.mode) == ("root", DNS["dns_user"], 0o640)
        assert host.run("rndc status").rc == 0, f"{node}: rndc does not work with the key"
        leftovers = host.check_output(f"ls {Path(key_file).parent}")
        assert not re.search(r"rndc\.key\..*~", leftovers), f"{node}: old key copies left"


def test_the_image_carries_no_apt_credentials(lab: Lab) -> None:
    host = host_of(lab, nodes_of("dns")[0])
    assert not host.file("/etc/apt/auth.conf").exists
    assert host.check_output("ls -A /etc/apt/auth.conf.d") == ""
    apt = host.check_output("cat /etc/apt/sources.list /etc/apt/sources.list.d/* "
                            "/etc/apt/apt.conf.d/* 2>/dev/null || true")
    assert not re.search(r"://[^/\s\"']*@", apt), "an apt source or proxy URI carries a password"
