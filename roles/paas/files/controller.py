#!/usr/bin/env python3
"""PaaS controller: the API that knows which app instances run where and whether they are alive.

Execution nodes (DEAs) post a heartbeat per app instance every few seconds; the controller keeps
the last one in SQLite on its state volume and calls an instance healthy while its heartbeat is
younger than --stale-after seconds.

The storage can be lost under a running controller (the 2011 incident: the API went down, the apps
kept serving). The controller therefore opens the database per request, never creates it (a
missing file is lost storage, not a first start: `--init` creates it, run once by Ansible) and
answers 503 with a JSON error while it is unusable, instead of exiting and crash-looping under
supervisord. It recovers by itself when the file is back.

    GET  /healthz          200 "ok" if the database is readable and writable, else 503 (JSON)
    GET  /v1/apps          {"apps": [{"name", "instances", "healthy_instances", "healthy"}]}
    GET  /v1/apps/<name>   {"name", "healthy", "stale_after", "instances": [{"instance", "node",
                            "port", "age", "healthy"}]}
    POST /v1/heartbeat     {"node", "app", "instance", "port"} -> 200 {"ok": true}
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import sys
import time
import urllib.request
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance  TEXT PRIMARY KEY,
    app       TEXT NOT NULL,
    node      TEXT NOT NULL,
    port      INTEGER NOT NULL,
    last_seen REAL NOT NULL          -- controller's clock when the last heartbeat arrived
);
-- One row, rewritten by /healthz: proves the storage still takes writes.
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL);
"""
HEARTBEAT_FIELDS = {"node": str, "app": str, "instance": str, "port": int}


class StorageError(Exception):
    """The database cannot be opened, read or written: the API answers 503 until it can."""


class Store:
    """The controller's SQLite state; one short-lived connection per call."""

    def __init__(self, path: str, stale_after: float) -> None:
        self.path = path
        self.stale_after = stale_after
        self._lost: str | None = None   # last storage error, logged once per outage

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # mode=rw: never create the file; a vanished database must stay visibly lost.
        uri = f"file:{urllib.request.pathname2url(self.path)}?mode=rw"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=2)) as conn:
                # No fsync per commit: heartbeats and health checks write every second, and
                # on a busy host a commit's fsync held GET /v1/apps past the watchdog's
                # timeout. The rows are soft state that the next heartbeat rewrites.
                conn.execute("PRAGMA synchronous=OFF")
                with conn:   # commit on success, roll back on error
                    yield conn
        except (sqlite3.Error, OSError) as err:
            self._note(f"storage unavailable: {err}")
            raise StorageError(str(err)) from err
        self._note(None)

    def _note(self, problem: str | None) -> None:
        """Log storage outages and recoveries once each, not once per request."""
        if problem != self._lost:
            print(problem or "storage available again", file=sys.stderr, flush=True)
            self._lost = problem

    def init(self) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as conn:
            conn.executescript(SCHEMA)

    def check(self) -> None:
        with self._db() as db:
            db.execute("SELECT count(*) FROM instances").fetchone()
            db.execute("INSERT OR REPLACE INTO probe (id, at) VALUES (1, ?)", (time.time(),))

    def heartbeat(self, beat: dict[str, Any]) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO instances (instance, app, node, port, last_seen)"
                " VALUES (:instance, :app, :node, :port, :now)"
                " ON CONFLICT (instance) DO UPDATE SET app = :app, node = :node, port = :port,"
                " last_seen = :now", beat | {"now": time.time()})

    def instances(self, app: str | None = None) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT instance, app, node, port, last_seen FROM instances"
                " WHERE ?1 IS NULL OR app = ?1 ORDER BY app, node, instance", (app,)).fetchall()
        now = time.time()
        return [{"instance": i, "app": a, "node": n, "port": p, "age": round(now - seen, 1),
                 "healthy": now - seen <= self.stale_after} for i, a, n, p, seen in rows]


class Server(ThreadingHTTPServer):
    # Heartbeats and two load balancers' health checks arrive together: more than the default 5.
    request_queue_size = 64


class Api(BaseHTTPRequestHandler):
    """HTTP front of the Store; every answer is JSON except the plain "ok" of /healthz."""

    store: Store
    apps: list[str]   # the configured apps, listed even before their first heartbeat

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            if path == "/healthz":
                self.store.check()
                self._send(HTTPStatus.OK, b"ok\n", "text/plain")
            elif path == "/v1/apps":
                self._json(HTTPStatus.OK, {"apps": self._apps()})
            elif path.startswith("/v1/apps/"):
                self._app(path.removeprefix("/v1/apps/"))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})
        except StorageError as err:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE,
                       {"error": "storage unavailable", "db": self.store.path, "detail": str(err)})

    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/v1/heartbeat":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            beat = json.loads(self.rfile.read(length))
            beat = {key: kind(beat[key]) for key, kind in HEARTBEAT_FIELDS.items()}
        except (ValueError, KeyError, TypeError) as err:
            self._json(HTTPStatus.BAD_REQUEST,
                       {"error": f"a heartbeat is JSON with {sorted(HEARTBEAT_FIELDS)}: {err!r}"})
            return
        try:
            self.store.heartbeat(beat)
        except StorageError as err:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE,
                       {"error": "storage unavailable", "db": self.store.path, "detail": str(err)})
            return
        self._json(HTTPStatus.OK, {"ok": True})

    def _apps(self) -> list[dict[str, Any]]:
        instances = self.store.instances()
        names = sorted(set(self.apps) | {i["app"] for i in instances})
        summary = []
        for name in names:
            mine = [i for i in instances if i["app"] == name]
            healthy = sum(i["healthy"] for i in mine)
            summary.append({"name": name, "instances": len(mine), "healthy_instances": healthy,
                            "healthy": healthy > 0})
        return summary

    def _app(self, name: str) -> None:
        instances = self.store.instances(name)
        if not instances and name not in self.apps:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such app: {name}"})
            return
        for instance in instances:
            del instance["app"]
        self._json(HTTPStatus.OK, {"name": name, "healthy": any(i["healthy"] for i in instances),
                                   "stale_after": self.store.stale_after,
                                   "instances": instances})

    def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode() + b"\n", "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Heartbeats and health checks arrive several times a second: log only failures, and
        # not each 503 of a storage outage (the Store logs the outage once).
        if int(code) >= 400 and int(code) != HTTPStatus.SERVICE_UNAVAILABLE:
            super().log_request(code, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLite file on the state volume")
    parser.add_argument("--init", action="store_true", help="create the database and exit")
    parser.add_argument("--address", help="address to listen on (the node's paas address)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--stale-after", type=float, default=10.0,
                        help="seconds after which an instance without heartbeat is unhealthy")
    parser.add_argument("--app", action="append", default=[], help="a configured app (repeat)")
    args = parser.parse_args()
    store = Store(args.db, args.stale_after)
    if args.init:
        store.init()
        return
    Api.store, Api.apps = store, args.app
    server = Server((args.address, args.port), Api)
    print(f"controller on {args.address}:{args.port}, db {args.db}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
