"""The firewall allow list read statically against the contract's must-block flows."""

from __future__ import annotations

from pathlib import Path

from edge.contract import expand, load_contract
from edge.policy import allow_rules, opened

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "stack": "lab", "zone": "paas.test",
    "nodes": {
        "client": {"role": "vantage", "container": "c", "addresses": {"internet": "198.18.0.10"}},
        "controller": {"role": "controller", "container": "k",
                       "addresses": {"paas": "10.64.0.20"}},
    },
}


def flows(tmp_path: Path):
    path = tmp_path / "contract.yaml"
    path.write_text("""flows:
  - name: no-controller-from-outside
    from: client
    must: block
    tcp: {to: {role: controller, network: paas}, port: 8080}
""")
    return expand(load_contract(path), OUTPUTS)


def test_the_shipped_allow_list_opens_no_must_block_flow(tmp_path: Path) -> None:
    assert opened(flows(tmp_path), allow_rules(ROOT, {}), OUTPUTS, ("inside",)) == []


def test_a_rule_to_the_controller_is_a_security_regression(tmp_path: Path) -> None:
    extra = [{"name": "oops", "to": {"role": "controller", "network": "paas"},
              "proto": "tcp", "ports": [8080]}]
    found = opened(flows(tmp_path), allow_rules(ROOT, {"firewall_allow_extra": extra}),
                   OUTPUTS, ("inside",))
    assert len(found) == 1 and "'oops' accepts no-controller-from-outside@controller" in found[0]


def test_other_ports_and_protocols_do_not_match(tmp_path: Path) -> None:
    extra = [{"name": "udp", "to": {"role": "controller", "network": "paas"},
              "proto": "udp", "ports": [8080]},
             {"name": "other", "to": {"role": "controller", "network": "paas"},
              "proto": "tcp", "ports": [9090, "{{ templated }}"]}]
    assert opened(flows(tmp_path), allow_rules(ROOT, {"firewall_allow_extra": extra}),
                  OUTPUTS, ("inside",)) == []
