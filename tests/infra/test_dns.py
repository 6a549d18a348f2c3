"""testinfra checks of the authoritative name servers (BIND: ns1 primary, ns2 secondary).

Every query runs inside a lab container and names its server; the TSIG secret is only ever read
inside the containers (`dig -k KEYFILE`, a shell variable), never printed.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import testinfra

from edge.engines import configure
from tests.conftest import ROOT, Lab

SERVERS = ["ns1", "ns2"]
KEY_FILE = "/etc/bind/edge-xfr.key"
# A shell snippet that puts the secret in $secret without it appearing on any command line.
READ_SECRET = f"secret=$(sed -n 's/.*secret \"\\(.*\\)\".*/\\1/p' {KEY_FILE})"


def host_of(lab: Lab, node: str):
    return testinfra.get_host(f"docker://{lab.container(node)}")


def serials(lab: Lab) -> dict[str, int | str]:
    """Each name server's SOA serial, asked from inside ns2 (both sit on the dmz): a number, or
    what the server said instead (two servers failing the same way must never look equal)."""
    host = host_of(lab, "ns2")
    zone = lab.view.zone
    found: dict[str, int | str] = {}
    for node in SERVERS:
        soa = host.run(f"dig +short +time=2 +tries=1 SOA {zone} @{lab.address(node, 'dmz')}")
        fields = soa.stdout.split()   # mname rname serial refresh retry expire minimum
        answered = soa.rc == 0 and len(fields) == 7 and fields[2].isdigit()
        found[node] = int(fields[2]) if answered else f"no answer (exit {soa.rc}): {soa.stdout}"
    return found


def same_serial(found: dict[str, int | str]) -> int | None:
    """The serial every server answered, when all answered the same positive number."""
    values = set(found.values())
    if len(values) != 1:
        return None
    [serial] = values
    return serial if isinstance(serial, int) and serial > 0 else None


def wait_for_equal_serials(lab: Lab, seconds: float = 10) -> int:
    """The secondary follows the primary within seconds (NOTIFY, then IXFR/AXFR): the serial
    both answer, a positive number."""
    deadline = time.monotonic() + seconds
    while True:
        found = serials(lab)
        serial = same_serial(found)
        if serial is not None:
            return serial
        assert time.monotonic() <= deadline, f"no equal numeric serials within {seconds}s: {found}"
        time.sleep(0.5)


@pytest.mark.parametrize("node", SERVERS)
def test_named_runs_listens_and_config_is_valid(lab: Lab, node: str) -> None:
    host = host_of(lab, node)
    assert "RUNNING" in host.check_output("supervisorctl status named")
    address = lab.address(node, "dmz")
    assert host.socket(f"udp://{address}:53").is_listening
    assert host.socket(f"tcp://{address}:53").is_listening
    check = host.run("named-checkconf /etc/bind/named.conf")
    assert check.rc == 0, check.stdout + check.stderr


@pytest.mark.parametrize("node", SERVERS)
def test_key_file_is_private_and_the_only_place_of_the_secret(lab: Lab, node: str) -> None:
    host = host_of(lab, node)
    key = host.file(KEY_FILE)
    assert (key.user, key.group, key.mode) == ("root", "bind", 0o640)
    # Every file of the container that holds the secret, but the key file (none expected).
    leaks = host.check_output(
        f"{READ_SECRET}; test -n \"$secret\" || echo 'no secret in {KEY_FILE}';"
        " grep -rlF -e \"$secret\" /etc /var/lib/bind /var/cache/bind /var/log /run /root /tmp"
        f" 2>/dev/null | grep -vx {KEY_FILE} || true")
    assert leaks == ""


def test_secret_is_in_no_file_of_the_repository_nor_the_converge_output(lab: Lab) -> None:
    host = host_of(lab, "ns1")
    secret = host.check_output(f"{READ_SECRET}; printf %s \"$secret\"")
    assert len(secret) >= 40   # 32 bytes, base64
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    leaks = [name.decode() for name in listed if name and (ROOT / name.decode()).is_file()
             and secret.encode() in (ROOT / name.decode()).read_bytes()]
    assert leaks == []
    if lab.converge is not None:   # the session's own converge: its diffs and errors
        shown = repr(lab.converge.diffs) + repr(lab.converge.errors)
        assert (secret in shown) is False


def test_secondary_has_the_primarys_serial(lab: Lab) -> None:
    assert wait_for_equal_serials(lab) > 0


def test_serials_are_only_equal_when_both_servers_answer_a_number() -> None:
    """The check itself: servers failing the same way, or answering 0, are not "equal"."""
    assert same_serial({"ns1": 2024010101, "ns2": 2024010101}) == 2024010101
    assert same_serial({"ns1": 2024010101, "ns2": 2024010100}) is None
    failing = "no answer (exit 9): "
    assert same_serial({"ns1": failing, "ns2": failing}) is None
    assert same_serial({"ns1": 0, "ns2": 0}) is None


def test_axfr_without_the_key_is_refused(lab: Lab) -> None:
    host = host_of(lab, "ns2")   # any lab container with dig: the transfer ACL is the key only
    for node in SERVERS:
        out = host.check_output(f"dig +time=2 +tries=1 AXFR {lab.view.zone} "
                                f"@{lab.address(node, 'dmz')}")
        assert "Transfer failed" in out and " IN SOA " not in out, out


def test_axfr_with_the_key_succeeds(lab: Lab) -> None:
    host = host_of(lab, "ns2")
    zone = lab.view.zone
    out = host.check_output(f"dig +time=2 +tries=1 -k {KEY_FILE} AXFR {zone} "
                            f"@{lab.address('ns1', 'dmz')}")
    records = [line.split() for line in out.splitlines() if line and not line.startswith(";")]
    soa = [r for r in records if r[3] == "SOA"]
    assert len(soa) == 2, out   # a transfer starts and ends with the SOA
    lbs = sorted(lab.address(lb, "dmz") for lb in ("lb1", "lb2"))
    for name in (f"api.{zone}.", f"*.apps.{zone}.", f"ns1.{zone}.", f"ns2.{zone}."):
        assert any(r[0] == name for r in records), (name, out)
    assert sorted(r[4] for r in records if r[0] == f"api.{zone}." and r[3] == "A") == lbs


def test_converge_is_idempotent_and_a_change_bumps_the_serial_on_both(
        lab: Lab, breaks_the_lab: None) -> None:
    """Unchanged data keeps the serial (changed=0); a new record raises it and ns2 follows."""
    before = wait_for_equal_serials(lab)
    said: list[str] = []
    again = configure.converge(lab.stack, lab.state, limit="role_dns,role_resolver",
                               progress=said.append)
    assert again.ok, again.errors
    assert {h: r.changed for h, r in again.hosts.items()} == \
        {"ns1": 0, "ns2": 0, "resolver": 0}, ("\n".join(said[-60:]), again.diffs)
    assert serials(lab) == {"ns1": before, "ns2": before}
    names = ["{{ edge_api_name }}", "*.{{ edge_apps_label }}", "probe-serial"]   # one more
    after = before
    try:
        changed = configure.converge(lab.stack, lab.state, limit="role_dns", progress=None,
                                     extra_vars={"dns_service_names": names})
        assert changed.ok, changed.errors
        after = wait_for_equal_serials(lab)
        assert after > before, (before, after)
        out = host_of(lab, "ns2").check_output(
            f"dig +short probe-serial.{lab.view.zone} @{lab.address('ns2', 'dmz')}")
        assert sorted(out.split()) == sorted(lab.address(lb, "dmz") for lb in ("lb1", "lb2"))
    finally:   # put the lab's own zone back (a higher serial again)
        restored = configure.converge(lab.stack, lab.state, limit="role_dns", progress=None)
    assert restored.ok, restored.errors
    assert wait_for_equal_serials(lab) > after
