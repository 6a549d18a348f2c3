#!/usr/bin/env python3
"""Shape a router's lab links: a delay line for what it forwards, a rate limit per interface.

The lab host's kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is off: `tc qdisc add ... netem`
fails with "Specified qdisc kind is unknown"), so the delay is made here, in user space. A policy
rule per lab interface sends the packets that arrive on it to be forwarded into a TUN device; this
program holds each one for the delay, in order, and writes it back, and the kernel forwards it on
(so its TTL drops by two at this router). Packets for the router itself (BGP, pings) are
delivered by the `local` table first and never wait. The rate limit is the kernel's own: a tbf
qdisc on each lab interface.

    edge-link-shaper.py run ARGS     apply ARGS and serve the delay line; undo it all on SIGTERM
    edge-link-shaper.py check ARGS   exit 1 and say what differs unless the live state is ARGS

supervisord runs `run` (so a container restart shapes the links again, and stopping the program
unshapes them); a converge runs `check` (roles/link).
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import json
import os
import select
import signal
import stat
import struct
import subprocess
import sys
import time

TUN = "/dev/net/tun"
TUN_DEVICE_NUMBER = os.makedev(10, 200)   # Docker's default device rules allow it
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def ip_json(*args: str) -> list[dict]:
    out = subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out or "[]")


def run(*cmd: str, check: bool = True) -> None:
    subprocess.run(cmd, check=check, capture_output=True)


def interfaces(addresses: list[str]) -> list[str]:
    """The interfaces holding the lab addresses, looked up each time: Docker may rename them."""
    found = {a["local"]: link["ifname"] for link in ip_json("-4", "addr", "show")
             for a in link.get("addr_info", [])}
    missing = [a for a in addresses if a not in found]
    if missing:
        sys.exit(f"edge-link-shaper: no interface holds {', '.join(missing)}")
    return sorted(found[a] for a in addresses)


def root_qdisc(device: str) -> dict:
    out = subprocess.run(["tc", "-j", "qdisc", "show", "dev", device, "root"], check=True,
                         capture_output=True, text=True).stdout
    return (json.loads(out or "[]") or [{}])[0]


def clear_rules(priority: int) -> None:
    while subprocess.run(["ip", "rule", "del", "priority", str(priority)],
                         capture_output=True).returncode == 0:
        pass


def open_tun(name: str) -> int:
    if not os.path.exists(TUN):
        os.makedirs(os.path.dirname(TUN), exist_ok=True)
        os.mknod(TUN, 0o600 | stat.S_IFCHR, TUN_DEVICE_NUMBER)
    fd = os.open(TUN, os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def apply(args: argparse.Namespace, devices: list[str]) -> int | None:
    """Rate-limit every interface and, with a delay, route forwarded packets through the line."""
    for device in devices:
        if args.rate_kbit:
            run("tc", "qdisc", "replace", "dev", device, "root", "tbf", "rate",
                f"{args.rate_kbit}kbit", "burst", str(args.burst_bytes),
                "latency", f"{args.queue_ms}ms")
        else:
            run("tc", "qdisc", "del", "dev", device, "root", check=False)
    clear_rules(args.priority)
    if not args.delay_ms:
        return None
    fd = open_tun(args.device)
    run("ip", "link", "set", "dev", args.device, "up")
    run("ip", "route", "replace", "default", "dev", args.device, "table", str(args.table))
    for device in devices:
        run("ip", "rule", "add", "iif", device, "lookup", str(args.table),
            "priority", str(args.priority))
    return fd


def undo(args: argparse.Namespace, devices: list[str]) -> None:
    """Leave the links unshaped (the TUN device and its route go with this process)."""
    clear_rules(args.priority)
    if args.rate_kbit:
        for device in devices:
            run("tc", "qdisc", "del", "dev", device, "root", check=False)


def serve(fd: int, delay_s: float) -> None:
    """Write every packet back `delay_s` after it came in; a constant delay keeps the order."""
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    while True:
        wait = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([fd], [], [], wait)
        now = time.monotonic()
        while readable:
            try:
                held.append((now + delay_s, os.read(fd, 65535)))
            except BlockingIOError:
                break
        while held and held[0][0] <= now:
            try:
                os.write(fd, held.popleft()[1])
            except OSError:   # a packet the kernel refuses is lost, as on a real link
                pass


def check(args: argparse.Namespace, devices: list[str]) -> list[str]:
    """What differs between the live state and ARGS (empty when the links are shaped as asked)."""
    problems = []
    want = {"rate": args.rate_kbit * 1000 // 8, "burst": args.burst_bytes,
            "lat": args.queue_ms * 1000}
    for device in devices:
        qdisc = root_qdisc(device)
        shaped = qdisc.get("kind") == "tbf"
        if args.rate_kbit and not (shaped and all(qdisc["options"].get(k) == v
                                                  for k, v in want.items())):
            problems.append(f"{device}: root qdisc is {qdisc}, not tbf {want}")
        if not args.rate_kbit and shaped:
            problems.append(f"{device}: rate-limited, but no rate is set")
    rules = {(r.get("iif"), r.get("table")) for r in ip_json("rule", "show")
             if r.get("priority") == args.priority}
    wanted = {(d, str(args.table)) for d in devices} if args.delay_ms else set()
    if rules != wanted:
        problems.append(f"delay rules (priority {args.priority}) are {sorted(rules)}, "
                        f"not {sorted(wanted)}")
    if args.delay_ms:
        link = ip_json("link", "show")
        if not any(d["ifname"] == args.device and "UP" in d.get("flags", []) for d in link):
            problems.append(f"delay line {args.device} is not up")
        routes = ip_json("route", "show", "table", str(args.table))
        if not any(r.get("dst") == "default" and r.get("dev") == args.device for r in routes):
            problems.append(f"table {args.table} does not route into {args.device}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "check"])
    parser.add_argument("--addresses", required=True, help="the node's lab addresses, a,b,...")
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--rate-kbit", type=int, default=0)
    parser.add_argument("--burst-bytes", type=int, required=True)
    parser.add_argument("--queue-ms", type=int, required=True)
    parser.add_argument("--device", required=True, help="the delay line's TUN device")
    parser.add_argument("--table", type=int, required=True)
    parser.add_argument("--priority", type=int, required=True)
    args = parser.parse_args()
    devices = interfaces(args.addresses.split(","))
    if args.command == "check":
        problems = check(args, devices)
        print("\n".join(problems))
        return 1 if problems else 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        fd = apply(args, devices)
        print(f"shaping {', '.join(devices)}: delay {args.delay_ms} ms, "
              f"rate {args.rate_kbit or 'unlimited'} kbit", flush=True)
        if fd is None:
            signal.pause()
        else:
            serve(fd, args.delay_ms / 1000)
    finally:
        undo(args, devices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
