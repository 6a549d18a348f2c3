"""Stack plans: slots move every prefix so two stacks never collide; names carry the stack."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from edge.infra.addressing import Taken, conflicts, parse_routes
from edge.model.plan import slot_count, stack_plan
from edge.model.topology import TopologyError, load_topology

REFERENCE = Path(__file__).resolve().parents[2] / "topology" / "reference.yaml"


@pytest.fixture(scope="module")
def topology():
    return load_topology(REFERENCE)


def test_slot_zero_keeps_written_addresses(topology) -> None:
    plan = stack_plan(topology, "lab", 0)
    assert str(plan.networks["dmz"].subnet) == "198.18.2.0/24"
    assert plan.networks["dmz"].docker_name == "edge-lab-dmz"
    assert str(plan.nodes["lb1"].addresses["paas"]) == "10.64.0.10"
    assert plan.nodes["client"].routes == ("198.18.1.0/24 via 198.18.0.1",
                                           "198.18.2.0/24 via 198.18.0.1")
    assert plan.nodes["client"].dns == ("198.18.0.53",)
    assert plan.volumes == {"controller-data": "edge-lab-controller-data"}


def test_secondary_border_is_planned_but_carries_no_static_route(topology) -> None:
    plan = stack_plan(topology, "lab", 0)
    border2 = plan.nodes["border2"]
    assert {n: str(a) for n, a in border2.addresses.items()} == {"internet": "198.18.0.2",
                                                                 "transit": "198.18.1.3"}
    assert (border2.link.delay_ms, border2.link.rate_kbit) == (40, 2000)
    assert plan.nodes["border"].link is None
    assert plan.nodes["firewall"].routes == ("198.18.0.0/24 via 198.18.1.1",)


def test_routers_forward_and_others_do_not(topology) -> None:
    plan = stack_plan(topology, "lab", 0)
    assert plan.nodes["border"].sysctls["net.ipv4.ip_forward"] == "1"
    assert plan.nodes["border2"].sysctls["net.ipv4.ip_forward"] == "1"
    assert plan.nodes["lb1"].sysctls["net.ipv4.ip_forward"] == "0"
    assert "SYS_ADMIN" in plan.nodes["firewall"].capabilities
    assert "SYS_ADMIN" not in plan.nodes["client"].capabilities


def test_stacks_at_different_slots_never_overlap(topology) -> None:
    plans = [stack_plan(topology, f"s{slot}", slot) for slot in range(slot_count(topology))]
    subnets = [n.subnet for p in plans for n in p.networks.values()]
    for i, a in enumerate(subnets):
        assert not any(a.overlaps(b) for b in subnets[i + 1:]), a
    for subnet in subnets:
        assert subnet.subnet_of(ipaddress.IPv4Network("198.18.0.0/15")) or (
            subnet.subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
            and not subnet.overlaps(ipaddress.IPv4Network("10.255.0.0/16")))
    staging = stack_plan(topology, "staging", 1)
    assert str(staging.networks["dmz"].subnet) == "198.18.18.0/24"
    assert str(staging.nodes["controller"].addresses["paas"]) == "10.65.0.20"
    assert staging.nodes["client"].routes[0] == "198.18.17.0/24 via 198.18.16.1"


def test_slot_out_of_range_is_refused(topology) -> None:
    with pytest.raises(TopologyError, match="from 0 to 31"):
        stack_plan(topology, "lab", 32)


def test_bad_stack_name_is_refused(topology) -> None:
    with pytest.raises(TopologyError, match="cannot name Docker objects"):
        stack_plan(topology, "Bad_Stack", 2)


def test_overlap_with_host_route_names_both_prefixes(topology) -> None:
    plan = stack_plan(topology, "lab", 0)
    taken = [Taken(ipaddress.IPv4Network("198.18.2.128/25"), "host route 198.18.2.128/25 dev eth1",
                   "eth1"),
             Taken(ipaddress.IPv4Network("172.30.0.0/16"), "Docker network 'other'")]
    found = conflicts(plan, taken)
    assert found == ["network 'dmz' of stack 'lab' (198.18.2.0/24) overlaps host route "
                     "198.18.2.128/25 dev eth1"]


def test_no_overlap_no_conflict(topology) -> None:
    plan = stack_plan(topology, "lab", 0)
    assert conflicts(plan, [Taken(ipaddress.IPv4Network("172.30.0.0/16"), "host route")]) == []


# `ip -j -4 route show table all` as a machine prints it (trimmed): the default route and
# loopback's local routes cover nothing a lab network may not take.
ROUTES_JSON = """[
 {"dst":"default","gateway":"172.31.0.1","dev":"eth0","flags":[]},
 {"dst":"172.31.0.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"172.31.0.5"},
 {"type":"local","dst":"127.0.0.1","table":"local","dev":"lo","scope":"host"},
 {"type":"local","dst":"172.31.0.5","table":"local","dev":"eth0","scope":"host"}
]"""


def test_routes_are_read_from_ips_json_output() -> None:
    taken = parse_routes(ROUTES_JSON, "engine engine2's host")
    assert [(str(t.prefix), t.dev) for t in taken] == [("172.31.0.0/24", "eth0"),
                                                       ("172.31.0.5/32", "eth0")]
    assert taken[0].owner == "engine engine2's host route 172.31.0.0/24 dev eth0"
    assert parse_routes("") == []
