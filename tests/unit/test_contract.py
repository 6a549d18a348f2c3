"""The connectivity contract: validation, expansion to concrete flows, and judging results."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.lab.probes import judge
from edge.model.contract import ContractError, expand, load_contract
from edge.model.lab import Lab

ROOT = Path(__file__).resolve().parents[2]


def node(role: str, container: str, **addresses: str) -> dict:
    """A node as the stack's outputs give it."""
    return {"role": role, "tier": role, "container": container, "container_id": container,
            "addresses": addresses}


NODES = {
    "client": node("vantage", "edge-lab-client", internet="198.18.0.10"),
    "resolver": node("resolver", "edge-lab-resolver", internet="198.18.0.53"),
    "lb1": node("loadbalancer", "edge-lab-lb1", dmz="198.18.2.10", paas="10.64.0.10"),
    "lb2": node("loadbalancer", "edge-lab-lb2", dmz="198.18.2.11", paas="10.64.0.11"),
}


def lab(nodes: dict[str, dict]) -> Lab:
    return Lab.from_outputs({"stack": "lab", "slot": 0, "zone": "paas.test", "nodes": nodes})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "contract.yaml"
    path.write_text(text)
    return path


def test_reference_contract_loads() -> None:
    contract = load_contract(ROOT / "contract.yaml")
    assert {r["must"] for r in contract.rules} == {"work", "block"}


def test_a_role_target_expands_to_one_flow_per_node(tmp_path: Path) -> None:
    contract = load_contract(write(tmp_path, """
flows:
  - name: app
    from: client
    must: work
    http: {to: {role: loadbalancer, network: dmz}, host: "hello.apps.{zone}"}
  - name: dns
    from: client
    must: work
    dns: {server: {role: resolver, network: internet}, name: "api.{zone}"}
    expect: {answers: {role: loadbalancer, network: dmz}}
"""))
    flows = expand(contract, lab(NODES))
    assert [f.name for f in flows] == ["app@lb1", "app@lb2", "dns@resolver"]
    assert flows[1].params == {"host": "hello.apps.paas.test", "address": "198.18.2.11",
                               "timeout": 2.0}
    assert flows[0].container == "edge-lab-client"
    assert flows[2].expect == {"answers": ["198.18.2.10", "198.18.2.11"]}


@pytest.mark.parametrize("body,words", [
    ("flows:\n  - name: x\n    from: client\n    must: maybe\n    tcp: {to: {role: a, network: b}, port: 1}\n",
     ":4: flows[0].must: 'maybe' is neither work nor block"),
    ("flows:\n  - name: x\n    from: client\n    must: work\n",
     "needs exactly one of dns, http, tcp"),
    ("flows:\n  - name: x\n    from: client\n    must: block\n    tcp: {to: {role: a}, port: 1}\n",
     "flows[0].tcp.to: a target is `{role: ROLE, network: NETWORK}`"),
    ("flows:\n  - name: x\n    from: client\n    must: block\n    tcp: {to: {role: a, network: b}}\n",
     "a tcp flow needs a port number"),
])
def test_bad_contract_gives_one_clear_error(tmp_path: Path, body: str, words: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ContractError) as err:
        load_contract(path)
    assert str(err.value).startswith(f"{path}:") and words in str(err.value), str(err.value)


def reference_flows() -> list:
    """The reference contract expanded on a small lab with one node of every role it names."""
    return expand(load_contract(ROOT / "contract.yaml"), lab(NODES | {
        "ns1": node("dns", "c", dmz="198.18.2.53"),
        "controller": node("controller", "c", paas="1.1.1.1"),
        "dea1": node("dea", "c", paas="1.1.1.2"),
        "firewall": node("firewall", "c", transit="1.1.1.3"),
        "border": node("border", "c", transit="1.1.1.4"),
        "inside": node("vantage", "c", paas="1.1.1.5"),
    }))


def flow(must: str, kind: str, **expect):
    found = next(f for f in reference_flows() if f.must == must and f.kind == kind)
    return found


def test_judging_blocked_flows() -> None:
    blocked = flow("block", "tcp")
    assert judge(blocked, {"outcome": "timeout"}) == (True, "")
    assert judge(blocked, {"outcome": "unreachable"}) == (True, "")
    assert judge(blocked, {"outcome": "refused"})[0] is False   # reached the host
    assert judge(blocked, {"outcome": "open"}) == (False, "should be blocked but was open")


def test_judging_dns_and_http() -> None:
    dns = flow("work", "dns")
    good = {"outcome": "answered", "rcode": "NOERROR", "answers": ["198.18.2.10", "198.18.2.11"]}
    assert judge(dns, good) == (True, "")
    assert judge(dns, good | {"answers": ["198.18.2.10"]})[0] is False   # one LB missing
    assert judge(dns, good | {"rcode": "SERVFAIL"}) == (False, "rcode SERVFAIL")
    http = flow("work", "http")
    assert judge(http, {"outcome": "answered", "status": 200}) == (True, "")
    assert judge(http, {"outcome": "answered", "status": 503}) == (False,
                                                                  "HTTP 503 != expected 200")
    assert judge(http, {"outcome": "timeout"}) == (False, "no HTTP answer (timeout)")
