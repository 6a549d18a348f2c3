"""What a preview holds besides the contract's flows (edge/workflow/invariants.py), and how it
classes broken flows by what users see (edge/workflow/staged.py): pure, on output captured from a
reference lab at slot 3 (tests/unit/fixtures/invariants/): the zone script run in ns2 (the
transfer's TSIG MAC blanked), lb2's `show stat` and `supervisorctl status`, border2's BGP summary
and routes, the resolver's unbound.conf. A "broken" reading is the captured one edited the way
the change would leave it, so each finding is checked against text the real tools print.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.lab.probes import Result
from edge.model.contract import Flow
from edge.model.lab import Lab, Network, Node
from edge.report.preview import preview_table
from edge.workflow import invariants
from edge.workflow.invariants import (
    DISAGREE,
    REDUNDANCY_LOST,
    InvariantError,
    NodeView,
    View,
    ZoneView,
)
from edge.workflow.staged import UNSAFE, Preview, compare, judge

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "invariants"
ZONE = (FIXTURES / "zone_agree.txt").read_text()
SERIAL = "1796187265"
LB2 = "198.18.50.11"


def declared() -> invariants.Declared:
    return invariants.load_declared(ROOT / "roles")


def lab() -> Lab:
    """The slot-3 lab's nodes that the fixtures name (addresses as captured)."""
    nodes = {"lb1": ("loadbalancer", {"dmz": "198.18.50.10", "paas": "10.67.0.10"}),
             "lb2": ("loadbalancer", {"dmz": LB2, "paas": "10.67.0.11"}),
             "ns1": ("dns", {"dmz": "198.18.50.53"}), "ns2": ("dns", {"dmz": "198.18.50.54"}),
             "border2": ("border", {"transit": "198.18.49.3"}),
             "resolver": ("resolver", {"internet": "198.18.48.53"}),
             "client": ("vantage", {"internet": "198.18.48.10"})}
    return Lab("catch", 3, "paas.test", {"dmz": Network("dmz", "edge-catch-dmz", "198.18.50.0/24")},
               {name: Node(name, role, role, role, f"edge-catch-{name}", name, addresses)
                for name, (role, addresses) in nodes.items()})


def zone(text: str = ZONE) -> ZoneView:
    return invariants.parse_zone_output(text, "paas.test")


def section(text: str, server: str) -> tuple[str, str, str]:
    """The zone output split around one server's sections, to edit what that server said."""
    start = text.index(f"=== {server} soa")
    following = text.find("=== ", text.index(f"=== {server} axfr") + 4)
    end = len(text) if following < 0 else following
    return text[:start], text[start:end], text[end:]


def edited(server: str, old: str, new: str, text: str = ZONE) -> str:
    head, mine, tail = section(text, server)
    assert old in mine
    return head + mine.replace(old, new) + tail


# --- declarations --------------------------------------------------------------------------------

def test_the_roles_declare_their_redundant_sets_and_the_zone_as_data() -> None:
    found = declared()
    sets = {(s.role, s.name, s.reader) for s in found.sets}
    assert {("loadbalancer", "backend servers", "haproxy_stat"),
            ("frr", "BGP sessions", "bgp_summary"),
            ("frr", "prefixes learnt over BGP", "routes"),
            ("resolver", "upstream name servers", "unbound_stubs"),
            ("common", "supervised programs", "supervisor_status")} <= sets
    assert [(z.role, z.network) for z in found.zones] == [("dns", "dmz")]
    # A border runs frr through its meta dependencies, and common through every role.
    assert {"border", "frr", "common"} <= found.roles_of("border")
    assert "frr" not in found.roles_of("loadbalancer")


@pytest.mark.parametrize("body,words", [
    ("sets:\n  - {name: x, fact: nope, member: '{a}'}\n",
     "sets[0].fact: 'nope' is not a reader. Use one of: bgp_summary"),
    ("sets:\n  - {name: x, fact: routes, member: '{nope}'}\n",
     "sets[0].member: '{nope}' does not name a member from the record's fields"),
    ("sets:\n  - {name: x, fact: routes, member: '{dst}', up: {nope: bgp}}\n",
     "sets[0].up.nope: the reader has no field 'nope'. Use one of: dst, gateway"),
    ("sets:\n  - {name: x, fact: routes, member: '{dst}', colour: red}\n",
     "sets[0].colour: unknown key"),
    ("zone: {network: dmz}\n", "zone: expected `network:` and `key_file:`"),
    ("sets:\n  - {name: x, fact: routes, member: '{dst}'}\n  - {name: x, fact: routes, "
     "member: '{dst}'}\nsets: []\n", "duplicate key 'sets'"),
])
def test_a_bad_declaration_is_one_error_naming_file_line_and_field(tmp_path: Path, body: str,
                                                                    words: str) -> None:
    path = tmp_path / "roles" / "edge" / "meta" / "edge_redundancy.yml"
    path.parent.mkdir(parents=True)
    path.write_text(body)
    with pytest.raises(InvariantError) as err:
        invariants.load_declared(tmp_path / "roles")
    assert str(err.value).startswith(f"{path}:") and words in str(err.value), str(err.value)


# --- redundant sets ------------------------------------------------------------------------------

def node_view(name: str, outputs: dict[str, str]) -> NodeView:
    """What `node_script` would print for these readers' outputs (exit 0 each), parsed."""
    wanted = [s for s in declared().sets if s.reader in outputs]
    text = "".join(f"=== {reader}\n{out}\n=== exit 0\n" for reader, out in outputs.items())
    return invariants.parse_node_output(text, wanted)


STAT = (FIXTURES / "lb2_stat.csv").read_text()
ROUTES = (FIXTURES / "border2_routes.json").read_text()
BGP = (FIXTURES / "border2_bgp.json").read_text()
PROGRAMS = (FIXTURES / "lb2_supervisor.txt").read_text()


def test_members_of_each_set_from_captured_output() -> None:
    lb2 = node_view("lb2", {"haproxy_stat": STAT, "supervisor_status": PROGRAMS})
    assert lb2.sets == {"backend servers": {"api/controller": True, "app-hello/dea1": True,
                                            "app-hello/dea2": True},
                        "supervised programs": {"haproxy": True}}
    border2 = node_view("border2", {"bgp_summary": BGP, "routes": ROUTES})
    assert border2.sets == {"BGP sessions": {"198.18.49.2": True},
                            "prefixes learnt over BGP": {"198.18.50.0/24": True}}
    stubs = invariants.unbound_stubs((FIXTURES / "unbound.conf").read_text())
    assert stubs == [("paas.test.", "198.18.50.53"), ("paas.test.", "198.18.50.54")]


def test_one_script_per_node_and_a_failed_command_is_unread_not_empty() -> None:
    script = invariants.node_script(["supervisor_status", "haproxy_stat"])
    assert script.startswith("echo '=== supervisor_status'; supervisorctl status; ")
    assert "nc -NU /run/haproxy/admin.sock" in script
    wanted = [s for s in declared().sets if s.reader == "haproxy_stat"]
    view = invariants.parse_node_output(
        "=== haproxy_stat\nnc: unix connect failed: No such file or directory\n=== exit 1\n",
        wanted)
    assert view.sets == {} and "exited 1: nc: unix connect failed" in view.unread["backend servers"]


def test_a_backend_server_down_behind_one_load_balancer_is_redundancy_lost() -> None:
    before = View({"lb2": node_view("lb2", {"haproxy_stat": STAT})})
    down = "\n".join(line.replace(",UP,", ",DOWN,") if line.startswith("app-hello,dea2,")
                     else line for line in STAT.splitlines())   # dea2's row, status DOWN
    after = View({"lb2": node_view("lb2", {"haproxy_stat": down})})
    [found] = invariants.set_findings(declared(), before, after)
    assert (found.kind, found.node) == (REDUNDANCY_LOST, "lb2")
    assert found.reason == "REDUNDANCY LOST: lb2: backend servers: app-hello/dea2 is down"


def test_a_border_that_stops_learning_the_prefix_is_redundancy_lost() -> None:
    before = View({"border2": node_view("border2", {"bgp_summary": BGP, "routes": ROUTES})})
    routes = json.dumps([r for r in json.loads(ROUTES) if r.get("protocol") != "bgp"])
    bgp = BGP.replace('"pfxRcd":1', '"pfxRcd":0')
    after = View({"border2": node_view("border2", {"bgp_summary": bgp, "routes": routes})})
    [found] = invariants.set_findings(declared(), before, after)
    assert found.message == "border2: prefixes learnt over BGP: 198.18.50.0/24 is gone"
    # The same reading again, or a prefix more: nothing lost.
    assert invariants.set_findings(declared(), before, before) == []


def test_a_node_that_stopped_is_one_finding_and_an_unreadable_set_names_what_was_up() -> None:
    before = View({"border2": node_view("border2", {"bgp_summary": BGP, "routes": ROUTES})})
    [gone] = invariants.set_findings(declared(), before, View({"border2": NodeView(gone="exited")}))
    assert gone.message == ("border2 is not running (exited): gone with it: 1 BGP sessions, "
                            "1 prefixes learnt over BGP")
    unread = View({"border2": NodeView({"prefixes learnt over BGP": {"198.18.50.0/24": True}},
                                       {"BGP sessions": "vtysh exited 1"})})
    [lost] = invariants.set_findings(declared(), before, unread)
    assert lost.message == ("border2: BGP sessions can no longer be read (vtysh exited 1); were "
                            "up: 198.18.49.2")


# --- zone agreement ------------------------------------------------------------------------------

def test_the_captured_zone_agrees_and_the_transfer_signature_is_not_data() -> None:
    view = zone()
    assert view.serials == {"ns1": int(SERIAL), "ns2": int(SERIAL)}
    assert view.primaries == {"ns1": "ns1.paas.test.", "ns2": "ns1.paas.test."}
    assert view.records["ns1"] == view.records["ns2"]
    assert ("api.paas.test.", "A", LB2) in view.records["ns1"]
    assert not any(rtype in ("TSIG", "SOA") for _, rtype, _ in view.records["ns1"])
    assert invariants.agreement(view) == []
    assert invariants.zone_findings(view, view, {}) == []


def test_a_server_that_names_itself_primary_stops_agreeing() -> None:
    """dns-ns2-own-primary: ns2 renders a zone of its own, with its own serial."""
    split = edited("ns2", f"ns1.paas.test. hostmaster.paas.test. {SERIAL}",
                   "ns2.paas.test. hostmaster.paas.test. 1796190000")
    found = invariants.zone_findings(zone(), zone(split), {})
    assert {f.kind for f in found} == {DISAGREE}
    messages = [f.message for f in found]
    assert messages[0] == ("paas.test: the servers name different primaries (ns1 names "
                           "ns1.paas.test, ns2 names ns2.paas.test): a zone change on one never "
                           "reaches the other")
    assert "ns2 serves serial 1796190000 of paas.test, ns1 serves 1796187265" in messages


def test_a_serial_that_goes_backwards_is_a_secondary_that_never_transfers() -> None:
    backwards = edited("ns1", f"hostmaster.paas.test. {SERIAL}", "hostmaster.paas.test. 1")
    [found] = invariants.zone_findings(zone(), zone(backwards), {})
    assert found.reason == ("NAME SERVERS DISAGREE: ns2 will never transfer paas.test: serial 1 "
                            f"< {SERIAL}")
    # Every server went back together: the serial itself still went backwards.
    both = edited("ns2", f"hostmaster.paas.test. {SERIAL}", "hostmaster.paas.test. 1", backwards)
    [found] = invariants.zone_findings(zone(), zone(both), {})
    assert found.message.startswith(f"the serial of paas.test went backwards: 1 < {SERIAL}")


def test_a_zone_change_that_does_not_reach_the_secondary() -> None:
    newer = edited("ns1", f"hostmaster.paas.test. {SERIAL}", "hostmaster.paas.test. 1796190000")
    [found] = invariants.zone_findings(zone(), zone(newer), {})
    assert found.message == ("the zone change did not reach ns2: it serves serial 1796187265, "
                             "the primary ns1 serves 1796190000")


def test_same_serial_different_records_is_a_server_that_never_loaded_the_change() -> None:
    head, ns2, tail = section(ZONE, "ns2")
    differs = head + ns2.replace(f"api.paas.test.\t\t300\tIN\tA\t{LB2}\n", "") + tail
    [found] = invariants.agreement(zone(differs))
    assert found.message == (f"ns2 and ns1 serve the same serial {SERIAL} with different "
                             "records for api.paas.test: one of them never loaded the change")


def test_a_name_published_at_fewer_load_balancers_is_redundancy_lost() -> None:
    """dns-publishes-only-lb1, on both servers, with the serial the primary bumped."""
    only_lb1 = ZONE.replace(f"\tA\t{LB2}\n", "\tA\t198.18.50.99\n").replace(
        f"hostmaster.paas.test. {SERIAL}", "hostmaster.paas.test. 1796190000")
    only_lb1 = "\n".join(line for line in only_lb1.splitlines() if "198.18.50.99" not in line)
    found = invariants.zone_findings(zone(), zone(only_lb1), {LB2: "lb2"})
    assert [f.reason for f in found] == [
        f"REDUNDANCY LOST: *.apps.paas.test: {LB2} (lb2) no longer published",
        f"REDUNDANCY LOST: api.paas.test: {LB2} (lb2) no longer published"]


def test_the_benign_look_alikes_find_nothing() -> None:
    """dns-lists-lbs-in-another-order and dns-primary-moves-to-ns2: the zone changes, every
    server follows, every name keeps its addresses."""
    bumped = ZONE.replace(f"hostmaster.paas.test. {SERIAL}", "hostmaster.paas.test. 1796190000")
    assert invariants.zone_findings(zone(), zone(bumped), {LB2: "lb2"}) == []
    moved = bumped.replace("SOA\tns1.paas.test.", "SOA\tns2.paas.test.")
    assert invariants.zone_findings(zone(), zone(moved), {LB2: "lb2"}) == []


def test_a_silent_server_is_told_apart_from_one_that_disagrees() -> None:
    timed_out = (";; communications error to 198.18.50.54#53: timed out\n"
                 ";; no servers could be reached\n")
    head, _, tail = section(ZONE, "ns2")
    silent = head + f"=== ns2 soa\n{timed_out}=== ns2 axfr\n{timed_out}" + tail
    view = zone(silent)
    assert view.serials == {"ns1": int(SERIAL), "ns2": None} and view.records["ns2"] == frozenset()
    [found] = invariants.agreement(view)
    assert found.message == f"ns2 serves no SOA for paas.test while ns1 serves serial {SERIAL}"


def test_serial_arithmetic_wraps_as_rfc_1982_says() -> None:
    assert invariants.serial_less(1, int(SERIAL))
    assert not invariants.serial_less(int(SERIAL), 1)
    assert invariants.serial_less(2 ** 32 - 10, 5)      # wrapped around: 5 is newer
    assert not invariants.serial_less(7, 7)


def test_a_zone_check_reads_with_the_key_inside_the_container() -> None:
    script = invariants.zone_script("paas.test", {"ns1": "198.18.50.53"}, "/etc/bind/edge-xfr.key")
    assert "-k /etc/bind/edge-xfr.key AXFR paas.test" in script and "secret" not in script


# --- flows classed by what users see -------------------------------------------------------------

def http(target: str, ok: bool, outcome: str = "answered", status: int | None = 200,
         server: str | None = "controller") -> Result:
    flow = Flow(f"http-api-at-lb@{target}", "http-api-at-lb", "client", "c", "http", "work",
                {"address": lab().nodes[target].addresses["dmz"]}, {"status": 200}, target)
    detail = {"status": status, "server": server} if outcome == "answered" else {}
    return Result(flow, outcome, detail, 1.0, ok, "" if ok else "broken")


def dns(target: str, answers: list[str], ok: bool) -> Result:
    flow = Flow(f"dns-api-at-nameserver@{target}", "dns-api-at-nameserver", "client", "c", "dns",
                "work", {"name": "api.paas.test"}, {}, target)
    return Result(flow, "answered", {"rcode": "NOERROR", "answers": answers}, 1.0, ok,
                  "" if ok else "answers differ")


GREEN = [http("lb1", True), http("lb2", True)]


def test_an_error_at_one_of_two_load_balancers_is_a_partial_outage_in_words() -> None:
    after = [http("lb1", True), http("lb2", False, status=503, server=None)]
    [delta] = compare(GREEN, after, lab())
    assert (delta.kind, delta.was, delta.now, delta.share) == (
        "partial-outage", "answers 200", "answers 503 (no healthy backend)",
        "1 of 2 load balancer addresses")
    verdict, [reason] = judge([delta], [])
    assert verdict == UNSAFE and reason == (
        "PARTIAL OUTAGE: http-api-at-lb@lb2 answers 503 (no healthy backend) (before: answers "
        "200); users sent to 1 of 2 load balancer addresses get errors (clients do not retry "
        "another address)")
    refused = compare(GREEN, [http("lb1", True), http("lb2", False, "refused")], lab())
    assert [(d.kind, d.now) for d in refused] == [("partial-outage", "refuses connections")]


def test_only_a_silent_node_while_others_serve_is_lost_redundancy() -> None:
    for outcome, words in (("timeout", "is silent (timeout)"), ("unreachable", "has no route")):
        [delta] = compare(GREEN, [http("lb1", True), http("lb2", False, outcome)], lab())
        assert (delta.kind, delta.now) == ("redundancy-lost", words)
    both = compare(GREEN, [http("lb1", False, "refused"), http("lb2", False, "refused")], lab())
    assert {d.kind for d in both} == {"outage"}
    assert both[0].describe() == ("http-api-at-lb@lb1 refuses connections (before: answers 200); "
                                  "outside users lose it: 2 of 2 load balancer addresses fail")


def test_a_name_published_at_fewer_addresses_is_lost_redundancy_not_an_outage() -> None:
    both = ["198.18.50.10", LB2]
    before = [dns("ns1", both, True), dns("ns2", both, True)]
    after = [dns("ns1", ["198.18.50.10"], False), dns("ns2", ["198.18.50.10"], False)]
    deltas = compare(before, after, lab())
    assert {(d.kind, d.was, d.now, d.share) for d in deltas} == {
        ("redundancy-lost", "answers lb1, lb2", "publishes only lb1",
         "1 of 2 load balancer addresses")}
    assert deltas[0].describe() == (
        "dns-api-at-nameserver@ns1 publishes only lb1 (before: answers lb1, lb2); api.paas.test: "
        f"{LB2} (lb2) no longer published")


def test_the_table_says_what_changed_in_words_never_answered_to_answered() -> None:
    from edge.model.change import Change
    after = [http("lb1", True), http("lb2", False, status=503, server=None)]
    found = Preview(Change(Path("c.yaml"), "lb2 checks a wrong path", {"dns_ttl": 1}), "lab",
                    "staging", UNSAFE, baseline=GREEN, after=after,
                    deltas=compare(GREEN, after, lab()), topology=lab(),
                    invariants=[invariants.Finding(REDUNDANCY_LOST, "lb2", "backend servers",
                                                   "lb2: backend servers: api/controller is "
                                                   "down")])
    table = preview_table(found)
    assert "answered -> answered" not in table and "answered 503" not in table
    assert "answers 200  answers 503 (no healthy backend)  1 of 2 load balancer addresses" in table
    assert "besides the flows" not in table    # a finding was made: it is in the reasons
