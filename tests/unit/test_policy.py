"""The firewall's loaded ruleset read against the contract's must-block flows (edge/workflow/policy.py).

Each fixture of tests/unit/fixtures/nft/ is what `nft -j list ruleset` printed for a ruleset
loaded into nftables (see the README there): the live lab's firewall as captured, the role's
template rendered with a change's variables, and hand-written shapes the template could grow
(jumps, sets, verdict maps, other tables). The flows are the reference contract's, bound to
the reference lab's addresses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.model.contract import expand, load_contract
from edge.model.lab import Lab
from edge.workflow.policy import Packet, PolicyError, evaluate, opened

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "nft"


def node(role: str, **addresses: str) -> dict:
    """A node as the stack's outputs give it."""
    return {"role": role, "ansible_role": "paas" if role in ("controller", "dea") else role,
            "tier": role, "container": f"edge-lab-{role}", "container_id": f"edge-lab-{role}",
            "addresses": addresses}


LAB = Lab.from_outputs({
    "stack": "lab", "slot": 0, "zone": "paas.test",
    "nodes": {
        "client": node("vantage", internet="198.18.0.10"),
        "inside": node("vantage", paas="10.64.0.100"),
        "resolver": node("resolver", internet="198.18.0.53"),
        "border": node("border", internet="198.18.0.1", transit="198.18.1.1"),
        "border2": node("border", internet="198.18.0.2", transit="198.18.1.3"),
        "firewall": node("firewall", transit="198.18.1.2", dmz="198.18.2.1"),
        "lb1": node("loadbalancer", dmz="198.18.2.10", paas="10.64.0.10"),
        "lb2": node("loadbalancer", dmz="198.18.2.11", paas="10.64.0.11"),
        "ns1": node("dns", dmz="198.18.2.53"),
        "ns2": node("dns", dmz="198.18.2.54"),
        "controller": node("controller", paas="10.64.0.20"),
        "dea1": node("dea", paas="10.64.0.31"),
        "dea2": node("dea", paas="10.64.0.32"),
    },
})
CONTRACT = load_contract(ROOT / "contract.yaml")
FLOWS = expand(CONTRACT, LAB)


def ruleset(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def findings(name: str) -> list[str]:
    return opened(FLOWS, {"firewall": ruleset(name)}, LAB, CONTRACT.inside)


def opened_names(name: str) -> list[str]:
    """The must-block flows a fixture's ruleset accepts, by name."""
    return sorted(next(w for w in f.split() if "@" in w) for f in findings(name))


@pytest.mark.parametrize("name", ["lab_firewall", "shipped"])
def test_the_lab_firewall_and_the_shipped_role_open_no_must_block_flow(name: str) -> None:
    """lab_firewall: `nft -j list ruleset` of the running lab's firewall, counters and all."""
    assert findings(name) == []


@pytest.mark.parametrize("name, opened_flows", [
    ("port_range", ["no-controller-from-outside@controller"]),     # 8000-8100 holds 8080
    ("daddr_only", ["no-controller-from-outside@controller"]),     # daddr 10.64.0.0/24, no `to`
    ("no_to", ["no-lb-stats-from-outside@lb1", "no-lb-stats-from-outside@lb2"]),  # any daddr
    ("templated_port", ["no-controller-from-outside@controller"]),  # "{{ edge_http_port + 8000 }}"
    ("override", ["no-lb-stats-from-outside@lb1", "no-lb-stats-from-outside@lb2",
                  "no-rndc-from-outside@ns1", "no-rndc-from-outside@ns2"]),  # firewall_allow
    ("jump", ["no-rndc-from-outside@ns1", "no-rndc-from-outside@ns2"]),   # in a chain of its own
    ("named_set", ["no-controller-from-outside@controller"]),      # ip daddr @exposed
    ("vmap", ["no-lb-stats-from-outside@lb1", "no-lb-stats-from-outside@lb2"]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_a_rule_that_accepts_a_must_block_flow_is_found(name: str,
                                                         opened_flows: list[str]) -> None:
    assert opened_names(name) == opened_flows


@pytest.mark.parametrize("name", ["policy_accept", "accept_all", "flushed"])
def test_accepting_everything_opens_every_forwarded_must_block_flow(name: str) -> None:
    """policy accept (firewall_forward_policy), a rule with no match at all, and no table at all
    (the firewall after `edge fault flush-firewall`: only Docker's nat table is left)."""
    found = opened_names(name)
    assert {"no-controller-from-outside@controller", "no-app-node-from-outside@dea1",
            "no-lb-stats-from-outside@lb1", "no-rndc-from-outside@ns2",
            "no-bgp-at-border@border"} <= set(found)
    # BGP at the firewall itself goes through its input chain, which still drops it...
    assert ("no-bgp-at-firewall@firewall" in found) == (name == "flushed")   # ...unless gone


def test_the_sentence_names_the_rule_the_packet_and_the_contract() -> None:
    [sentence] = findings("port_range")
    assert sentence == ("firewall (forward hook): rule 'paas-range' of chain inet edge forward "
                        "accepts no-controller-from-outside@controller (198.18.0.10 -> "
                        "10.64.0.20:8080/tcp), which the contract says must stay blocked")
    [policy] = [f for f in findings("policy_accept") if "@controller" in f]
    assert "the policy accept of chain inet edge forward accepts" in policy


@pytest.mark.parametrize("name", ["iifname", "limit"])
def test_an_accept_behind_a_match_the_ruleset_cannot_decide_is_a_possible_opening(
        name: str) -> None:
    """`iifname "eth1"`: which interface the internet comes in on is not in the ruleset;
    `limit rate`: the first packets pass. Both count, said as "may accept"."""
    [sentence] = findings(name)
    assert "no-controller-from-outside@controller" in sentence and " may accept " in sentence
    verdict = evaluate(ruleset(name), Packet("198.18.0.10", "10.64.0.20", "tcp", 8080))
    assert verdict.accepted and not verdict.certain


def test_a_drop_before_the_accept_or_in_a_later_chain_wins() -> None:
    """goto_drop: `tcp dport 8404 goto quarantine` (drops) comes before an accept of 8404;
    second_table_drops: inet edge accepts the controller, a later `ip guard` chain drops it."""
    assert findings("goto_drop") == [] and findings("second_table_drops") == []
    verdict = evaluate(ruleset("goto_drop"), Packet("198.18.0.10", "198.18.2.10", "tcp", 8404))
    assert not verdict.accepted and verdict.by == "rule 'quarantined' of chain inet edge quarantine"
    guarded = evaluate(ruleset("second_table_drops"),
                       Packet("198.18.0.10", "10.64.0.20", "tcp", 8080))
    assert not guarded.accepted and "no-paas-from-here" in guarded.by


def test_allowed_flows_and_the_input_chain_are_judged_packet_by_packet() -> None:
    live = ruleset("lab_firewall")
    web = evaluate(live, Packet("198.18.0.10", "198.18.2.10", "tcp", 80))
    assert web.accepted and web.certain and "web-to-load-balancers" in web.by
    assert evaluate(live, Packet("198.18.0.10", "198.18.2.53", "udp", 53)).accepted
    assert not evaluate(live, Packet("198.18.0.10", "198.18.2.53", "udp", 953)).accepted
    # BGP to the firewall itself: accepted from a border, dropped from the internet.
    assert evaluate(live, Packet("198.18.1.1", "198.18.1.2", "tcp", 179, "input")).accepted
    assert not evaluate(live, Packet("198.18.0.10", "198.18.1.2", "tcp", 179, "input")).accepted


def test_inside_vantage_points_and_must_work_flows_are_not_judged() -> None:
    """The inside view is behind the firewall; must-work flows are the measurement's."""
    judged = opened_names("accept_all")
    assert judged and not any(name.startswith(("inside-", "http-", "dns-")) for name in judged)


def test_a_stopped_firewall_has_no_ruleset_and_opens_nothing() -> None:
    assert opened(FLOWS, {}, LAB, CONTRACT.inside) == []


@pytest.mark.parametrize("doc", [{}, [], {"nftables": "x"}, {"nftables": [{"rule": {}}]}])
def test_what_is_not_nft_json_is_one_clear_error(doc: object) -> None:
    with pytest.raises(PolicyError, match="nft -j list ruleset"):
        evaluate(doc, Packet("198.18.0.10", "10.64.0.20", "tcp", 8080))
