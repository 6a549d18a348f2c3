"""Wait until every BGP session this router should have is Established and, where it accepts
prefixes, has received some: a converge ends when the router routes, not when its files are
written.

It runs on the router (`python3 -c` from the frr role) and reads `vtysh -c 'show ip bgp summary
json'`, whose shape depends on bgpd's state: `{}` when no neighbour is configured (so no
`ipv4Unicast` key), no JSON at all while bgpd is down. Every shape is a state it reports, never an
error of its own: on timeout it says, per expected peer, what it waited for and what it last saw.

Arguments: --wait SECONDS, --routes (each session must have received a prefix), and one
ADDRESS=NAME per expected peer.
"""

import argparse
import json
import subprocess
import sys
import time

INTERVAL_S = 0.5


def peers() -> tuple[dict, str]:
    """bgpd's IPv4 unicast peers by address, or {} and why there are none."""
    run = subprocess.run(["vtysh", "-c", "show ip bgp summary json"],
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        return {}, f"vtysh failed: {(run.stderr or run.stdout).strip()[:200]}"
    try:
        summary = json.loads(run.stdout or "{}")
    except ValueError:
        return {}, f"bgpd answered no JSON: {run.stdout.strip()[:200]}"
    return (summary.get("ipv4Unicast") or {}).get("peers") or {}, ""


def waiting_for(found: dict, expected: dict[str, str], routes: bool) -> list[str]:
    """One line per expected session that is not yet as it should be."""
    lines = []
    for address, name in expected.items():
        peer = found.get(address)
        if peer is None:
            lines.append(f"{address} ({name}): not configured in bgpd")
        elif peer.get("state") != "Established":
            lines.append(f"{address} ({name}): {peer.get('state', 'no state')}")
        elif routes and not peer.get("pfxRcd"):
            lines.append(f"{address} ({name}): Established but no prefix received")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait", type=float, required=True)
    parser.add_argument("--routes", action="store_true")
    parser.add_argument("peers", nargs="+", metavar="ADDRESS=NAME")
    args = parser.parse_args()
    expected = dict(p.split("=", 1) for p in args.peers)
    deadline = time.monotonic() + args.wait
    while True:
        found, why = peers()
        left = waiting_for(found, expected, args.routes)
        if not left:
            return 0
        if time.monotonic() > deadline:
            want = "Established" + (" with a prefix received" if args.routes else "")
            print(f"waited {args.wait:g}s for the BGP session(s) with {', '.join(expected)} to be "
                  f"{want}; last seen: {'; '.join(left)}" + (f" ({why})" if why else ""),
                  file=sys.stderr)
            return 1
        time.sleep(INTERVAL_S)


if __name__ == "__main__":
    sys.exit(main())
