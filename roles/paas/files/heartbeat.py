#!/usr/bin/env python3
"""Heartbeat agent of an execution node (DEA): tells the controller which app instances are alive.

Every --interval seconds it checks each local instance's /healthz and, for each one that answers,
posts {"node", "app", "instance", "port"} to the controller. An instance that stops answering
simply stops being announced, so the controller sees it go stale. The controller being down or
its storage lost is normal weather (the apps keep serving): the agent logs the change once and
keeps trying; it never exits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Instance:
    app: str
    instance: str
    port: int

    @classmethod
    def parse(cls, spec: str) -> Instance:
        """APP:INSTANCE:PORT, as written in the supervisord program's command line."""
        app, instance, port = spec.split(":")
        return cls(app, instance, int(port))


def alive(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status == 200
    except (OSError, ValueError):
        return False


def post(url: str, beat: dict[str, object], timeout: float) -> str | None:
    """Send one heartbeat; None on success, else why it failed."""
    request = urllib.request.Request(url, data=json.dumps(beat).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as err:
        return f"controller answered {err.code}: {err.read(300).decode(errors='replace').strip()}"
    except (OSError, ValueError) as err:
        return f"controller unreachable: {err}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controller", required=True, help="URL of POST /v1/heartbeat")
    parser.add_argument("--node", required=True)
    parser.add_argument("--address", required=True, help="where this node's instances listen")
    parser.add_argument("--instance", action="append", type=Instance.parse, default=[],
                        metavar="APP:INSTANCE:PORT")
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=1.5)
    args = parser.parse_args()
    last: dict[str, str | None] = {}   # per instance: the last outcome logged
    while True:
        started = time.monotonic()
        for inst in args.instance:
            if not alive(f"http://{args.address}:{inst.port}/healthz", args.timeout):
                outcome: str | None = "instance not answering its /healthz; not announced"
            else:
                outcome = post(args.controller, {"node": args.node, "app": inst.app,
                                                 "instance": inst.instance, "port": inst.port},
                               args.timeout)
            if last.get(inst.instance, "") != outcome:   # log changes only, not every beat
                print(f"{inst.instance}: {outcome or 'heartbeats accepted'}", file=sys.stderr,
                      flush=True)
                last[inst.instance] = outcome
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
