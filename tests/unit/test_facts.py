"""Facts: each parser on output captured from the reference lab (tests/unit/fixtures/, see its
README for which command on which node), and the exec helper's results and error messages with a
fake SDK container (no engine)."""

from __future__ import annotations

from pathlib import Path

import docker.errors
import pytest

from edge.engines import docker_exec, facts

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(fact: str, case: str) -> str:
    return (FIXTURES / fact / f"{case}.txt").read_text()


# --- FRR ----------------------------------------------------------------------------------------

def test_frr_running_config_of_the_firewall_announces_the_service_prefix() -> None:
    frr = facts.frr_running_config(fixture("frr_running_config", "firewall"))
    assert (frr.asn, frr.router_id, frr.networks) == (65001, "198.18.1.2", ["198.18.2.0/24"])
    assert frr.neighbors == {
        "198.18.1.1": facts.Neighbor("198.18.1.1", 65000, "border"),
        "198.18.1.3": facts.Neighbor("198.18.1.3", 65000, "border")}


def test_frr_running_config_of_the_border_announces_nothing() -> None:
    frr = facts.frr_running_config(fixture("frr_running_config", "border"))
    assert (frr.asn, frr.networks) == (65000, [])
    assert frr.neighbors["198.18.1.2"].remote_as == 65001


def test_frr_running_config_without_bgp_and_networks_of_other_protocols() -> None:
    assert facts.frr_running_config(fixture("frr_running_config", "empty")) == facts.FrrConfig()
    ospf = ("router ospf\n network 10.0.0.0/8 area 0\nexit\n!\n"
            "router bgp 65010\n network 198.18.66.0/24\n")
    frr = facts.frr_running_config(ospf)
    assert (frr.asn, frr.networks) == (65010, ["198.18.66.0/24"])


def test_bgp_summary_keyed_by_address_family() -> None:
    peers = facts.bgp_summary(fixture("bgp_summary", "firewall"))
    assert sorted(peers) == ["198.18.1.1", "198.18.1.3"]
    assert peers["198.18.1.1"] == facts.BgpPeer("Established", 0, 65000)
    assert all(p.established for p in peers.values())


def test_bgp_summary_of_one_family_is_flat() -> None:
    peers = facts.bgp_summary(fixture("bgp_summary", "border_one_family"))
    assert peers == {"198.18.1.2": facts.BgpPeer("Established", 1, 65001)}


def test_bgp_summary_without_peers_has_no_address_family_key() -> None:
    """`{}`: the shape that made the converge fail on `.ipv4Unicast`."""
    assert fixture("bgp_summary", "no_peers").strip() == "{}"
    assert facts.bgp_summary(fixture("bgp_summary", "no_peers")) == {}
    assert facts.bgp_summary("") == {}


def test_bgp_summary_that_is_not_json_names_the_place() -> None:
    with pytest.raises(facts.FactError, match="line 1 column 1: not JSON"):
        facts.bgp_summary("% BGP instance not found")


# --- nftables -----------------------------------------------------------------------------------

def test_nft_ruleset_of_the_firewall() -> None:
    ruleset = facts.nft_ruleset(fixture("nft_ruleset", "firewall"))
    assert list(ruleset.tables) == ["ip nat", "inet edge"]
    edge = ruleset.tables["inet edge"]
    assert {name: (c.hook, c.policy, len(c.rules)) for name, c in edge.items()} == {
        "input": ("input", "drop", 6), "forward": ("forward", "drop", 6)}
    assert [r.comment for r in edge["forward"].rules if r.comment] == [
        "web-to-load-balancers", "dns-udp-to-name-servers", "dns-tcp-to-name-servers",
        "forward-denied"]
    assert ruleset.counter("forward-denied") == 4
    assert ruleset.counter("no-such-rule") is None
    assert ruleset.tables["ip nat"]["DOCKER_OUTPUT"].policy is None     # a regular chain


def test_nft_normalized_ignores_counters_and_handles_but_not_policies() -> None:
    text = fixture("nft_ruleset", "firewall")
    ruleset = facts.nft_ruleset(text)
    recounted = facts.nft_ruleset(
        text.replace('"packets": 4, "bytes": 240', '"packets": 9, "bytes": 999')
            .replace('"handle": 18', '"handle": 40'))
    assert recounted.counter("forward-denied") != ruleset.counter("forward-denied")
    assert recounted.normalized() == ruleset.normalized()
    accepting = facts.nft_ruleset(text.replace('"hook": "forward", "prio": 0, "policy": "drop"',
                                               '"hook": "forward", "prio": 0, "policy": "accept"'))
    assert accepting.normalized() != ruleset.normalized()
    assert (facts.nft_ruleset(fixture("nft_ruleset", "border")).normalized()
            != ruleset.normalized())


def test_nft_ruleset_after_the_edge_table_was_deleted() -> None:
    ruleset = facts.nft_ruleset(fixture("nft_ruleset", "no_edge_table"))
    assert list(ruleset.tables) == ["ip nat"]
    assert ruleset.counter("forward-denied") is None
    assert facts.nft_ruleset("").tables == {}


# --- sockets, addresses, routes -----------------------------------------------------------------

def test_listening_sockets_of_a_load_balancer() -> None:
    sockets = facts.listening_sockets(fixture("listening_sockets", "lb1"))
    assert facts.Socket("tcp", "198.18.2.10", 80) in sockets
    assert facts.listens(sockets, "198.18.2.10", 80)
    assert not facts.listens(sockets, "198.18.2.11", 80)
    assert not facts.listens(sockets, "198.18.2.10", 80, "udp")


def test_listening_sockets_one_per_named_thread_are_one() -> None:
    sockets = facts.listening_sockets(fixture("listening_sockets", "ns1"))
    assert [s for s in sockets if s.address == "198.18.2.53"] == [
        facts.Socket("tcp", "198.18.2.53", 53), facts.Socket("udp", "198.18.2.53", 53)]


def test_listening_sockets_on_wildcards_and_ipv6() -> None:
    sockets = facts.listening_sockets(fixture("listening_sockets", "firewall"))
    assert facts.Socket("tcp", "::", 179) in sockets
    assert facts.listens(sockets, "198.18.1.2", 179)                 # 0.0.0.0:179
    assert facts.listening_sockets(fixture("listening_sockets", "empty")) == []
    assert facts.listening_sockets("udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:*\n") == [
        facts.Socket("udp", "127.0.0.53", 53)]
    with pytest.raises(facts.FactError, match="line 1: 'Netid State"):
        facts.listening_sockets("Netid State Recv-Q Send-Q Local Peer\n")


def test_interface_addresses() -> None:
    found = facts.interface_addresses(fixture("ip_addr", "lb1"))
    assert found == {"lo": ["127.0.0.1/8"], "eth0": ["198.18.2.10/24"], "eth1": ["10.64.0.10/24"]}
    assert facts.interface_with(found, "10.64.0.10") == "eth1"
    assert facts.interface_with(found, "10.64.0.1") is None
    assert facts.interface_addresses(fixture("ip_addr", "lo_only")) == {"lo": ["127.0.0.1/8"]}


def test_routes_of_the_border_and_a_load_balancer() -> None:
    border = facts.routes(fixture("ip_route", "border"))
    assert facts.Route("198.18.2.0/24", "198.18.1.2", "eth1", "bgp") in border
    lb1 = facts.routes(fixture("ip_route", "lb1"))
    assert [(r.dst, r.gateway) for r in lb1 if r.gateway] == [
        ("198.18.0.0/24", "198.18.2.1"), ("198.18.1.0/24", "198.18.2.1")]
    assert facts.routes(fixture("ip_route", "no_routes")) == []
    assert facts.routes('[{"dst":"198.18.66.7","dev":"eth0"}]')[0].dst == "198.18.66.7/32"


# --- zone files ---------------------------------------------------------------------------------

def test_zone_file_of_the_primary() -> None:
    zone = facts.zone_file(fixture("zone_file", "ns1_primary"))
    assert (zone.origin, zone.serial) == ("paas.test.", 1796183226)
    assert ("*.apps.paas.test.", "A", "198.18.2.11") in zone.records
    assert [v for n, t, v in zone.records if t == "NS"] == ["ns1.paas.test.", "ns2.paas.test."]
    assert len(zone.records) == 11


def test_the_secondarys_copy_holds_the_same_records() -> None:
    primary = facts.zone_file(fixture("zone_file", "ns1_primary"))
    secondary = facts.zone_file(fixture("zone_file", "ns2_secondary_compiled"), "paas.test")
    assert secondary.serial == primary.serial
    assert sorted(secondary.records) == sorted(primary.records)


def test_zone_file_with_comments_and_a_multi_line_soa() -> None:
    zone = facts.zone_file(fixture("zone_file", "db_local"), "localhost")
    assert zone.serial == 2
    assert zone.records == [
        ("localhost.", "SOA", "localhost. root.localhost. 2 604800 86400 2419200 604800"),
        ("localhost.", "NS", "localhost."), ("localhost.", "A", "127.0.0.1"),
        ("localhost.", "AAAA", "::1")]


def test_relative_names_and_quoted_semicolons() -> None:
    zone = facts.zone_file('$ORIGIN example.\nwww 60 IN CNAME web\n  IN TXT "a;b" ; note\n')
    assert zone.records == [("www.example.", "CNAME", "web.example."),
                            ("www.example.", "TXT", '"a;b"')]
    assert zone.serial is None


def test_a_zone_file_broken_by_the_fault_is_refused_with_its_line() -> None:
    with pytest.raises(facts.FactError, match=r"line 1: 'this is not a zone file \(edge fault "
                                              r"break-zone\)' has no record type"):
        facts.zone_file(fixture("zone_file", "broken_by_fault"), "paas.test")
    with pytest.raises(facts.FactError, match="line 1: '\\(' is never closed"):
        facts.zone_file("@ IN SOA a. b. ( 1 2 3\n")


# --- supervisord --------------------------------------------------------------------------------

def test_supervisor_status_with_one_shot_programs_exited() -> None:
    programs = facts.supervisor_status(fixture("supervisor_status", "firewall"))
    assert {name: p.state for name, p in programs.items()} == {
        "frr-bgpd": "RUNNING", "frr-config": "EXITED", "frr-zebra": "RUNNING",
        "nftables-load": "EXITED"}
    assert programs["frr-bgpd"].detail == "pid 34, uptime 0:01:07"


def test_supervisor_status_with_a_stopped_program() -> None:
    programs = facts.supervisor_status(fixture("supervisor_status", "stopped"))
    assert programs["frr-bgpd"] == facts.Program("STOPPED", "Dec 02 03:52 AM")
    assert programs["frr-zebra"].state == "RUNNING"


def test_supervisor_status_unknown_program_none_and_no_supervisord() -> None:
    assert facts.supervisor_status(fixture("supervisor_status", "unknown_program")) == {
        "nosuch": facts.Program("ERROR", "no such process")}
    assert facts.supervisor_status(fixture("supervisor_status", "empty")) == {}
    assert facts.supervisor_status(fixture("supervisor_status", "lb1")) == {
        "haproxy": facts.Program("RUNNING", "pid 29, uptime 0:01:03")}
    with pytest.raises(facts.FactError, match="line 1: .*is supervisord running"):
        facts.supervisor_status("unix:///run/supervisor.sock no such file\n")


# --- HAProxy ------------------------------------------------------------------------------------

def test_haproxy_stat_of_a_healthy_load_balancer() -> None:
    stat = facts.haproxy_stat(fixture("haproxy_stat", "lb1"))
    assert stat[("public", "FRONTEND")] == "OPEN"
    assert stat[("app-hello", "dea2")] == stat[("api", "controller")] == "UP"
    assert len(stat) == 7


def test_haproxy_stat_with_a_server_down() -> None:
    stat = facts.haproxy_stat(fixture("haproxy_stat", "server_down"))
    assert (stat[("app-hello", "dea1")], stat[("app-hello", "dea2")]) == ("UP", "DOWN")
    assert facts.haproxy_stat("") == {}
    with pytest.raises(facts.FactError, match="line 1: 'Unknown command"):
        facts.haproxy_stat("Unknown command: 'show stats'\n")


# --- the exec helper, with a fake SDK container -------------------------------------------------

class FakeContainer:
    """What run() uses of docker's Container: name, status, exec_run(demux=True), reload()."""

    def __init__(self, code: int = 0, out: bytes | None = b"", err: bytes | None = None,
                 status: str = "running", refuse: docker.errors.APIError | None = None) -> None:
        self.name, self.status, self.refuse = "edge-lab-fw", status, refuse
        self.reply = (code, (out, err))
        self.ran: list[list[str]] = []
        self.removed = False

    def exec_run(self, cmd: list[str], demux: bool = False, **options: object):
        assert demux, "run() keeps stdout and stderr apart"
        self.ran.append(cmd)
        if self.refuse:
            raise self.refuse
        return self.reply

    def reload(self) -> None:
        if self.removed:
            raise docker.errors.NotFound("No such container: edge-lab-fw")
        self.status = "exited"


class FakeEngine:
    """A Docker client whose engine knows no container."""

    class containers:
        @staticmethod
        def get(name: str) -> None:
            raise docker.errors.NotFound(f"No such container: {name}")


def test_run_returns_both_streams_decoded_and_runs_a_string_in_sh() -> None:
    box = FakeContainer(0, b"ok\n", b"warning\n")
    result = docker_exec.run(box, "nft list ruleset | head")
    assert result == docker_exec.ExecResult(0, "ok\n", "warning\n")
    assert box.ran == [["sh", "-c", "nft list ruleset | head"]]
    docker_exec.run(box, ["ss", "-Htlnu"], timeout=30)
    assert box.ran[-1] == ["timeout", "--kill-after=5", "30", "ss", "-Htlnu"]


def test_a_failed_command_names_container_purpose_command_exit_and_output_tail() -> None:
    box = FakeContainer(1, b"", b"x" * 1000 + b"\nError: No such file or directory\n")
    with pytest.raises(docker_exec.ExecError) as err:
        docker_exec.run(box, ["nft", "-f", "/etc/nftables.conf"], what="reloading the ruleset")
    assert str(err.value).startswith("edge-lab-fw: reloading the ruleset failed: "
                                     "`nft -f /etc/nftables.conf` exited 1: ...")
    assert str(err.value).endswith("Error: No such file or directory")
    assert len(str(err.value)) < 520
    assert err.value.result.exit_code == 1 and err.value.container == "edge-lab-fw"
    assert docker_exec.run(box, ["false"], check=False).exit_code == 1


def test_a_silent_failure_a_timeout_and_a_script_are_said_plainly() -> None:
    silent = r"^edge-lab-fw: `true` exited 2 \(no output\)$"
    with pytest.raises(docker_exec.ExecError, match=silent):
        docker_exec.run(FakeContainer(2, None, None), ["true"])
    with pytest.raises(docker_exec.ExecError, match="`vtysh -c 'show bgp summary json'` timed "
                                                    "out after 30s"):
        docker_exec.run(FakeContainer(124), ["vtysh", "-c", "show bgp summary json"], timeout=30)
    with pytest.raises(docker_exec.ExecError,
                       match=r"`python3 -c <script, 3 lines> /db 3` exited 1: is read-only"):
        docker_exec.python(FakeContainer(1, b"", b"is read-only\n"), "import sys\n\nx = 1",
                           "/db", "3")


def test_a_missing_or_stopped_container_is_unavailable_with_its_state() -> None:
    with pytest.raises(docker_exec.ContainerUnavailable) as gone:
        docker_exec.run("edge-lab-ns9", ["true"], what="reading the zone", engine=FakeEngine())
    assert gone.value.state == "missing"
    assert str(gone.value) == ("edge-lab-ns9: reading the zone: cannot run `true`: the container "
                               "is missing, not running")
    stopped = FakeContainer(refuse=docker.errors.APIError("409 Conflict: is not running"))
    with pytest.raises(docker_exec.ContainerUnavailable,
                       match="edge-lab-fw: cannot run `ss -Htlnu`: the container is exited"):
        docker_exec.run(stopped, ["ss", "-Htlnu"])
    stopped.removed = True                        # removed while the exec was being made
    with pytest.raises(docker_exec.ContainerUnavailable) as gone:
        docker_exec.run(stopped, ["ss", "-Htlnu"])
    assert gone.value.state == "missing"


def test_a_fact_accepts_its_exit_codes_and_names_the_node_when_output_is_unreadable() -> None:
    programs = facts.SUPERVISOR_STATUS.gather(
        FakeContainer(3, fixture("supervisor_status", "firewall").encode()))
    assert programs["frr-config"].state == "EXITED"
    with pytest.raises(facts.FactError, match=r"^edge-lab-fw: the listening sockets "
                                              r"\(`ss -Htlnu`\): line 1:"):
        facts.LISTENING_SOCKETS.gather(FakeContainer(0, b"garbage\n"))
    with pytest.raises(docker_exec.ExecError, match="reading the BGP sessions failed: .* exited 1"):
        facts.BGP_SUMMARY.gather(FakeContainer(1, b"", b"bgpd is not running\n"))
