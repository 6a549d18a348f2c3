"""Signed alarm webhooks: what `edge watch --webhook-key` sends, checked by a receiver on the
loopback interface, both with edge's own `verify` and with the README's snippet (so the
documentation a receiver copies stays right)."""

from __future__ import annotations

import os
import queue
import re
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

from edge.lab import signing
from edge.lab.events import Alarm, Event
from edge.lab.watch import webhook_sink

README = Path(__file__).resolve().parents[2] / "README.md"
KEY = b"k" * 32
ALARM = Event(1.5, "alarm", alarm=Alarm("EXTERNAL OUTAGE", "apps", ("http-app-at-lb@lb1",)))
Received = tuple[dict[str, str], bytes]


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue[Received]]]:
    """A webhook receiver on 127.0.0.1 (never another interface): its URL and what it got, the
    headers and the raw body of each POST."""
    got: queue.Queue[Received] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.put((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


def posted(url: str, got: queue.Queue[Received], key: bytes | None) -> Received:
    """Send one alarm through the webhook sink and wait for the receiver to have it."""
    webhook_sink(url, key)(ALARM, [ALARM.alarm])
    return got.get(timeout=5)


def readme_verify() -> Callable[..., bool]:
    """The `verify` function of the README's "Least privilege and secrets" snippet."""
    text = README.read_text()
    section = text[text.index("### Least privilege and secrets"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code, "no python snippet in the README's Least privilege and secrets section"
    assert len(code.group(1).splitlines()) <= 6, "the README promises a 6-line check"
    namespace: dict[str, object] = {}
    exec(code.group(1), namespace)   # the README's own text: what receivers copy
    return namespace["verify"]  # type: ignore[return-value]


def test_a_keyed_webhook_is_signed_and_verifies(receiver) -> None:
    url, got = receiver
    before = int(time.time())
    headers, body = posted(url, got, KEY)
    assert before <= int(headers[signing.TIMESTAMP_HEADER]) <= time.time() + 1
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", headers[signing.SIGNATURE_HEADER])
    assert signing.verify(KEY, headers, body)
    assert readme_verify()(KEY, headers, body)
    assert b'"class": "EXTERNAL OUTAGE"' in body


@pytest.mark.parametrize("what,change", [
    ("another body", lambda key, h, body: (key, h, body.replace(b"lb1", b"lb2"))),
    ("another key", lambda key, h, body: (b"x" * 32, h, body)),
    ("another timestamp", lambda key, h, body: (
        key, h | {signing.TIMESTAMP_HEADER: str(int(h[signing.TIMESTAMP_HEADER]) - 1)}, body)),
    ("no signature", lambda key, h, body: (
        key, {k: v for k, v in h.items() if k != signing.SIGNATURE_HEADER}, body)),
    ("no timestamp", lambda key, h, body: (
        key, {k: v for k, v in h.items() if k != signing.TIMESTAMP_HEADER}, body)),
])
def test_a_forged_alarm_fails_both_checks(receiver, what: str, change) -> None:
    url, got = receiver
    headers, body = posted(url, got, KEY)
    forged = change(KEY, headers, body)
    assert not signing.verify(*forged), what
    assert not readme_verify()(*forged), what


def test_a_replayed_alarm_is_too_old() -> None:
    body = b'{"kind": "clear"}'
    sent = time.time() - signing.MAX_AGE_S - 5
    headers = signing.signed_headers(KEY, body, now=sent)
    assert signing.verify(KEY, headers, body, now=sent + 1)
    assert not signing.verify(KEY, headers, body)
    assert not readme_verify()(KEY, headers, body)


def test_without_a_key_nothing_is_signed(receiver) -> None:
    url, got = receiver
    headers, _ = posted(url, got, None)
    assert signing.SIGNATURE_HEADER not in headers and signing.TIMESTAMP_HEADER not in headers


def test_the_key_file_is_read_without_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "webhook.key"
    path.write_bytes(KEY + b"\n")
    path.chmod(0o600)
    assert signing.read_key(path) == KEY


@pytest.mark.parametrize("content,mode,words", [
    (None, 0o600, "cannot read the webhook key (No such file or directory). Make one with"),
    (KEY, 0o640, "is readable by other users (mode 0640). Run `chmod 600"),
    (KEY, 0o604, "is readable by other users (mode 0604)"),
    (b"short\n", 0o600, "has 5 bytes, fewer than 16. Make one with"),
])
def test_an_unusable_key_file_is_one_clear_error(tmp_path: Path, content: bytes | None,
                                                 mode: int, words: str) -> None:
    path = tmp_path / "webhook.key"
    if content is not None:
        path.write_bytes(content)
        os.chmod(path, mode)
    with pytest.raises(signing.WebhookKeyError) as err:
        signing.read_key(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and words in message, message
    assert "\n" not in message
