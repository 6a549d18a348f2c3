"""A static check of the firewall's allow list against the contract's must-block flows.

Measuring is not enough for a rule that opens a door nobody can walk through yet: a rule that
accepts the internet's traffic to the controller changes no measured flow while no route leads to
the PaaS network, and exposes it the day one does. So the preview also reads the allow list the
change would render (`firewall_allow` + `firewall_allow_extra`, role defaults overridden by the
revision's variables) and flags every rule that accepts a flow the contract says must stay
blocked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


from edge.contract import Flow
from edge.scope import role_defaults

LISTS = ("firewall_allow", "firewall_allow_extra")


def allow_rules(tree: Path, variables: dict[str, Any]) -> list[dict[str, Any]]:
    """The firewall's allow rules as the revision renders them."""
    defaults = role_defaults(tree / "roles", "firewall")
    return [rule for key in LISTS for rule in (variables.get(key, defaults.get(key)) or [])]


def _ports(rule: dict[str, Any]) -> set[int]:
    """The rule's literal port numbers (templated ones are not flows of the contract)."""
    return {int(p) for p in rule.get("ports") or [] if str(p).isdigit()}


def opened(flows: list[Flow], rules: list[dict[str, Any]], outputs: dict,
           inside: tuple[str, ...]) -> list[str]:
    """Must-block flows from the outside that an allow rule accepts, as sentences."""
    found = []
    for flow in flows:
        if flow.must != "block" or flow.kind != "tcp" or flow.vantage in inside:
            continue
        node = outputs["nodes"][flow.target]
        network = next((n for n, a in node["addresses"].items()
                        if a == flow.params["address"]), None)
        for rule in rules:
            to = rule.get("to") or {}
            if to.get("role") == node["role"] and to.get("network") == network and \
                    rule.get("proto", "tcp") == "tcp" and flow.params["port"] in _ports(rule):
                found.append(f"firewall rule '{rule.get('name')}' accepts {flow.name} "
                             f"({flow.params['address']}:{flow.params['port']}), which the "
                             "contract says must stay blocked")
    return found
