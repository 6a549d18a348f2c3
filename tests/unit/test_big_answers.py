"""Flows with big answers (issue 14 §5): their contract entries, how they are judged, and how a
broken one is located on the way its answers travel back (path MTU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.engines import facts
from edge.lab.diagnose import Hop, path_mtu_finding
from edge.lab.probes import Result, judge
from edge.model.contract import ContractError, Flow, load_contract
from edge.workflow.staged import said
from tests.unit.test_contract import reference_flows, write

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "way_out"


def big_flows() -> dict[str, Flow]:
    """The reference contract's big-answer flows, one per rule (at lb1, ns1)."""
    flows = reference_flows()
    return {f.rule: f for f in flows
            if f.rule in ("http-app-64k-at-lb", "dns-large-at-nameserver")
            and f.target in ("lb1", "ns1")}


def test_big_flows_are_in_the_contract_and_not_watched() -> None:
    """A bulk transfer every second would load the slow path the watcher judges: the big flows
    are measured by previews and `edge verify`, not by `edge watch`."""
    found = big_flows()
    http, dns = found["http-app-64k-at-lb"], found["dns-large-at-nameserver"]
    assert http.expect["body_bytes"] >= 65536 and http.params["path"].endswith("/65536")
    assert dns.params["transport"] == "fallback" and dns.expect["min_bytes"] > 1232
    assert not http.watched and not dns.watched


def test_judging_a_big_body() -> None:
    http = big_flows()["http-app-64k-at-lb"]
    whole = {"outcome": "answered", "status": 200, "body_bytes": 65536}
    assert judge(http, whole) == (True, "")
    assert judge(http, whole | {"body_bytes": 2896}) == (
        False, "body of 2896 bytes != expected 65536")
    assert judge(http, {"outcome": "timeout"}) == (False, "no HTTP answer (timeout)")


def test_judging_a_truncated_then_tcp_answer() -> None:
    dns = big_flows()["dns-large-at-nameserver"]
    good = {"outcome": "answered", "rcode": "NOERROR", "truncated": True, "bytes": 3452,
            "records": 16}
    assert judge(dns, good) == (True, "")
    assert judge(dns, good | {"truncated": False}) == (
        False, "the UDP answer was not truncated: the flow no longer tests the fallback to TCP")
    assert judge(dns, good | {"bytes": 600}) == (
        False, "the answer is 600 bytes, expected at least 1233")
    assert judge(dns, {"outcome": "timeout", "truncated": True}) == (False, "no answer (timeout)")


@pytest.mark.parametrize("entry,words", [
    ("    dns: {server: {role: a, network: b}, name: x}\n    expect: {body_bytes: 10}\n",
     "flows[0].expect.body_bytes: a dns flow has no body_bytes. Only http flows expect it"),
    ("    http: {to: {role: a, network: b}}\n    expect: {body_bytes: -1}\n",
     "flows[0].expect.body_bytes: '-1' is not a number of bytes"),
    ("    dns: {server: {role: a, network: b}, name: x}\n    expect: {truncated: true}\n",
     "only a DNS flow with `transport: fallback`"),
    ("    watch: sometimes\n    http: {to: {role: a, network: b}}\n",
     "flows[0].watch: expected true or false"),
])
def test_bad_big_flow_gives_one_clear_error(tmp_path: Path, entry: str, words: str) -> None:
    path = write(tmp_path, f"flows:\n  - name: x\n    from: client\n    must: work\n{entry}")
    with pytest.raises(ContractError) as err:
        load_contract(path)
    assert str(err.value).startswith(f"{path}:") and words in str(err.value), str(err.value)


def test_way_out_of_a_load_balancer_and_of_the_border() -> None:
    """Captured on the lab: lb1 towards the client (via the firewall), before and after it
    learnt a smaller path MTU; the border, whose internet interface was set to 1280."""
    lb1 = facts.way_out((FIXTURES / "lb1.txt").read_text())
    assert (lb1.gateway, lb1.mtu, lb1.learnt_mtu) == ("198.18.2.1", 1500, None)
    learnt = facts.way_out((FIXTURES / "lb1_learnt.txt").read_text())
    assert (learnt.gateway, learnt.mtu, learnt.learnt_mtu) == ("198.18.2.1", 1500, 1280)
    border = facts.way_out((FIXTURES / "border_1280.txt").read_text())
    assert (border.gateway, border.mtu) == ("", 1280)
    with pytest.raises(facts.FactError, match="expected 2 JSON lines"):
        facts.way_out("[]")
    with pytest.raises(ValueError):
        facts.way_out_to("198.18.0.10; reboot")


def hop(name: str, network: str, mtu: int, gateway: str = "x", learnt: int | None = None) -> Hop:
    return Hop(name, network, facts.WayOut("eth0", gateway, mtu, learnt))


def test_where_big_answers_die() -> None:
    """A narrower hop than the sender's packets is where a silent flow dies, unless the sender
    learnt the narrower MTU; the filter that dropped the ICMP is named when it counted it."""
    http = big_flows()["http-app-64k-at-lb"]
    path = [hop("lb1", "dmz", 1500), hop("firewall", "transit", 1500),
            hop("border", "internet", 1280, gateway="")]
    assert path_mtu_finding(http, path, ["firewall"]) == (
        "border forwards at most 1280-byte packets towards client (MTU of eth0 on internet), "
        "lb1 sends 1500: firewall drops the ICMP fragmentation-needed that would tell it "
        "(path MTU discovery broken)")
    assert path_mtu_finding(http, path, []).endswith(
        "no ICMP fragmentation-needed reaches lb1 (path MTU discovery broken)")
    learnt = [hop("lb1", "dmz", 1500, learnt=1280), *path[1:]]
    assert path_mtu_finding(http, learnt, []) == ""
    assert path_mtu_finding(http, [hop("lb1", "dmz", 1500), hop("border", "internet", 1500)],
                            ["firewall"]) == ""
    assert path_mtu_finding(http, path[:1], []) == ""



def test_a_big_dns_answer_is_said_by_its_size_not_as_no_address() -> None:
    """The fallback flow counts its records rather than listing them: a reason says so."""
    dns = big_flows()["dns-large-at-nameserver"]
    raw = {"rcode": "NOERROR", "truncated": True, "bytes": 3462, "records": 16}
    assert said(Result(dns, "answered", raw, 5.0, True, "")) == (
        "answers 16 records in 3462 bytes over TCP after a truncated UDP answer")
