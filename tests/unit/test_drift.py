"""Drift, without a lab: the watcher's digest diffing and `edge drift`'s reading of what runs,
each on text as the nodes print it, and the report people read.

The digests and running-state listings below are shaped as captured from a lab node (`edge watch`'s
DIGEST_SCRIPT and `edge drift`'s RUNNING_SCRIPT output); the comparisons must name the node and
the file, ruleset, route, daemon or container, and say nothing for a node that did not change
(a counter that counted packets, the order of `find`'s output).
"""

from __future__ import annotations

from pathlib import Path

from edge.engines.configure import ConvergeResult, HostResult
from edge.lab.drift_watch import DRIFT, DriftAlarm, NodeDigest, changes, parse_digest
from edge.lab.events import Alarm
from edge.workflow.drift import Drift, DriftReport, file_drifts, running_drifts, sections
from edge.workflow.replay import REVERT, load_catalog

ROOT = Path(__file__).resolve().parents[2]

LB1 = """\
@@ files
1f0e5c0d8f3b0e0c6a8d2c0c2b0b9bd1c1f0e3f5d3d1b1a1c9e8f7a6b5c4d3e2  /etc/haproxy/haproxy.cfg
9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b  /etc/supervisor/conf.d/haproxy.conf
@@ ruleset
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
@@ routes
10.66.0.0/24 dev eth1 proto kernel scope link src 10.66.0.10
198.18.32.0/24 via 198.18.34.1 dev eth0
198.18.33.0/24 via 198.18.34.1 dev eth0
198.18.34.0/24 dev eth0 proto kernel scope link src 198.18.34.10
@@ programs
haproxy RUNNING
"""


def edited(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def test_a_digest_parses_into_files_ruleset_routes_programs() -> None:
    digest = parse_digest(LB1)
    assert digest.files["/etc/haproxy/haproxy.cfg"].startswith("1f0e5c0d")
    assert len(digest.files) == 2
    assert digest.ruleset.startswith("e3b0c442")
    assert "198.18.32.0/24 via 198.18.34.1 dev eth0" in digest.routes
    assert digest.programs == {"haproxy": "RUNNING"}


def test_an_unchanged_node_has_no_drift() -> None:
    # Same content in another order, with trailing blanks: still the same node.
    lines = LB1.splitlines()
    shuffled = "\n".join(lines[:1] + lines[2:3] + lines[1:2] + lines[3:]) + "\n  \n"
    assert changes("lb1", parse_digest(LB1), parse_digest(shuffled)) == []


def test_a_route_installed_again_with_a_new_next_hop_id_is_the_same_route() -> None:
    bgp = "@@ routes\n198.18.34.0/24 nhid 6 via 198.18.33.2 dev eth1 proto bgp metric 20\n"
    assert changes("border", parse_digest(bgp), parse_digest(bgp.replace("nhid 6", "nhid 17"))) \
        == []
    assert changes("border", parse_digest(bgp), parse_digest("@@ routes\n")) == [
        "border: route 198.18.34.0/24 via 198.18.33.2 dev eth1 proto bgp metric 20 removed"]


def test_each_keystroke_is_named_with_its_node() -> None:
    before = parse_digest(LB1)
    after = parse_digest(edited(edited(edited(edited(
        LB1, "1f0e5c0d", "00000000"),
        "e3b0c442", "5d41402a"),
        "198.18.32.0/24 via 198.18.34.1 dev eth0\n", ""),
        "haproxy RUNNING", "haproxy STOPPED"))
    assert changes("lb1", before, after) == [
        "lb1: /etc/haproxy/haproxy.cfg changed",
        "lb1: nft ruleset changed",
        "lb1: route 198.18.32.0/24 via 198.18.34.1 dev eth0 removed",
        "lb1: program haproxy STOPPED (was RUNNING)",
    ]


def test_files_added_and_removed_and_programs_gone() -> None:
    before = parse_digest(LB1)
    after = parse_digest(edited(edited(
        LB1, "  /etc/supervisor/conf.d/haproxy.conf", "  /etc/haproxy/haproxy.cfg.bak"),
        "haproxy RUNNING\n", ""))
    assert changes("lb1", before, after) == [
        "lb1: /etc/supervisor/conf.d/haproxy.conf removed",
        "lb1: /etc/haproxy/haproxy.cfg.bak added",
        "lb1: program haproxy absent (was RUNNING)",
    ]


def test_a_stopped_container_is_one_drift_not_every_file() -> None:
    assert changes("lb1", parse_digest(LB1), NodeDigest(state="exited")) == [
        "lb1: container exited (was running)"]
    assert changes("lb1", NodeDigest(state="exited"), NodeDigest(state="exited")) == []


FIREWALL_RUNNING = """\
@@ want nftables table inet edge
table inet edge {
\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t\tct state established,related accept
\t}
}
@@ live nftables table inet edge
Error: No such file or directory
list table inet edge
           ^^^^
@@ want FRR running configuration
sha256 691a7f06
== bgpd
router bgp 64512
 neighbor 198.18.33.1 remote-as 64500
exit
@@ live FRR running configuration
sha256 691a7f06
== bgpd
router bgp 64512
exit
@@ programs
frr-bgpd                         RUNNING   pid 39, uptime 0:01:17
frr-config                       EXITED    Dec 02 04:48 AM
frr-zebra                        STOPPED   Dec 02 04:58 AM
nftables-load                    EXITED    Dec 02 04:48 AM
@@ routes
198.18.33.0/24 dev eth1 proto kernel scope link src 198.18.33.2
198.18.34.0/24 dev eth0 proto kernel scope link src 198.18.34.1
"""


def test_what_runs_unlike_its_records_is_each_a_drift_with_its_diff() -> None:
    drifts = running_drifts("firewall", FIREWALL_RUNNING, ("198.18.32.0/24 via 198.18.33.1",))
    assert [d.what for d in drifts] == [
        "FRR running configuration", "nftables table inet edge", "program frr-zebra STOPPED",
        "route 198.18.32.0/24 via 198.18.33.1 missing"]
    frr, nft, program, route = drifts
    assert "+ neighbor 198.18.33.1 remote-as 64500" in frr.diff.splitlines()
    assert nft.diff.splitlines()[:2] == ["--- nftables table inet edge (live)",
                                        "+++ nftables table inet edge (revision)"]
    assert "-Error: No such file or directory" in nft.diff.splitlines()
    assert program.diff.splitlines()[-1] == "+frr-zebra RUNNING"
    assert route.diff == "+198.18.32.0/24 via 198.18.33.1"


def test_a_node_as_recorded_has_no_running_drift() -> None:
    text = sections(FIREWALL_RUNNING)
    same = "".join(f"@@ {name}\n{text[name.replace('live', 'want')] if name.startswith('live') else body}\n"
                   for name, body in text.items())
    same = edited(same, "STOPPED   Dec 02 04:58 AM", "RUNNING   pid 40, uptime 0:01:17")
    same += "198.18.32.0/24 via 198.18.33.1 dev eth1\n"
    assert running_drifts("firewall", same, ("198.18.32.0/24 via 198.18.33.1",)) == []


def test_check_mode_diffs_and_diffless_changes_become_drifts() -> None:
    result = ConvergeResult("successful", 1.0, {"lb2": HostResult(ok=9, changed=2)}, diffs={
        "lb2": [{"task": "HAProxy configuration", "before_header": "/etc/haproxy/haproxy.cfg",
                 "after_header": "dynamically generated",
                 "before": "timeout client 5s\n", "after": "timeout client 30s\n"}]})
    said = ["  lb2: HAProxy configuration: changed", "  lb2: Supervisor update: changed"]
    file, task = file_drifts(result, said)
    assert (file.node, file.what) == ("lb2", "file /etc/haproxy/haproxy.cfg")
    assert "-timeout client 5s" in file.diff.splitlines()
    assert "+timeout client 30s" in file.diff.splitlines()
    assert (task.node, task.what, task.diff) == ("lb2", "task would change: Supervisor update", "")


def test_the_report_names_node_and_what_and_shows_the_diff() -> None:
    report = DriftReport("drift", "2da7bdc67dc7f202", [
        Drift("firewall", "nftables table inet edge", "--- a\n+++ b\n-x\n+y"),
        Drift("lb1", "program haproxy STOPPED", "-haproxy STOPPED\n+haproxy RUNNING")],
        seconds=12.3)
    text = report.render()
    assert text.splitlines()[:3] == ["== firewall", "  nftables table inet edge", "    --- a"]
    assert "== lb1" in text and "    +haproxy RUNNING" in text
    assert text.splitlines()[-1] == ("stack 'drift' against revision 2da7bdc67dc7f202: DRIFT on "
                                     "firewall, lb1 (2 differences, 12.3s)")
    assert report.nodes == ["firewall", "lb1"] and report.exit_code == 1


def test_exit_codes_none_infrastructure_error() -> None:
    assert DriftReport("s", "r").exit_code == 0
    assert "no drift" in DriftReport("s", "r").render()
    infra = DriftReport("s", "r", infra=["update node-lb1"])
    assert infra.exit_code == 1 and "  update node-lb1" in infra.render()
    broken = DriftReport("s", "r", [Drift("lb1", "x")], errors=["lb1: cannot read"])
    assert broken.exit_code == 2 and "error: lb1: cannot read" in broken.render()


def test_the_drift_alarm_is_raised_renewed_and_cleared() -> None:
    alarm = DriftAlarm()
    rounds = [[], ["fw: nft ruleset changed"], ["fw: nft ruleset changed"],
              ["fw: nft ruleset changed", "lb1: program haproxy STOPPED (was RUNNING)"], [], []]
    said = [event for found in rounds if (event := alarm.step(found))]
    both = ("fw: nft ruleset changed", "lb1: program haproxy STOPPED (was RUNNING)")
    assert said == [("alarm", Alarm(DRIFT, "drift", ("fw: nft ruleset changed",))),
                    ("alarm", Alarm(DRIFT, "drift", both)),
                    ("clear", Alarm(DRIFT, "drift", both))]
    assert alarm.raised is None


def test_the_by_hand_replay_expects_the_drift_and_reverts() -> None:
    incident = load_catalog(ROOT / "replays.yaml")["cloudfoundry-2011-by-hand"]
    assert incident.drift == ("firewall", "lb1") and incident.restore == REVERT
    assert {s.fault for s in incident.steps} == {"flush-table", "stop-daemon", "delete-route"}
