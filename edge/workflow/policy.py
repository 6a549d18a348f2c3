"""Which must-block flows of the contract the firewall's loaded ruleset would let through.

Measuring is not enough for a rule that opens a door nobody can walk through yet: a rule that
accepts the internet's traffic to the controller changes no measured flow while no route leads to
the PaaS network, and exposes it the day one does. So the preview also reads the ruleset itself.

It reads the ruleset the kernel of the staged firewall holds once the change is converged there
(`nft -j list ruleset`), not the role variables that render it: variables can say the same thing
in many ways (a port range, a rule with only a destination address or none at all, a templated
port, an override of the rule lists or of the chain policy, a jump to a chain of its own, a named
set), and only the loaded ruleset says what each of them means to a packet.

`evaluate` is a pure function from that JSON and one packet (a new TCP/UDP connection from an
outside vantage point) to whether the firewall accepts it and which rule or policy does. Every
base chain of the packet's hook (`forward` for a packet routed through the firewall, `input` for
one addressed to it) is walked in priority order, through jumps, gotos, verdict maps and named
sets. What a ruleset cannot tell about the packet (its interface, a rate limit, a mark, an
iptables-nft match) is taken both ways, so an `accept` behind such a match is reported as a
possible acceptance rather than missed.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edge.engines import docker_exec
from edge.model.contract import Flow
from edge.model.lab import Lab, Node

FAMILIES = ("inet", "ip")            # the tables an IPv4 packet goes through
PROTOCOLS = {"tcp": 6, "udp": 17}
MAX_DEPTH = 16                       # nft refuses deeper jumps; a malformed fixture stops here
NEW = "new"                          # the connection-tracking state of a packet that opens a flow


class PolicyError(ValueError):
    """A ruleset this module cannot read (not the JSON of `nft -j list ruleset`)."""


@dataclass(frozen=True)
class Packet:
    """The first packet of a flow, as the firewall sees it."""

    saddr: str
    daddr: str
    proto: str          # tcp or udp
    dport: int
    hook: str = "forward"

    def __str__(self) -> str:
        return f"{self.saddr} -> {self.daddr}:{self.dport}/{self.proto}"


@dataclass(frozen=True)
class Verdict:
    """Whether the ruleset accepts a packet: `by` names the rule or policy that does (or drops
    it); `certain` is False when that depends on a match the ruleset alone cannot decide."""

    accepted: bool
    by: str
    certain: bool = True


@dataclass(frozen=True)
class _End:
    """How a walk through a chain ended: accept, drop or return (fell off its end)."""

    verdict: str
    by: str
    certain: bool


class _Ruleset:
    """`nft -j list ruleset` indexed by table: chains with their rules, sets and maps."""

    def __init__(self, doc: Any) -> None:
        items = doc.get("nftables") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise PolicyError('expected the output of `nft -j list ruleset`: {"nftables": [...]}')
        self.chains: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.rules: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.sets: dict[tuple[str, str, str], dict[str, Any]] = {}
        for item in items:
            kind, body = next(iter(item.items())) if isinstance(item, dict) and item else ("", {})
            if kind in ("chain", "rule", "set", "map") and not isinstance(body, dict):
                raise PolicyError(f"a {kind} entry is not a JSON object: {str(body)[:80]}")
            if kind == "chain":
                key = (body["family"], body["table"], body["name"])
                self.chains[key] = body
                self.rules.setdefault(key, [])
            elif kind == "rule":
                key = (body["family"], body["table"], body["chain"])
                self.rules.setdefault(key, []).append(body)
            elif kind in ("set", "map"):
                self.sets[(body["family"], body["table"], body["name"])] = body

    def base_chains(self, hook: str) -> list[tuple[str, str, str]]:
        """The filter chains an IPv4 packet at `hook` goes through, in priority order."""
        found = [key for key, chain in self.chains.items()
                 if key[0] in FAMILIES and chain.get("hook") == hook
                 and chain.get("type", "filter") == "filter"]
        return sorted(found, key=lambda key: _priority(self.chains[key].get("prio", 0)))


def _priority(prio: Any) -> int:
    """A chain priority as a number (nft may print the standard ones by name)."""
    named = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50,
             "srcnat": 100}
    return named.get(prio, 0) if isinstance(prio, str) else int(prio)


def _rule_name(rule: dict[str, Any]) -> str:
    """A rule as a sentence names it: its comment (the role's rule name), else its handle."""
    chain = f"{rule['family']} {rule['table']} {rule['chain']}"
    name = f"'{rule['comment']}'" if rule.get("comment") else f"handle {rule.get('handle')}"
    return f"rule {name} of chain {chain}"


# --- matching one packet --------------------------------------------------------------------------

def _field(left: Any, packet: Packet) -> tuple[str, Any] | None:
    """What a match's left side reads from the packet: (kind, value); kind "absent" when the
    packet has no such header (the match fails, whatever its operator), None when unknown."""
    if not isinstance(left, dict):
        return None
    if "payload" in left:
        protocol, name = left["payload"].get("protocol"), left["payload"].get("field")
        if protocol == "ip":
            return {"saddr": ("addr", packet.saddr), "daddr": ("addr", packet.daddr),
                    "protocol": ("proto", packet.proto)}.get(name)
        if protocol in PROTOCOLS or protocol == "th":
            if protocol != "th" and protocol != packet.proto:
                return ("absent", None)
            return ("port", packet.dport) if name == "dport" else None
        if protocol in ("ip6", "icmp", "icmpv6", "sctp", "dccp", "udplite"):
            return ("absent", None)
        return None
    if "meta" in left:
        key = left["meta"].get("key")
        if key == "l4proto":
            return ("proto", packet.proto)
        if key == "nfproto":
            return ("text", "ipv4")
        if key in ("iif", "iifname"):
            return ("iface", None)   # from outside: never the loopback, otherwise unknown
        return None
    if "ct" in left and left["ct"].get("key") == "state":
        return ("state", NEW)
    return None


def _elements(right: Any, table: tuple[str, str], rules: _Ruleset) -> list[Any] | None:
    """The values a match compares against: a named set's elements, an anonymous set's, a
    list's, or the one value. None for a set that does not exist."""
    if isinstance(right, str) and right.startswith("@"):
        named = rules.sets.get((*table, right[1:]))
        if named is None:
            return None
        return [e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e
                for e in named.get("elem") or []]
    if isinstance(right, dict) and "set" in right:
        return list(right["set"])
    if isinstance(right, list):
        return list(right)
    return [right]


def _contains(element: Any, kind: str, value: Any) -> bool | None:
    """Whether one element (value, prefix, range) holds the packet's value; None: cannot say."""
    if isinstance(element, dict) and "elem" in element:
        element = element["elem"].get("val")
    try:
        if kind == "addr":
            address = ipaddress.ip_address(value)
            if isinstance(element, dict) and "prefix" in element:
                prefix = element["prefix"]
                return address in ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}",
                                                       strict=False)
            if isinstance(element, dict) and "range" in element:
                low, high = (ipaddress.ip_address(a) for a in element["range"])
                return low <= address <= high
            return isinstance(element, str) and ipaddress.ip_address(element) == address
        if kind == "port":
            if isinstance(element, dict) and "range" in element:
                low, high = element["range"]
                return int(low) <= value <= int(high)
            return isinstance(element, int) and element == value
        if kind == "proto":
            return element in (value, PROTOCOLS[value])
        if kind in ("state", "text"):
            return element == value
    except (ValueError, TypeError, KeyError):
        return None
    return None


def _compare(kind: str, value: Any, op: str, right: Any, table: tuple[str, str],
             rules: _Ruleset) -> bool | None:
    """A match's result for the packet: True, False or None (cannot say)."""
    if kind == "absent":
        return False
    if kind == "iface":
        # A packet from an outside vantage point never arrives on the loopback interface;
        # which other interface it arrives on is not in the ruleset.
        if right == "lo" and op in ("==", "!="):
            return op == "!="
        return None
    if op in ("<", ">", "<=", ">=") and kind == "port" and isinstance(right, int):
        return {"<": value < right, ">": value > right, "<=": value <= right,
                ">=": value >= right}[op]
    elements = _elements(right, table, rules)
    if elements is None or op not in ("==", "!=", "in"):
        return None
    results = [_contains(element, kind, value) for element in elements]
    member = True if any(r is True for r in results) else \
        None if any(r is None for r in results) else False
    if member is None:
        return None
    return not member if op == "!=" else member


def _match(body: dict[str, Any], packet: Packet, table: tuple[str, str],
           rules: _Ruleset) -> bool | None:
    found = _field(body.get("left"), packet)
    if found is None:
        return None
    return _compare(*found, body.get("op", "=="), body.get("right"), table, rules)


# --- walking the chains ---------------------------------------------------------------------------

VERDICTS = ("accept", "drop", "reject", "queue", "jump", "goto", "return", "continue")


def _effects(rule: dict[str, Any], packet: Packet, rules: _Ruleset
             ) -> list[tuple[dict[str, Any] | None, bool]]:
    """What a rule may do to the packet: (verdict statement, or None for "on to the next rule",
    whether that is certain). A match it cannot decide makes both outcomes possible."""
    table = (rule["family"], rule["table"])
    sure, maybe_not = True, False
    for statement in rule.get("expr") or []:
        if not isinstance(statement, dict) or not statement:
            continue
        kind, body = next(iter(statement.items()))
        if kind == "match":
            result = _match(body, packet, table, rules)
            if result is False:          # whatever the undecided matches say
                return [(None, True)]
            if result is None:
                sure, maybe_not = False, True
        elif kind in ("limit", "quota") or (kind == "xt" and body.get("type") == "match"):
            sure, maybe_not = False, True
        elif kind == "xt":      # an iptables target: it may decide anything
            return [({"accept": None}, False), ({"drop": None}, False), (None, False)]
        elif kind == "vmap":
            return _vmap(body, packet, table, rules, sure) + ([(None, False)] if maybe_not else [])
        elif kind in VERDICTS:
            return [(statement, sure)] + ([(None, False)] if maybe_not else [])
    return [(None, sure)]


def _vmap(body: dict[str, Any], packet: Packet, table: tuple[str, str], rules: _Ruleset,
          sure: bool) -> list[tuple[dict[str, Any] | None, bool]]:
    """A verdict map: the verdict of the entry holding the packet's value (none: next rule)."""
    found = _field(body.get("key"), packet)
    data = body.get("data")
    if isinstance(data, str) and data.startswith("@"):
        named = rules.sets.get((*table, data[1:]))
        entries = [] if named is None else named.get("elem") or []
    else:
        entries = data.get("set", []) if isinstance(data, dict) else []
    if found is None:
        return [(verdict, False) for _, verdict in entries] + [(None, False)]
    effects: list[tuple[dict[str, Any] | None, bool]] = []
    for key, verdict in entries:
        inside = _contains(key, *found) if found[0] != "absent" else False
        if inside:
            return effects + [(verdict, sure and not effects)]
        if inside is None:
            effects.append((verdict, False))
    return effects + [(None, sure and not effects)]


def _walk(rules: _Ruleset, chain: tuple[str, str, str], packet: Packet, start: int = 0,
          sure: bool = True, depth: int = 0) -> list[_End]:
    """Every way the packet can leave `chain` from rule `start` on."""
    if depth > MAX_DEPTH:
        return [_End("return", f"jumps deeper than {MAX_DEPTH} chains", False)]
    listed = rules.rules.get(chain, [])
    for index in range(start, len(listed)):
        rule = listed[index]
        effects = _effects(rule, packet, rules)
        if effects == [(None, True)]:
            continue
        ends: list[_End] = []
        for statement, certain in effects:
            certain = certain and sure
            verdict = next(iter(statement)) if statement else "continue"
            if verdict == "continue":
                ends += _walk(rules, chain, packet, index + 1, certain, depth)
            elif verdict in ("accept", "drop", "reject", "queue"):
                word = {"reject": "drop", "queue": "accept"}.get(verdict, verdict)
                ends.append(_End(word, _rule_name(rule), certain and verdict != "queue"))
            elif verdict == "return":
                ends.append(_End("return", _rule_name(rule), certain))
            else:                # jump or goto, within the same table
                target = (chain[0], chain[1], statement[verdict]["target"])
                for end in _walk(rules, target, packet, 0, certain, depth + 1):
                    if end.verdict == "return" and verdict == "jump":
                        ends += _walk(rules, chain, packet, index + 1, end.certain, depth)
                    else:
                        ends.append(end)
        return ends
    return [_End("return", "", sure)]


def evaluate(ruleset: Any, packet: Packet) -> Verdict:
    """Whether the ruleset (`nft -j list ruleset`, parsed) accepts the packet: it must pass every
    base chain of its hook, and a chain's policy decides what falls off its end."""
    rules = _ruleset(ruleset)
    chains = rules.base_chains(packet.hook)
    if not chains:
        return Verdict(True, f"no {packet.hook} chain: nothing filters the packet")
    accepted_by: list[str] = []
    certain = True
    for chain in chains:
        policy = rules.chains[chain].get("policy", "accept")
        name = f"the policy {policy} of chain {' '.join(chain)}"
        ends = [end if end.verdict != "return" else _End(policy, name, end.certain)
                for end in _walk(rules, chain, packet)]
        accepts = [end for end in ends if end.verdict == "accept"]
        if not accepts:
            return Verdict(False, next(end.by for end in ends))
        best = next((end for end in accepts if end.certain), accepts[0])
        certain = certain and best.certain
        accepted_by.append(best.by)
    return Verdict(True, ", then ".join(accepted_by), certain)


def _ruleset(ruleset: Any) -> _Ruleset:
    try:
        return _Ruleset(ruleset)
    except (KeyError, TypeError, AttributeError) as err:
        raise PolicyError(f"not the JSON of `nft -j list ruleset` ({type(err).__name__}: "
                          f"{err})") from None


# --- the contract's must-block flows ------------------------------------------------------------

def _packet_of(flow: Flow) -> tuple[str, int] | None:
    """The protocol and port a must-block flow opens a connection to (None: not a flow a packet
    filter decides, e.g. without an address)."""
    if "address" not in flow.params and "server" not in flow.params:
        return None
    if flow.kind == "tcp":
        return "tcp", int(flow.params["port"])
    if flow.kind == "http":
        return "tcp", int(flow.params.get("port", 80))
    if flow.kind == "dns":
        return ("tcp" if flow.params.get("transport") == "tcp" else "udp"), 53
    return None


def firewalls(lab: Lab) -> dict[str, Node]:
    """The stack's firewall nodes (the nodes the firewall role configures)."""
    return {name: node for name, node in lab.nodes.items() if node.ansible_role == "firewall"}


def opened(flows: Iterable[Flow], rulesets: dict[str, Any], lab: Lab,
           inside: tuple[str, ...]) -> list[str]:
    """Must-block flows from outside vantage points that a firewall's ruleset accepts, as
    sentences (pure). `rulesets`: firewall node -> its `nft -j list ruleset`, parsed."""
    found = []
    for flow in flows:
        wanted = _packet_of(flow)
        if flow.must != "block" or flow.vantage in inside or wanted is None:
            continue
        target = flow.params.get("address") or flow.params["server"]
        for name, ruleset in sorted(rulesets.items()):
            own = set(lab.nodes[name].addresses.values())
            hook = "input" if target in own else "forward"
            for source in sorted(lab.nodes[flow.vantage].addresses.values()):
                packet = Packet(source, target, *wanted, hook)
                verdict = evaluate(ruleset, packet)
                if verdict.accepted:
                    how = "accepts" if verdict.certain else \
                        "may accept (depending on a match it cannot evaluate: an interface, " \
                        "a rate limit)"
                    found.append(f"{name} ({hook} hook): {verdict.by} {how} {flow.name} "
                                 f"({packet}), which the contract says must stay blocked")
                    break
    return found


NFT_LIST = ("nft", "-j", "list", "ruleset")
NFT_TIMEOUT_S = 30.0       # a wedged nft must not hang the preview


def read_rulesets(lab: Lab) -> tuple[dict[str, Any], list[str]]:
    """Each running firewall's loaded ruleset (read-only), and what could not be read. A stopped
    firewall forwards nothing, so it has no ruleset to judge."""
    rulesets: dict[str, Any] = {}
    problems: list[str] = []
    for name, node in sorted(firewalls(lab).items()):
        try:
            said = docker_exec.run(node, NFT_LIST, timeout=NFT_TIMEOUT_S,
                                   what="reading the ruleset")
        except docker_exec.ContainerUnavailable:
            continue
        except docker_exec.ExecError as err:
            problems.append(str(err))
            continue
        try:
            rulesets[name] = json.loads(said.stdout or '{"nftables": []}')
        except json.JSONDecodeError as err:
            problems.append(f"{node.container}: `{' '.join(NFT_LIST)}` printed no JSON "
                            f"({err.msg} at line {err.lineno})")
    return rulesets, problems
