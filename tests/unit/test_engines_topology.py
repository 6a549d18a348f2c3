"""Engines and placement in the topology: no section means today's lab; every mistake is one
TopologyError naming file, line, field and fix."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from edge.engines.images import image_ref
from edge.engines.swarm import SwarmError, missing_capabilities, swarm_plan
from edge.infra.docker_provider import NetworkProvider
from edge.infra.lab import dynamic_range
from edge.model.plan import OVERLAY_MTU, stack_plan
from edge.model.topology import LOCAL_ENGINE, TopologyError, load_topology

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "topology" / "reference.yaml"
SPLIT = """
engines:
  second: {endpoint: "unix:///run/edge-engine/docker.sock"}
placement:
  tiers: {load balancing: second, paas: second}
  nodes: {inside: local}
"""


def with_text(tmp_path: Path, extra: str, old: str = "", new: str = "") -> Path:
    """The reference topology with `extra` appended (and one textual edit), as a new file."""
    text = REFERENCE.read_text()
    assert old in text
    path = tmp_path / "topology.yaml"
    path.write_text(text.replace(old, new, 1) + extra)
    return path


def test_no_placement_is_every_node_on_the_local_engine() -> None:
    topo = load_topology(REFERENCE)
    assert topo.engines == {} and topo.placement == {} and topo.stack_engines == {}
    assert {topo.engine_of(node) for node in topo.nodes} == {LOCAL_ENGINE}


def test_tiers_and_nodes_place_nodes_node_entries_winning(tmp_path: Path) -> None:
    topo = load_topology(with_text(tmp_path, SPLIT))
    on_second = {n for n in topo.nodes if topo.engine_of(n) == "second"}
    assert on_second == {"lb1", "lb2", "controller", "dea1", "dea2"}
    assert topo.engine_of("inside") == LOCAL_ENGINE   # a paas node, placed by name
    assert topo.engines["second"].endpoint == "unix:///run/edge-engine/docker.sock"


def test_tls_files_resolve_relative_to_the_topology(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    extra = SPLIT.replace('{endpoint: "unix:///run/edge-engine/docker.sock"}',
                          "{endpoint: tcp://engine2.test:2376, tls: {ca: ca.pem, cert: cert.pem, "
                          "key: key.pem}}")
    engine = load_topology(with_text(tmp_path, extra)).engines["second"]
    assert engine.tls == tuple(str(tmp_path / n) for n in ("ca.pem", "cert.pem", "key.pem"))


@pytest.mark.parametrize("extra,field,needle,words", [
    (SPLIT.replace("second: {endpoint", "local: {endpoint"), "engines.local", "local: {",
     "needs no entry"),
    (SPLIT.replace('"unix:///run/edge-engine/docker.sock"', "http://engine2:2375"),
     "engines.second.endpoint", "http://", "is not an engine endpoint"),
    (SPLIT.replace('"unix:///run/edge-engine/docker.sock"', "tcp://engine2:2375"),
     "engines.second.tls", "tcp://", "needs `tls`"),
    (SPLIT.replace('docker.sock"}', 'docker.sock", tls: {ca: a, cert: b, key: c}}'),
     "engines.second.tls", "tls:", "only for a tcp://"),
    (SPLIT.replace('"unix:///run/edge-engine/docker.sock"}',
                   "tcp://e2.test:2376, tls: {ca: nope.pem, cert: c, key: k}}"),
     "engines.second.tls.ca", "nope.pem", "'nope.pem' is not a file"),
    (SPLIT.replace('docker.sock"}', 'docker.sock", host: x}'), "engines.second.host",
     "host: x", "unknown engine setting"),
    (SPLIT.replace("paas: second}", "paas: third}"), "placement.tiers.paas", "third",
     "unknown engine 'third'"),
    (SPLIT.replace("paas: second}", "platform: second}"), "placement.tiers.platform",
     "platform", "unknown tier 'platform'"),
    (SPLIT.replace("{inside: local}", "{outside: local}"), "placement.nodes.outside",
     "outside", "unknown node 'outside'"),
    (SPLIT.replace("  nodes: {inside: local}\n", "  engine: second\n"), "placement.engine",
     "engine: second", "unknown placement setting"),
    ("\nplacement: {}\n", "placement", "placement: {}", "places nothing"),
    (SPLIT + "  stacks: {staging-b: third}\n", "placement.stacks.staging-b", "third",
     "unknown engine 'third'"),
    (SPLIT + "  stacks: {Staging_B: second}\n", "placement.stacks.Staging_B", "Staging_B",
     "is not a stack name"),
    ("\nplacement:\n  nodes: {lb1: second}\n", "placement.nodes.lb1", "lb1: second",
     "unknown engine 'second'"),
    ("\nengines: [second]\n", "engines", "engines: [second]", "expected a mapping"),
])
def test_bad_engines_or_placement_give_one_clear_error(tmp_path: Path, extra: str, field: str,
                                                       needle: str, words: str) -> None:
    path = with_text(tmp_path, extra)
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    message = str(err.value)
    assert message.startswith(f"{path}:") and field in message and words in message, message
    line = int(re.match(rf"{re.escape(str(path))}:(\d+):", message).group(1))
    needle_line = max(i for i, text in enumerate(path.read_text().splitlines(), 1)
                      if needle in text)
    assert abs(line - needle_line) <= 1, (line, message)


def test_swarm_plan_uses_the_slots_spare_top_of_its_internal_block() -> None:
    plan = swarm_plan(load_topology(REFERENCE), 15, "hswarm")
    assert str(plan.bridge) == "10.79.255.0/24" and str(plan.manager) == "10.79.255.1"
    assert str(plan.engine_address(0)) == "10.79.255.2"
    prefixes = [plan.bridge, plan.gwbridge, plan.engine_pool, plan.pool]
    assert all(p.subnet_of(plan.pool.supernet(new_prefix=20)) for p in prefixes)
    assert not any(a.overlaps(b) for i, a in enumerate(prefixes) for b in prefixes[i + 1:])
    assert plan.bridge_name == "edge-hswarm-engines"


def test_swarm_plan_refuses_a_topology_network_in_its_space(tmp_path: Path) -> None:
    path = with_text(tmp_path, "")
    moved = path.read_text().replace("10.64.0.", "10.64.250.")
    path.write_text(moved.replace("internal: 10.64.250.0/16", "internal: 10.64.0.0/16"))
    with pytest.raises(SwarmError, match=r"network 'paas' \(10.79.250.0/24\) is in 10.79.240.0/20"):
        swarm_plan(load_topology(path), 15, "hswarm")


def test_missing_capabilities_reads_the_bounding_set() -> None:
    assert missing_capabilities("Name: x\nCapBnd:\t000001fffeffffff\n") == ["SYS_RESOURCE"]
    assert missing_capabilities("CapBnd:\t000001ffffffffff\n") == []


def test_engine_variant_has_its_own_tag_and_leaves_the_base_tag_alone() -> None:
    base, engine = image_ref(ROOT), image_ref(ROOT, "engine")
    assert base.startswith("edge-testbed/base:") and engine.startswith("edge-testbed/engine:")
    assert base.split(":")[1] != engine.split(":")[1]


def test_spread_plan_places_nodes_and_keeps_only_the_engines_used(tmp_path: Path) -> None:
    plan = stack_plan(load_topology(with_text(tmp_path, SPLIT)), "hswarm-u", 15)
    assert plan.spread and set(plan.engines) == {"second"}
    assert plan.nodes["lb1"].engine == "second" and plan.nodes["border"].engine == LOCAL_ENGINE
    assert not stack_plan(load_topology(REFERENCE), "hswarm-u", 15).spread
    # The overlays' MTU, which the networks are made with and the routers' converge keeps;
    # one engine's bridges keep the engine's default.
    assert plan.mtu == OVERLAY_MTU
    assert stack_plan(load_topology(REFERENCE), "hswarm-u", 15).mtu is None


def test_a_stack_placed_on_an_engine_has_every_node_there(tmp_path: Path) -> None:
    """`placement.stacks` puts a whole stack (a staging stack of a pool) on one engine; the
    other stacks of the same topology keep the per-node placement, here none: all local."""
    extra = ('\nengines:\n  second: {endpoint: "unix:///run/edge-engine/docker.sock"}\n'
             "placement:\n  stacks: {staging-b: second}\n")
    topo = load_topology(with_text(tmp_path, extra))
    assert topo.placement == {} and topo.stack_engines == {"staging-b": "second"}
    remote, here = (stack_plan(topo, name, 15) for name in ("staging-b", "staging-a"))
    assert {n.engine for n in remote.nodes.values()} == {"second"}
    assert remote.spread and set(remote.engines) == {"second"}   # overlays, made on the manager
    assert {n.engine for n in here.nodes.values()} == {LOCAL_ENGINE}
    assert not here.spread and here.engines == {}
    # Over a per-node placement too: the stack's own engine wins.
    both = load_topology(with_text(tmp_path, SPLIT + "  stacks: {staging-b: local}\n"))
    assert {n.engine for n in stack_plan(both, "staging-b", 15).nodes.values()} == {LOCAL_ENGINE}
    assert stack_plan(both, "staging-a", 15).nodes["lb1"].engine == "second"


def test_swarm_picks_its_own_addresses_only_where_no_node_is(tmp_path: Path) -> None:
    plan = stack_plan(load_topology(with_text(tmp_path, SPLIT)), "hswarm-u", 15)
    for net in plan.networks.values():
        block = ipaddress.IPv4Network(dynamic_range(net, plan))
        assert block.subnet_of(net.subnet) and net.gateway not in block
        assert not [a for n in plan.nodes.values() for a in n.addresses.values() if a in block]


def test_a_bridge_network_made_before_engines_existed_is_not_replaced() -> None:
    """Outputs recorded by the provider before `mtu`, `ip_range` and `endpoint` existed."""
    olds = {"name": "edge-lab-dmz", "subnet": "198.18.2.0/24", "gateway": "198.18.2.254",
            "internal": True, "labels": {"edge-testbed.project": "edge-testbed"},
            "network_id": "abc"}
    news = olds | {"mtu": None, "ip_range": None, "endpoint": None, "network_id": None}
    assert not NetworkProvider().diff("abc", olds, news).changes


@pytest.mark.parametrize("value,ok", [(None, True), (1450, True), (1450.0, True),
                                      (1450.5, False), (True, False), (100, False)])
def test_overlay_mtu_inputs(value: object, ok: bool) -> None:
    props = {"name": "n", "subnet": "198.18.2.0/24", "gateway": "198.18.2.254", "internal": True,
             "labels": {"edge-testbed.project": "edge-testbed", "edge-testbed.stack": "s"},
             "mtu": value, "ip_range": None, "endpoint": None}
    assert (not NetworkProvider().check({}, props).failures) == ok
