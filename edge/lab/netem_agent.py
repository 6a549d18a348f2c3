"""netem in user space: delay, loss and a rate limit on what one interface of a lab node sends.

The lab's kernel is built without the netem qdisc (CONFIG_NET_SCH_NETEM), so `tc qdisc ... netem`
fails in every container. This agent does netem's job with what the kernel has: a tc clsact egress
filter redirects (mirred) every frame the interface sends to a TAP device read here; each frame is
dropped with probability LOSS_PCT %, held DELAY_MS (after waiting its turn at RATE_BPS, if set),
then sent on the interface through a packet socket that bypasses the qdisc layer, so it is not
redirected again.

It is sent to the node as the program text of `python3 -c` (edge/lab/faults.py), so it imports only
the standard library. argv: INTERFACE TAP DELAY_MS LOSS_PCT RATE_BPS (0: no limit). Once the
redirect is in place it prints its pid, goes on in the background and the command returns. Undo:
delete the interface's clsact qdisc (frames go out directly again), then kill the pid (the TAP
device goes with it).
"""

from __future__ import annotations

import collections
import fcntl
import os
import random
import select
import socket
import stat
import struct
import subprocess
import sys
import time

TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
SOL_PACKET, PACKET_QDISC_BYPASS = 263, 20
LIMIT = 1000   # frames held at most (netem's default queue limit); more are dropped


def run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)}: {done.stderr.strip()}")


def main() -> None:
    iface, tap = sys.argv[1], sys.argv[2]
    delay, loss, rate = float(sys.argv[3]) / 1000, float(sys.argv[4]), float(sys.argv[5])
    try:
        if not os.path.exists("/dev/net/tun"):   # Docker allows the device but does not create it
            os.makedirs("/dev/net", exist_ok=True)
            os.mknod("/dev/net/tun", 0o600 | stat.S_IFCHR, os.makedev(10, 200))
        tun = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", tap.encode(), IFF_TAP | IFF_NO_PI))
        out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        out.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        out.bind((iface, 0))
        with open(f"/sys/class/net/{iface}/address") as f:
            own_mac = bytes.fromhex(f.read().strip().replace(":", ""))
    except OSError as err:   # e.g. the TAP name is taken: another fault shapes this interface
        sys.exit(f"cannot set up TAP {tap} on {iface}: {err}")
    run("ip", "link", "set", "dev", tap, "up")
    run("tc", "qdisc", "add", "dev", iface, "clsact")   # fails if a fault already holds it
    try:
        run("tc", "filter", "add", "dev", iface, "egress", "u32", "match", "u32", "0", "0",
            "action", "mirred", "egress", "redirect", "dev", tap)
    except SystemExit:
        subprocess.run(["tc", "qdisc", "del", "dev", iface, "clsact"], capture_output=True)
        raise
    if pid := os.fork():
        print(pid)
        return
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    free_at = 0.0
    while True:
        now = time.monotonic()
        while held and held[0][0] <= now:
            try:
                out.send(held.popleft()[1])
            except OSError:   # the interface is gone or full: the frame is lost, as on a wire
                pass
        if not select.select([tun], [], [], max(0.0, held[0][0] - now) if held else None)[0]:
            continue
        frame = os.read(tun, 65536)
        # Only what the node sent on the interface: never the TAP device's own chatter.
        if frame[6:12] != own_mac or len(held) >= LIMIT or random.random() * 100 < loss:
            continue
        now = time.monotonic()
        if rate:
            free_at = max(free_at, now) + len(frame) * 8 / rate
        held.append(((free_at if rate else now) + delay, frame))


if __name__ == "__main__":
    main()
