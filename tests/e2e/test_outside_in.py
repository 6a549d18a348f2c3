"""Outside-in: the contract's flows, measured from the client (internet) and inside vantage points.

Every probe runs in a vantage container's own network namespace (never from the host) and asks
DNS questions of named servers only (never Docker's embedded DNS or /etc/hosts).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from edge.lab.probes import Result, run_flows
from edge.model.contract import expand, load_contract
from edge.report.table import results_table
from tests.conftest import ROOT, Lab


@pytest.fixture(scope="module")
def results(lab: Lab) -> list[Result]:
    return run_flows(expand(load_contract(ROOT / "contract.yaml"), lab.view))


def failing(results: list[Result], vantage: str, must: str) -> list[Result]:
    return [r for r in results if r.flow.vantage == vantage and r.flow.must == must and not r.ok]


@pytest.mark.parametrize("vantage,must", [("client", "work"), ("client", "block"),
                                          ("inside", "work")])
def test_contract_holds(results: list[Result], vantage: str, must: str) -> None:
    chosen = [r for r in results if r.flow.vantage == vantage and r.flow.must == must]
    assert chosen, f"the contract has no {must} flows from {vantage}"
    assert not failing(results, vantage, must), "\n" + results_table(chosen)


def test_each_load_balancer_serves_from_the_expected_backends(results: list[Result],
                                                              lab: Lab) -> None:
    http = [r for r in results if r.flow.rule in ("http-api-at-lb", "http-app-at-lb")]
    assert {r.flow.target for r in http} == {"lb1", "lb2"}
    deas = {node.name for node in lab.view.with_role("dea")}
    for r in http:
        assert r.detail.get("lb") == r.flow.target, r      # answered by the LB we asked
        expected = {"controller"} if r.flow.rule == "http-api-at-lb" else deas
        assert r.detail.get("server") in expected, r


def test_both_app_instances_answer_through_the_edge(lab: Lab) -> None:
    """Round robin over both execution nodes: repeated requests reach dea1 and dea2."""
    app_at_lb1 = next(f for f in expand(load_contract(ROOT / "contract.yaml"), lab.view)
                      if f.rule == "http-app-at-lb" and f.target == "lb1")
    flows = [replace(app_at_lb1, name=f"{app_at_lb1.name}#{i}") for i in range(4)]
    servers = {r.detail.get("server") for r in run_flows(flows)}
    assert servers == {"dea1", "dea2"}, servers


def test_dns_answers_are_the_load_balancers(results: list[Result], lab: Lab) -> None:
    lbs = sorted(node.address("dmz") for node in lab.view.with_role("loadbalancer"))
    # The service names' A records (the big TXT answer is counted, not listed: test_big_answers).
    dns = [r for r in results if r.flow.kind == "dns" and r.flow.params.get("type", "A") == "A"]
    assert {r.flow.target for r in dns} == {"resolver", "ns1", "ns2"}
    assert all(r.detail.get("answers") == lbs for r in dns), results_table(dns)
