"""The connectivity contract (contract.yaml): flows that must work and flows that must stay blocked.

The file names targets by role and network; `expand` turns it into concrete flows for one stack
(addresses, container to probe from), one per node of a target role, so that losing one of two
load balancers or name servers breaks a flow even while users are still served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.model.datafile import Mapping, Reader, load_checked
from edge.model.lab import Lab
from edge.model.topology import Endpoint

KINDS = ("dns", "http", "tcp")
MUSTS = ("work", "block")


class ContractError(ValueError):
    """A contract file that cannot be used; the message names file, line and fix."""


@dataclass(frozen=True)
class Flow:
    """One concrete flow of one stack: probe `params` from container `container`."""

    name: str            # e.g. "http-app-at-lb@lb2"
    rule: str            # the contract entry it comes from, e.g. "http-app-at-lb"
    vantage: str         # node name
    container: str
    kind: str
    must: str
    params: dict[str, Any]
    expect: dict[str, Any] = field(default_factory=dict)
    target: str = ""     # the node the flow is about (server or destination)
    service: str = ""    # what users lose when it fails (dns, api, apps); "" for must-block flows
    watched: bool = True  # probed continuously by `edge watch` and the apply watchdog
    endpoint: Endpoint = Endpoint()   # the engine of the vantage's container


@dataclass(frozen=True)
class Contract:
    """A validated contract file, not yet bound to a stack."""

    path: Path
    timeout_s: float
    block_timeout_s: float
    rules: tuple[Mapping, ...]
    watch_timeout_s: float = 0.5
    latency_objective_ms: float = 100.0
    inside: tuple[str, ...] = ("inside",)


def load_contract(path: Path | str) -> Contract:
    """Load and validate contract.yaml; raise ContractError naming file, line and fix."""
    path = Path(path)
    doc, r = load_checked(path, "contract", "--contract", ContractError)
    if not isinstance(doc, dict) or not isinstance(doc.get("flows"), list):
        raise ContractError(f"{path}:1: the contract needs a `flows:` list. See contract.yaml.")
    defaults = r.mapping(doc, "defaults", "defaults", required=False)
    names = set()
    for i, rule in enumerate(doc["flows"]):
        where = f"flows[{i}]"
        if not isinstance(rule, dict):
            r.fail(doc, where, "expected a mapping", "Write `- name: ...` entries.", "flows")
        name = r.name(rule, rule.get("name"), f"{where}.name")
        if name in names:
            r.fail(rule, f"{where}.name", f"duplicate flow name '{name}'",
                   "Give every flow its own name.", "name")
        names.add(name)
        if rule.get("must") not in MUSTS:
            r.fail(rule, f"{where}.must", f"'{rule.get('must')}' is neither work nor block",
                   "Write `must: work` or `must: block`.", "must")
        kinds = [k for k in KINDS if k in rule]
        if len(kinds) != 1:
            r.fail(rule, where, f"needs exactly one of {', '.join(KINDS)}, found {kinds or 'none'}",
                   "Describe the flow with one `dns:`, `http:` or `tcp:` mapping.", "name")
        spec = r.mapping(rule, kinds[0], f"{where}.{kinds[0]}")
        target = "server" if kinds[0] == "dns" else "to"
        _target(r, spec, target, f"{where}.{kinds[0]}.{target}")
        if kinds[0] == "tcp" and not isinstance(spec.get("port"), int):
            r.fail(spec, f"{where}.tcp.port", "a tcp flow needs a port number",
                   "Write e.g. `port: 8080`.", "port")
        if not isinstance(rule.get("from"), str):
            r.fail(rule, f"{where}.from", "missing vantage node",
                   "Name the node to probe from, e.g. `from: client`.", "name")
        if "service" in rule and (rule["must"] != "work" or not isinstance(rule["service"], str)):
            r.fail(rule, f"{where}.service", "a service names what a must-work flow serves",
                   "Write e.g. `service: api` on must-work flows only.", "service")
        if not isinstance(rule.get("watch", True), bool):
            r.fail(rule, f"{where}.watch", "expected true or false",
                   "Write `watch: false` to leave the flow out of continuous probing.", "watch")
        _sizes(r, rule, where)
    inside = defaults.get("inside", ["inside"])
    if not isinstance(inside, list) or not all(isinstance(n, str) for n in inside):
        r.fail(defaults, "defaults.inside", "expected a list of vantage node names",
               "Write e.g. `inside: [inside]`.", "inside")
    def number(key: str, default: float, unit: str = "seconds") -> float:
        return r.number(defaults, key, f"defaults.{key}", default, unit)

    return Contract(path, number("timeout_s", 2.0), number("block_timeout_s", 1.0),
                    tuple(doc["flows"]), number("watch_timeout_s", 0.5),
                    number("latency_objective_ms", 100.0, "milliseconds"), tuple(inside))


# Sizes a flow may expect (whole positive numbers of bytes), by kind: the HTTP body that must
# arrive whole, and the least a DNS answer must weigh (e.g. 1233: more than 1232, the EDNS buffer
# that makes it come back truncated over UDP).
SIZES = {"http": ("body_bytes",), "dns": ("min_bytes",)}


def _sizes(r: Reader, rule: Mapping, where: str) -> None:
    """A size in `expect:` is a whole number of bytes, of a key the flow's kind knows; a DNS flow
    that expects truncation asks over UDP first."""
    expect = rule.get("expect") or {}
    if not isinstance(expect, dict):
        r.fail(rule, f"{where}.expect", "expected a mapping", "Write e.g. `expect: {status: 200}`.",
               "expect")
    kind = next(k for k in KINDS if k in rule)
    for key in ("body_bytes", "min_bytes"):
        if key not in expect:
            continue
        if key not in SIZES.get(kind, ()):
            owner = next(k for k, keys in SIZES.items() if key in keys)
            r.fail(expect, f"{where}.expect.{key}", f"a {kind} flow has no {key}",
                   f"Only {owner} flows expect it: leave it out here.", key)
        value = expect[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            r.fail(expect, f"{where}.expect.{key}", f"'{value}' is not a number of bytes",
                   f"Write e.g. `{key}: 65536`.", key)
    if "truncated" in expect and (kind != "dns" or not isinstance(expect["truncated"], bool)
                                  or rule["dns"].get("transport") != "fallback"):
        r.fail(expect, f"{where}.expect.truncated", "only a DNS flow with `transport: fallback` "
               "(UDP, then TCP when truncated) can expect truncation",
               "Write `transport: fallback` in its dns: mapping and `truncated: true`.",
               "truncated")


def _target(r: Reader, spec: Mapping, key: str, field_: str) -> None:
    value = spec.get(key)
    if not isinstance(value, dict) or not {"role", "network"} <= set(value):
        r.fail(spec, field_, "a target is `{role: ROLE, network: NETWORK}`",
               "Name the role and the network whose addresses the flow goes to.", key)


def _nodes_of(lab: Lab, target: dict[str, str]) -> list[tuple[str, str]]:
    """(node, address) of every node with the target's role, on the target's network."""
    return [(node.name, node.addresses[target["network"]]) for node in lab.with_role(target["role"])
            if target["network"] in node.addresses]


def expand(contract: Contract, lab: Lab) -> list[Flow]:
    """The contract's flows bound to one stack's nodes and addresses."""
    flows = []
    for rule in contract.rules:
        kind = next(k for k in KINDS if k in rule)
        spec = dict(rule[kind])
        vantage = rule["from"]
        if vantage not in lab.nodes:
            raise ContractError(f"{contract.path}:{rule.line}: flows.{rule['name']}.from: no "
                                f"node '{vantage}' in stack '{lab.stack}'. Name a node "
                                "of the topology.")
        timeout = contract.timeout_s if rule["must"] == "work" else contract.block_timeout_s
        expect = dict(rule.get("expect") or {})
        if isinstance(expect.get("answers"), dict):
            expect["answers"] = sorted(a for _, a in _nodes_of(lab, expect["answers"]))
        key = "server" if kind == "dns" else "to"
        targets = _nodes_of(lab, spec.pop(key))
        if not targets:
            raise ContractError(f"{contract.path}:{rule.line}: flows.{rule['name']}: no node "
                                f"matches its {key} in stack '{lab.stack}'.")
        for node, address in targets:
            params = {k: v.format(zone=lab.zone) if isinstance(v, str) else v
                      for k, v in spec.items()}
            params |= {"server" if kind == "dns" else "address": address, "timeout": timeout}
            service = rule.get("service", rule["name"]) if rule["must"] == "work" else ""
            flows.append(Flow(f"{rule['name']}@{node}", rule["name"], vantage,
                              lab.nodes[vantage].container, kind, rule["must"],
                              params, expect, node, service, rule.get("watch", True),
                              lab.nodes[vantage].endpoint))
    return flows
