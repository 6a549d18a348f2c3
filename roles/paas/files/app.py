#!/usr/bin/env python3
"""Sample app instance, as a DEA runs it: says which app and which instance answered.

The body names the instance so that a probe from outside (through the load balancers) can tell
which execution node served it, and whether traffic still reaches the apps while the controller
is down. It depends on nothing else in the PaaS: apps keep serving whatever the API does.

    GET /         200 text/plain "app=<app> instance=<instance id> node=<node>"
    GET /healthz  200 text/plain "ok"
    GET /bytes/N  200 application/octet-stream, exactly N bytes (0 <= N <= MAX_BYTES)

/bytes/N is an answer that needs many full-size packets: the contract fetches 64 KiB through the
edge, so a router that cannot forward them (a lower MTU that path MTU discovery never learns) is
seen as a broken flow, which the small answers above never show.
"""

from __future__ import annotations

import argparse
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The largest /bytes/N answer: enough for any path MTU test, small enough that no request can
# make an instance hold much memory.
MAX_BYTES = 1 << 20
# What /bytes/N repeats: printable, so a cut-short body is readable in a capture.
PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyz\n"


class Server(ThreadingHTTPServer):
    # Client traffic and two load balancers' health checks: a longer queue than the default 5.
    request_queue_size = 64


class Instance(BaseHTTPRequestHandler):
    """Answers GET (and HEAD, for health checkers that use it) on /, /healthz and /bytes/N."""

    identity: bytes   # the body of GET /

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._reply(HTTPStatus.OK, self.identity)
        elif path == "/healthz":
            self._reply(HTTPStatus.OK, b"ok\n")
        elif path.startswith("/bytes/") and path[7:].isdigit() and int(path[7:]) <= MAX_BYTES:
            size = int(path[7:])
            body = (PATTERN * (size // len(PATTERN) + 1))[:size]
            self._reply(HTTPStatus.OK, body, "application/octet-stream")
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"not found\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _reply(self, status: HTTPStatus, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Load balancers check every second: log only failures.
        if int(code) >= 400:
            super().log_request(code, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", required=True)
    parser.add_argument("--instance", required=True, help="instance id, unique in the PaaS")
    parser.add_argument("--node", required=True)
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    Instance.identity = f"app={args.app} instance={args.instance} node={args.node}\n".encode()
    server = Server((args.address, args.port), Instance)
    print(f"{args.instance} on {args.address}:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
