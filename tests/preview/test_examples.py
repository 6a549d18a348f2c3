"""Every shipped example change, previewed on a staged copy: the verdict its author expects.

The live stack is the session's configured lab (t-lab); the staged copy is t-staging at slot 24
in the same state folder (tests/preview/conftest.py). A preview must never touch the live stack:
its configuration digest is the same before and after every preview.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.engines import stack
from edge.model.change import load_change
from edge.report.html import preview_html
from edge.report.preview import preview_junit, preview_table
from edge.workflow.staged import SAFE, UNSAFE, Preview, run_preview
from tests.conftest import ROOT, Lab
from tests.lab_fixtures import STAGING, STAGING_SLOT, stack_config
from tests.preview.conftest import live_digests

EXAMPLES = sorted((ROOT / "changes" / "examples").glob("*.yaml"))

# What each example does, measured on the staged copy: the kinds of its flow deltas, whether the
# static policy check flags a firewall rule, and the kinds of what the preview holds besides the
# flows (edge/workflow/invariants.py: redundant sets the roles declare, the name servers'
# agreement). Why each:
#  - border-withdraws-prefix, firewall-policy-drop, lb-wrong-bind: every client flow into the dmz
#    (or to the load balancers) breaks at once; no flow of the same entry keeps working. Both
#    borders lose the prefix they learnt over BGP too.
#  - ns1-stopped: ns2 still answers each DNS entry ns1 no longer does (silent: lost redundancy),
#    and the node is gone with its programs.
#  - open-rndc: the client reaches rndc (must-block) through the new rule; the policy check
#    flags the rule too.
#  - open-controller: no route leads from the internet to the PaaS network, so no measured flow
#    changes; only the policy check sees the rule that would expose the controller.
#  - dns-ns2-own-primary: every name still answers the same at both servers; ns2 names itself
#    primary with a serial of its own, so the name servers disagree.
#  - dns-publishes-only-lb1: the names answer at lb1 only: lost redundancy (not an outage), in
#    the flows and in the zone.
#  - border2-drops-prefix: traffic uses border, so no flow changes; border2's learnt prefix is
#    gone.
#  - lb2-health-check-wrong-path: lb2 answers 503 while lb1 serves: a partial outage; lb2's
#    backend servers are down.
#  - border-mtu-1280-icmp-dropped, firewall-drops-dns-tcp: only big answers break (at every
#    address: an outage): a 64 KiB body stalls behind the border's narrower link when the
#    firewall drops the ICMP that says so (a DNS answer over TCP does not: BIND sends segments
#    of at most 1220 bytes); with TCP/53 filtered, the big answer's fallback to TCP and the
#    small TCP query break. Their look-alikes border-mtu-1400
#    (the same link, the ICMP passes: path MTU discovery) and firewall-drops-icmp-echo (an ICMP
#    drop that no flow needs) change no flow. The look-alike's link is the wider one: a sender
#    keeps a learnt path MTU for 10 minutes, also on staging, and 1400 learnt first does not
#    hide a 1280 link.
#  - border-delays-like-border2: every flow through the primary border still answers, several
#    times slower (the latency rule of edge/workflow/rounds.py): DEGRADED, UNSAFE. The same
#    change with `accept: [degraded]` is SAFE, the slowdown a note. border2-slower-still slows
#    the path no traffic takes: nothing changes.
#  - lb2-slow-checks-wrong-path: as lb2-health-check-wrong-path, but lb2 marks its servers down
#    only after fall 3 × inter 4 s: the settle window (edge/model/timers.py) watches that long,
#    and the flow breaks in the later rounds. lb-checks-tolerate-more-failures slows every
#    check the same way and breaks nothing.
#  - the SAFE ones (their look-alikes included: dns-primary-moves-to-ns2,
#    dns-lists-lbs-in-another-order, border2-accepts-transit-too, lb2-health-checks-slower)
#    change no measured flow (answers included: the probes ask other names) and lose nothing.
EXPECTED: dict[str, tuple[set[str], bool, set[str]]] = {
    "border-delays-like-border2": ({"degraded"}, False, set()),
    "border-delays-like-border2-accepted": ({"degraded"}, False, set()),
    "border2-slower-still": (set(), False, set()),
    "lb-checks-tolerate-more-failures": (set(), False, set()),
    "lb2-slow-checks-wrong-path": ({"partial-outage"}, False, {"redundancy-lost"}),
    "border-withdraws-prefix": ({"outage"}, False, {"redundancy-lost"}),
    "border-mtu-1280-icmp-dropped": ({"outage"}, False, set()),
    "border-mtu-1400": (set(), False, set()),
    "border2-accepts-transit-too": (set(), False, set()),
    "border2-drops-prefix": (set(), False, {"redundancy-lost"}),
    "dns-lists-lbs-in-another-order": (set(), False, set()),
    "dns-ns2-own-primary": (set(), False, {"dns-disagreement"}),
    "dns-primary-moves-to-ns2": (set(), False, set()),
    "dns-publishes-only-lb1": ({"redundancy-lost"}, False, {"redundancy-lost"}),
    "dns-record": (set(), False, set()),
    "dns-ttl": (set(), False, set()),
    "firewall-drops-dns-tcp": ({"outage"}, False, set()),
    "firewall-drops-icmp-echo": (set(), False, set()),
    "firewall-policy-drop": ({"outage"}, False, set()),
    "lb-wrong-bind": ({"outage"}, False, set()),
    "lb2-health-check-wrong-path": ({"partial-outage"}, False, {"redundancy-lost"}),
    "lb2-health-checks-slower": (set(), False, set()),
    "new-app-route": (set(), False, set()),
    "ns1-stopped": ({"redundancy-lost"}, False, {"redundancy-lost"}),
    "open-controller": (set(), True, set()),
    "open-rndc": ({"security-regression"}, True, set()),
}


def test_every_example_has_its_expected_deltas_written_here() -> None:
    assert sorted(EXPECTED) == sorted(p.stem for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_change_gets_the_expected_verdict(lab: Lab, previews: dict[str, Preview],
                                                  path: Path, record_property) -> None:
    result = previews[path.stem]
    # The preview's phases (seconds) and what it watched, in the JUnit report: the examples
    # table of the README is read from there.
    record_property("seconds", json.dumps(result.seconds))
    record_property("watched", result.watched())
    record_property("verdict", result.verdict)
    record_property("reasons", json.dumps(result.reasons + result.notes))
    expected = {"safe": SAFE, "unsafe": UNSAFE}[result.change.expect]
    assert result.verdict == expected, preview_table(result)
    # Digested here right before this preview, and by the preview before and after: the live lab
    # was not touched (other tests change it between previews, through `edge apply`).
    before = live_digests[path.stem]
    assert before and before == result.live_digest == result.live_digest_after, \
        "live was touched"
    assert result.after, "the preview never measured the staged copy after the change"
    kinds, flagged, held = EXPECTED[path.stem]
    assert {d.kind for d in result.deltas} == kinds, preview_table(result)
    assert bool(result.policy) == flagged, result.policy
    assert {f.kind for f in result.invariants} == held, preview_table(result)
    if expected == UNSAFE:
        assert result.reasons and "<failure" in preview_junit(result)
    else:
        assert result.reasons == [] and "<failure" not in preview_junit(result)
    assert result.watched().startswith("watched "), "the report says how long it watched"


def test_kinds_of_breakage_are_told_apart_and_located(previews: dict[str, Preview]) -> None:
    """Lost redundancy, an outage and a security regression each say what they are, and a
    broken flow says where it dies."""
    found = {name: previews[name] for name in ("ns1-stopped", "border-withdraws-prefix",
                                               "lb-wrong-bind", "firewall-policy-drop",
                                               "open-rndc")}
    kinds = {name: {d.kind for d in p.deltas} for name, p in found.items()}
    assert kinds["ns1-stopped"] == {"redundancy-lost"}
    assert kinds["border-withdraws-prefix"] == {"outage"}
    assert kinds["open-rndc"] == {"security-regression"}
    where = {name: {d.where for d in p.deltas if d.kind != "security-regression"}
             for name, p in found.items()}
    for name in ("ns1-stopped", "border-withdraws-prefix", "lb-wrong-bind",
                 "firewall-policy-drop"):
        assert where[name], f"{name}: no broken flow to locate"
    assert where["ns1-stopped"] == {"ns1 is not running (exited)"}
    assert all("border has no route" in w for w in where["border-withdraws-prefix"])
    assert all(w.startswith("nothing listens on") for w in where["lb-wrong-bind"])
    assert all("default deny of firewall" in w for w in where["firewall-policy-drop"])
    page = preview_html(found["border-withdraws-prefix"])
    assert "<svg" in page and "border has no route" in page


def test_what_users_see_is_said_in_words(previews: dict[str, Preview]) -> None:
    """An error at one of two load balancers is a partial outage with its share; a name at fewer
    load balancers, a border that stopped learning the prefix and name servers that no longer
    agree are each named; no reason says "answered -> answered"."""
    partial = previews["lb2-health-check-wrong-path"]
    assert any(r.startswith("PARTIAL OUTAGE: http-api-at-lb@lb2 answers 503 (no healthy "
                            "backend)") and "1 of 2 load balancer addresses" in r
               for r in partial.reasons), partial.reasons
    assert any("lb2: backend servers:" in r for r in partial.reasons), partial.reasons
    published = previews["dns-publishes-only-lb1"]
    assert any(r.startswith("REDUNDANCY LOST: api.paas.test: ") and "(lb2) no longer published"
               in r for r in published.reasons), published.reasons
    assert any("publishes only lb1" in r for r in published.reasons), published.reasons
    border2 = previews["border2-drops-prefix"]
    assert any(r.startswith("REDUNDANCY LOST: border2: prefixes learnt over BGP: ")
               for r in border2.reasons), border2.reasons
    split = previews["dns-ns2-own-primary"]
    assert any(r.startswith("NAME SERVERS DISAGREE: paas.test: the servers name different "
                            "primaries") for r in split.reasons), split.reasons
    for p in (partial, published, border2, split):
        assert not any("answered -> answered" in r for r in p.reasons)


BIG = {"http-app-64k-at-lb", "dns-large-at-nameserver"}


def test_big_answers_break_where_the_path_narrows(previews: dict[str, Preview]) -> None:
    """A narrower link whose ICMP fragmentation-needed is dropped breaks the 64 KiB answer,
    located at the narrow hop and the filter; the big DNS answer passes it, as BIND sends TCP
    segments of at most 1220 bytes (1280 less the IPv6 and TCP headers) for this very reason.
    TCP/53 filtered breaks the fallback to TCP, located at the firewall; the look-alikes keep
    the big flows answering whole."""
    mtu = previews["border-mtu-1280-icmp-dropped"]
    assert {d.rule for d in mtu.deltas} == {"http-app-64k-at-lb"}, preview_table(mtu)
    big_dns = [r for r in mtu.after if r.flow.rule == "dns-large-at-nameserver"]
    assert big_dns and all(r.ok and r.detail.get("truncated") is True for r in big_dns), \
        preview_table(mtu)
    for d in mtu.deltas:
        assert d.where.startswith("border forwards at most 1280-byte packets towards client "
                                  "(MTU of "), d.where
        assert d.where.endswith(": firewall drops the ICMP fragmentation-needed that would "
                                "tell it (path MTU discovery broken)"), d.where
    assert any(r.startswith("OUTAGE: http-app-64k-at-lb@lb1 is silent (timeout) (before: "
                            "answers 200); outside users lose it: 2 of 2 load balancer "
                            "addresses fail: border forwards at most 1280") for r in mtu.reasons)
    dns_tcp = previews["firewall-drops-dns-tcp"]
    assert {d.rule for d in dns_tcp.deltas} == {"dns-large-at-nameserver",
                                                "dns-api-at-nameserver-tcp"}
    assert {d.where for d in dns_tcp.deltas} == {"dropped by the default deny of firewall"}
    for name in ("border-mtu-1400", "firewall-drops-icmp-echo"):
        after = [r for r in previews[name].after if r.flow.rule in BIG]
        assert len(after) == 4 and all(r.ok for r in after), (name, preview_table(previews[name]))
        assert all(r.detail.get("body_bytes") == 65536 or r.detail.get("truncated") is True
                   for r in after), [r.detail for r in after]


def test_a_much_slower_path_is_degraded_unless_the_change_accepts_it(
        previews: dict[str, Preview]) -> None:
    """The primary border made as slow as the secondary: every flow answers, several times
    slower at the median; the same change accepting it is SAFE and says so in a note; slowing
    the path no traffic takes is no finding at all."""
    slow, accepted = previews["border-delays-like-border2"], previews[
        "border-delays-like-border2-accepted"]
    assert slow.reasons and all(r.startswith("DEGRADED: ") for r in slow.reasons), slow.reasons
    assert any(r.startswith("DEGRADED: http-api-at-lb@lb1 answers in ") and "slower at the "
               "median" in r for r in slow.reasons), slow.reasons
    assert accepted.verdict == SAFE and accepted.reasons == []
    assert accepted.notes and all(n.startswith("DEGRADED: ") and n.endswith(
        "(accepted: the change says `accept: [degraded]`)") for n in accepted.notes)
    assert "note: DEGRADED" in preview_table(accepted)
    assert previews["border2-slower-still"].notes == []
    # The rule compares each flow with itself, in the same run: slower after than before.
    for name, figures in slow.latency.items():
        if any(d.flow == name for d in slow.deltas):
            assert figures["p50_after"] >= 3 * figures["p50_before"], (name, figures)


def test_an_effect_that_waits_for_a_timer_is_watched_out(previews: dict[str, Preview]) -> None:
    """lb2 marks its servers down only after fall 3 × inter 4 s: the window says so, lasts at
    least that long, and the partial outage is found in its later rounds."""
    late, benign = previews["lb2-slow-checks-wrong-path"], previews[
        "lb-checks-tolerate-more-failures"]
    assert late.window.why.startswith("haproxy fall 3 × inter 4 s on lb")
    assert late.watched_s >= late.window.seconds == 12
    assert any(r.startswith("PARTIAL OUTAGE: http-api-at-lb@lb2 answers 503 (no healthy "
                            "backend)") for r in late.reasons), late.reasons
    assert "haproxy fall 3 × inter 4 s on lb" in preview_table(late)
    assert benign.window.why.startswith("haproxy fall 3 × inter 2 s on lb")
    assert benign.watched_s >= benign.window.seconds == 6
    # A change whose roles declare no timer is watched for the few rounds the latency rule needs.
    assert previews["border2-slower-still"].window.seconds == 0
    assert "declare no timer" in previews["border2-slower-still"].watched()


def test_the_primary_moving_back_and_forth_keeps_every_name_server_serving(
        lab: Lab, staging: stack.Backend) -> None:
    """Two bugs of the same sequence: the primary moves to ns2, back to ns1, the zone changes and
    comes back, the primary moves to ns2 again and back to ns1 again.
     - Seed 55: ns2 found its zone file of its first time as primary, the same content to the
       byte, and kept that file's serial: below what ns1 had served since, so ns1, now its
       secondary, never transferred the zone again (UNSAFE of a SAFE change). The new primary's
       serial beats every serial served.
     - CI of stop 20: ns1, primary again, found its IXFR journal of its earlier time as primary,
       ending below the new serial; named refused the zone ("journal out of sync with zone"), ns1
       served nothing and every later preview said ERROR. Such a journal goes.
    Each move is previewed, and the last preview's baseline brings ns1 back as primary, so every
    step must be SAFE with the name servers agreeing (roles/dns/tasks/main.yml)."""
    def preview(name: str) -> Preview:
        change = load_change(ROOT / "changes" / "examples" / f"{name}.yaml", set(lab.view.nodes))
        return run_preview(change, lab.stack, STAGING, ROOT / "contract.yaml", staging,
                           stack_config(STAGING_SLOT), progress=lambda _: None)

    for name in ("dns-primary-moves-to-ns2", "dns-ttl", "dns-primary-moves-to-ns2", "dns-ttl"):
        found = preview(name)
        assert found.verdict == SAFE and found.invariants == [], (name, preview_table(found))
