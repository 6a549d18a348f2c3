"""Big answers through the edge (issue 14 §5): a 64 KiB body and a DNS answer above 1232 bytes
arrive whole from the outside vantage point, and the way the answers travel back is read hop by
hop (edge/lab/diagnose.py), which is how a preview locates a flow that stalls on a narrow link.

Every probe runs in the client's container; routes and MTUs are read inside the nodes.
"""

from __future__ import annotations

import pytest

from edge.lab.diagnose import answer_path
from edge.lab.probes import settle
from edge.model.contract import expand, load_contract
from tests.conftest import ROOT, Lab

BIG = ("http-app-64k-at-lb", "dns-large-at-nameserver")


@pytest.fixture(scope="module")
def big(lab: Lab) -> list:
    return [f for f in expand(load_contract(ROOT / "contract.yaml"), lab.view) if f.rule in BIG]


def test_big_answers_arrive_whole_from_outside(big: list) -> None:
    """At every load balancer and name server: the whole body, and a DNS answer that comes back
    truncated over UDP (EDNS buffer 1232) and whole over TCP."""
    results = settle(big, 20.0)
    assert {r.flow.target for r in results} == {"lb1", "lb2", "ns1", "ns2"}
    assert [f"{r.flow.name}: {r.reason}" for r in results if not r.ok] == []
    for r in results:
        if r.flow.kind == "http":
            assert r.detail["body_bytes"] == 65536 and r.detail["status"] == 200, r.detail
        else:
            assert r.detail["truncated"] is True and r.detail["bytes"] > 1232, r.detail
            assert r.detail["records"] >= 2, r.detail


def test_the_answers_way_back_is_read_hop_by_hop(lab: Lab, big: list) -> None:
    """From a load balancer to the client: through the firewall and the border, each hop's way
    out on the network towards the client, every link at the bridges' 1500 bytes."""
    flow = next(f for f in big if f.kind == "http" and f.target == "lb1")
    hops = answer_path(flow, lab.view)
    assert [(h.node, h.network) for h in hops] == [
        ("lb1", "dmz"), ("firewall", "transit"), ("border", "internet")], hops
    assert [h.way.mtu for h in hops] == [1500, 1500, 1500], hops
    assert hops[-1].way.gateway == "" and hops[0].way.gateway == lab.address("firewall", "dmz")
