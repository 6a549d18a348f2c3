"""Topology validation: every mistake is one TopologyError naming file, line and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.model.topology import Link, TopologyError, load_topology

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "topology" / "reference.yaml"


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    """The reference topology with one textual edit, as a new file."""
    text = REFERENCE.read_text()
    assert old in text, f"test edit target {old!r} not in reference topology"
    path = tmp_path / "topology.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def last_line_of(path: Path, needle: str) -> int:
    return max(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_reference_topology_loads() -> None:
    topo = load_topology(REFERENCE)
    assert set(topo.networks) == {"internet", "transit", "dmz", "paas"}
    assert set(topo.nodes) == {"client", "resolver", "border", "border2", "firewall", "lb1", "lb2",
                               "ns1", "ns2", "controller", "dea1", "dea2", "inside"}
    assert topo.zone.endswith(".test")
    assert topo.nodes["controller"].volumes == {"controller-data": "/var/lib/paas"}
    assert topo.nodes["client"].routes[0].via == "border"
    assert topo.slots == {"lab": 0, "staging": 1}


def test_reference_topology_has_a_slow_secondary_border() -> None:
    topo = load_topology(REFERENCE)
    assert topo.nodes["border2"].role == "border"
    assert topo.nodes["border2"].link == Link(delay_ms=40, rate_kbit=2000)
    assert all(node.link is None for name, node in topo.nodes.items() if name != "border2")
    # The primary path stays the first border's: no static route goes through border2.
    assert {route.via for node in topo.nodes.values() for route in node.routes} == {
        "border", "firewall"}


@pytest.mark.parametrize("rate,kbit", [("500kbit", 500), ("2mbit", 2000), ("1gbit", 1_000_000)])
def test_link_rate_units(tmp_path: Path, rate: str, kbit: int) -> None:
    path = write_variant(tmp_path, "rate: 2mbit}", f"rate: {rate}}}")
    assert load_topology(path).nodes["border2"].link == Link(40, kbit)


@pytest.mark.parametrize("old,new,field,needle,words", [
    ("role: loadbalancer\n    networks: {dmz: 198.18.2.11",
     "role: balancer\n    networks: {dmz: 198.18.2.11", "nodes.lb2.role", "role: balancer",
     "unknown role 'balancer'"),
    ("ns2:\n    role: dns\n    networks: {dmz: 198.18.2.54}",
     "ns2:\n    role: dns\n    networks: {dmz: 198.18.2.53}", "nodes.ns2.networks.dmz",
     "{dmz: 198.18.2.53}",
     "duplicate address 198.18.2.53"),
    ("dmz: {subnet: 198.18.2.0/24, gateway: 198.18.2.254}",
     "dmz: {subnet: 198.18.1.0/24, gateway: 198.18.1.253}", "networks.dmz.subnet",
     "dmz: {subnet: 198.18.1.0/24", "overlaps network 'transit'"),
    ("paas: {subnet: 10.64.0.0/24, gateway: 10.64.0.254}",
     "paas: {subnet: 10.255.255.0/24, gateway: 10.255.255.254}", "networks.paas.subnet",
     "paas: {subnet: 10.255", "in neither address_plan block"),
    ("networks: {dmz: 198.18.2.10, paas: 10.64.0.10}",
     "networks: {dmz: 198.18.2.300, paas: 10.64.0.10}", "nodes.lb1.networks.dmz",
     "198.18.2.300", "not an IPv4 address"),
    ("routes: [{to: [internet], via: border}]", "routes: [{to: [internet], via: client}]",
     "nodes.firewall.routes[0].via", "via: client", "shares no network"),

    # link shaping (nodes.*.link)
    ("link: {delay_ms: 40, rate: 2mbit}", "link: {delay_ms: 120, rate: 2mbps}",
     "nodes.border2.link.rate", "2mbps", "'2mbps' is not a rate"),
    ("link: {delay_ms: 40, rate: 2mbit}", "link: {delay_ms: -5, rate: 2mbit}",
     "nodes.border2.link.delay_ms", "delay_ms: -5", "'-5' is not a delay in milliseconds"),
    ("link: {delay_ms: 40, rate: 2mbit}", "link: {delay_ms: 1.5, rate: 2mbit}",
     "nodes.border2.link.delay_ms", "delay_ms: 1.5", "'1.5' is not a delay in milliseconds"),
    ("link: {delay_ms: 40, rate: 2mbit}", "link: {delay_ms: 120, jitter_ms: 5}",
     "nodes.border2.link.jitter_ms", "jitter_ms", "unknown link setting"),
    ("link: {delay_ms: 40, rate: 2mbit}", "link: {delay_ms: 0}",
     "nodes.border2.link", "delay_ms: 0", "shapes nothing"),
    ("link: {delay_ms: 40, rate: 2mbit}", "link: 120ms",
     "nodes.border2.link", "link: 120ms", "expected a mapping"),
    ("    dns: [resolver]\n", "    dns: [resolver]\n    link: {delay_ms: 5}\n",
     "nodes.client.link", "link: {delay_ms: 5}", "role 'vantage' does not forward packets"),
])
def test_bad_topology_gives_one_clear_error(tmp_path: Path, old: str, new: str, field: str,
                                            needle: str, words: str) -> None:
    path = write_variant(tmp_path, old, new)
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    message = str(err.value)
    assert message.startswith(f"{path}:"), message
    assert field in message and words in message, message
    line = int(re.match(rf"{re.escape(str(path))}:(\d+):", message).group(1))
    # The line points at the offending entry (or the mapping that holds it).
    assert abs(line - last_line_of(path, needle)) <= 1, (line, message)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = write_variant(tmp_path, "zone: paas.test", "zone: [paas.test")
    with pytest.raises(TopologyError, match=rf"{re.escape(str(path))}:\d+: not valid YAML"):
        load_topology(path)


def test_zone_must_be_under_test_tld(tmp_path: Path) -> None:
    path = write_variant(tmp_path, "zone: paas.test", "zone: paas.example.com")
    with pytest.raises(TopologyError, match=r":7: zone: .*reserved .test TLD"):
        load_topology(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read the topology file"):
        load_topology(tmp_path / "nope.yaml")
