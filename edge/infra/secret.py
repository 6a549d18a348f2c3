"""A random key generated once by Pulumi and kept only in the stack's encrypted state.

The pulumi-random provider plugin cannot be downloaded here, so this small dynamic resource does
its job: the value is made on create, stays the same on every later `pulumi up`, and is a Pulumi
secret (encrypted with the stack's passphrase, shown as [secret] in every output).
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider


class SecretKeyProvider(ResourceProvider):
    """Makes `bytes` random bytes, base64-encoded (the form TSIG keys take)."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        value = base64.b64encode(secrets.token_bytes(int(props["bytes"]))).decode()
        return CreateResult(f"key-{secrets.token_hex(4)}", {"bytes": props["bytes"],
                                                            "value": value})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = olds.get("bytes") != news.get("bytes")
        return DiffResult(changes=changed, replaces=["bytes"] if changed else [])

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)   # nothing outside the state to compare with


class SecretKey(Resource, module="edge", name="SecretKey"):
    """A generated key; `value` is a secret output."""

    value: pulumi.Output[str]

    def __init__(self, resource_name: str, *, size: int = 32,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["value"]))
        super().__init__(SecretKeyProvider(), resource_name, {"bytes": size, "value": None}, opts)
