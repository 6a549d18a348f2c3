"""Signed alarm webhooks: HMAC-SHA256 over a timestamp and the body.

A webhook URL is easy to find and anybody on the way (or anybody who learns it) can post to it: an
unsigned alarm could be forged ("all clear" during an outage) or an old one replayed. With a key
shared between `edge watch --webhook-key FILE` and the receiver, every POST carries

    X-Edge-Timestamp: <Unix seconds>
    X-Edge-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the key>

so the receiver checks who sent it (the signature) and when (the timestamp is signed too, so a
replayed old alarm fails the age check). `verify` is the receiver's side, the same check the
README shows.
"""

from __future__ import annotations

import hashlib
import hmac
import stat
import time
from collections.abc import Mapping
from pathlib import Path

SIGNATURE_HEADER = "X-Edge-Signature"
TIMESTAMP_HEADER = "X-Edge-Timestamp"
SCHEME = "sha256="
MAX_AGE_S = 300          # how old (or how far ahead) a signed timestamp a receiver accepts
MIN_KEY_BYTES = 16       # shorter keys can be guessed; `head -c 32 /dev/urandom | base64` is 44
KEY_HOWTO = "Make one with `head -c 32 /dev/urandom | base64 > FILE && chmod 600 FILE`."


class WebhookKeyError(ValueError):
    """A webhook key file that cannot be used; the message names the file and the fix."""


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    """The X-Edge-Signature value of `body` sent at `timestamp`."""
    return SCHEME + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(key: bytes, body: bytes, now: float | None = None) -> dict[str, str]:
    """The two headers that sign `body` now (or at `now`, Unix seconds)."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(key, timestamp, body)}


def verify(key: bytes, headers: Mapping[str, str], body: bytes, max_age_s: float = MAX_AGE_S,
           now: float | None = None) -> bool:
    """Whether `body` was signed with `key` less than `max_age_s` ago (the receiver's check).

    The comparison takes constant time, so the signature cannot be guessed byte by byte.
    """
    timestamp, sent = headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
    if not timestamp.isdigit():
        return False
    age = (time.time() if now is None else now) - int(timestamp)
    return abs(age) <= max_age_s and hmac.compare_digest(signature(key, timestamp, body), sent)


def read_key(path: Path | str) -> bytes:
    """The key in file `path` (`--webhook-key FILE`): its bytes, surrounding whitespace removed,
    so `echo KEY > FILE` and a receiver reading the same file agree.

    A key others can read is no secret, so a file readable by its group or by everyone is
    refused, as ssh refuses such a private key.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        key = path.read_bytes().strip()
    except OSError as err:
        raise WebhookKeyError(f"{path}: cannot read the webhook key ({err.strerror}). "
                              f"{KEY_HOWTO}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise WebhookKeyError(f"{path}: the webhook key is readable by other users (mode "
                              f"{stat.S_IMODE(mode):04o}). Run `chmod 600 {path}`.")
    if len(key) < MIN_KEY_BYTES:
        raise WebhookKeyError(f"{path}: the webhook key has {len(key)} bytes, fewer than "
                              f"{MIN_KEY_BYTES}. {KEY_HOWTO}")
    return key
