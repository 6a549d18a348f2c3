"""The staged preview's settle window: derived from the timers the changed roles declare, with
the values the change leaves on each host, capped, and said in words (edge/model/timers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import ROOT
from edge.model import scope
from edge.model.timers import (
    CAP_S,
    Factor,
    Timer,
    TimerError,
    Watched,
    host_values,
    load_timers,
    watched_roles,
    window,
)

HAPROXY = Timer("loadbalancer", "a failing server marked down", (
    Factor("loadbalancer_check_fall", "haproxy fall"),
    Factor("loadbalancer_check_interval_ms", "inter", "ms")))
BGP = Timer("frr", "a silent peer's routes withdrawn", (Factor("frr_hold_s", "BGP hold time",
                                                               "s"),))
DEFAULTS = {"loadbalancer_check_fall": 2, "loadbalancer_check_interval_ms": 1000,
            "frr_hold_s": 9}
NODES = {"lb1": "loadbalancer", "lb2": "loadbalancer", "border": "border", "ns1": "dns"}
RUNS = {"loadbalancer": {"loadbalancer", "common", "link"},
        "border": {"border", "frr", "nftables", "common", "link"},
        "dns": {"dns", "common", "link"}, "link": {"link", "common"}}


def test_the_roles_declare_the_timers_the_issue_names() -> None:
    """HAProxy fall × inter, BGP hold time, a secondary's refresh and retry, the TTL."""
    declared = {(t.role, tuple(f.var for f in t.factors)) for t in load_timers(ROOT / "roles")}
    assert ("loadbalancer", ("loadbalancer_check_fall", "loadbalancer_check_interval_ms")) \
        in declared
    assert {("frr", ("frr_hold_s",)), ("dns", ("dns_ttl",)), ("dns", ("dns_soa_refresh",)),
            ("dns", ("dns_soa_retry",))} <= declared
    defined = {v for role in (ROOT / "roles").iterdir()
               for v in scope.role_defaults(ROOT / "roles", role.name)}
    assert {f.var for t in load_timers(ROOT / "roles") for f in t.factors} <= defined


def test_the_window_is_the_longest_timer_with_the_changes_values_and_says_why() -> None:
    values = host_values([HAPROXY], DEFAULTS, {"lb1": {"inventory_hostname": "lb1"},
                                               "lb2": {"inventory_hostname": "lb2"}},
                         {"loadbalancer_check_fall": 3,
                          "loadbalancer_check_interval_ms":
                              "{{ 2000 if inventory_hostname == 'lb1' else 1000 }}"})
    assert values["lb1"] == {"loadbalancer_check_fall": 3, "loadbalancer_check_interval_ms": 2000}
    found = window([HAPROXY, BGP], [Watched("lb1", frozenset({"loadbalancer"})),
                                    Watched("lb2", frozenset({"loadbalancer"}))], values)
    assert (found.seconds, found.capped) == (6.0, False)
    assert found.words() == "haproxy fall 3 × inter 2 s on lb1"


def test_a_long_timer_is_capped_and_the_report_says_what_was_not_watched() -> None:
    ttl = Timer("dns", "cached answers expire", (Factor("dns_ttl", "DNS TTL", "s"),))
    found = window([ttl], [Watched("ns1", frozenset({"dns"}))], {"ns1": {"dns_ttl": 300}})
    assert (found.seconds, found.longest_s, found.capped) == (CAP_S, 300, True)
    assert found.words().startswith("DNS TTL 300 s on ns1 (capped at ")
    assert "not watched out" in found.words()


DNS = [t for t in load_timers(ROOT / "roles") if t.role == "dns"]
FLUSH = ("resolvers' cached answers expire", "resolver", ("unbound-control", "flush_zone", "."))


def test_a_zone_change_waits_for_no_dns_timer_staging_hastens_them_instead() -> None:
    """The TTL (the resolvers' cache, flushed on staging) and the SOA refresh and retry (the
    primary's NOTIFY) are hastened: a one-host zone change watches no 300 s cap, the report
    says what was done instead, and the flush is the one command to run."""
    values = {"ns1": {"dns_ttl": 300, "dns_soa_refresh": 300, "dns_soa_retry": 60}}
    found = window(DNS, [Watched("ns1", frozenset({"dns", "common"}))], values)
    assert (found.seconds, found.capped, found.why) == (0.0, False, "no timer to wait for")
    assert "DNS TTL 300 s: resolver cache flushed on staging instead of waiting" in found.words()
    assert "SOA refresh 300 s: the primary NOTIFYs its secondaries" in found.words()
    assert found.commands == (FLUSH,)
    # Beside a timer that is waited for, the window is that timer's.
    both = window([*DNS, BGP], [Watched("ns1", frozenset({"dns"})),
                                Watched("border", frozenset({"frr"}))],
                  values | {"border": DEFAULTS})
    assert both.seconds == 9 and both.why == "BGP hold time 9 s on border"


def test_a_hastening_that_failed_is_waited_for() -> None:
    values = {"ns1": {"dns_ttl": 20, "dns_soa_refresh": 300, "dns_soa_retry": 60}}
    found = window(DNS, [Watched("ns1", frozenset({"dns"}))], values,
                   failed={FLUSH[0]: "`unbound-control flush_zone .` on resolver: refused"})
    assert found.seconds == 20 and found.commands == ()
    assert found.why == ("DNS TTL 20 s (not hastened: `unbound-control flush_zone .` on "
                         "resolver: refused) on ns1")


def test_roles_without_timers_give_no_window_and_say_so() -> None:
    found = window([HAPROXY, BGP], [Watched("ns1", frozenset({"link", "common"}))], {})
    assert (found.seconds, found.why) == (0.0, "the roles the change touches (common, link) "
                                               "declare no timer")
    assert window([HAPROXY], [], {}).why == "the change touches no role"


def test_a_timer_that_is_not_a_number_counts_as_the_cap() -> None:
    found = window([BGP], [Watched("border", frozenset({"frr"}))],
                   {"border": {"frr_hold_s": "{{ bad }}"}})
    assert found.seconds == CAP_S
    assert "frr_hold_s is '{{ bad }}', not a number" in found.words()


def test_the_changed_roles_count_with_the_roles_they_configure_on_the_scope() -> None:
    """A border change watches FRR's hold time on the borders; a link change on every host
    watches only link and common; a stopped node takes all its roles."""
    border = watched_roles(NODES, ["border"], {"border"}, RUNS)
    assert border == [Watched("border", frozenset(RUNS["border"]))]
    link = watched_roles(NODES, list(NODES), {"link"}, RUNS)
    assert {w.roles for w in link} == {frozenset({"link", "common"})}
    stopped = watched_roles(NODES, [], set(), RUNS, restarted=["lb2"])
    assert stopped == [Watched("lb2", frozenset(RUNS["loadbalancer"]))]
    anything = watched_roles(NODES, ["ns1"], None, RUNS)
    assert anything == [Watched("ns1", frozenset(RUNS["dns"]))]


@pytest.mark.parametrize("text,said", [
    ("timers: {}\n", "timers: expected a mapping with one key, `timers:`, holding a list"),
    ("timers:\n  - name: x\n    factors: [{var: a, label: A}]\n",
     "exactly one factor must be a duration"),
    ("timers:\n  - name: x\n    factors: [{var: a, label: A, unit: min}]\n",
     "'min' is not a unit"),
    ("timers:\n  - factors: [{var: a, label: A, unit: s}]\n", "timers[0].name: missing"),
    ("timers:\n  - name: x\n    factors: [{var: a, label: A, unit: s}]\n    hastened: yes\n",
     "timers[0].hastened: expected `words:`"),
    ("timers:\n  - name: x\n    factors: [{var: a, label: A, unit: s}]\n"
     "    hastened: {words: flushed, run: [flush]}\n",
     "`run:` is a list of words, given together with the node `role:`"),
])
def test_a_bad_declaration_is_one_clear_message(tmp_path: Path, text: str, said: str) -> None:
    declared = tmp_path / "roles" / "thing" / "meta" / "edge_timers.yml"
    declared.parent.mkdir(parents=True)
    declared.write_text(text)
    with pytest.raises(TimerError) as err:
        load_timers(tmp_path / "roles")
    assert str(err.value).startswith(f"{declared}:") and said in str(err.value)
