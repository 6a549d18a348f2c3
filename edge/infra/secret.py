"""Random keys generated once per stack by Pulumi and kept only in the stack's encrypted state.

The pulumi-random provider plugin cannot be downloaded here, so this small dynamic resource does
its job: the value is made on create, stays the same on every later `pulumi up`, and is a Pulumi
secret (encrypted with the stack's passphrase, shown as [secret] in every output).

Every key of a stack is its own: no key is baked into the image, where every stack (and anyone
with the image) would share it. `stack_secrets` makes them all; the program exports the result as
the `secrets` output, which reaches Ansible only through the inventory of a converge
(EDGE_INVENTORY_SECRETS=1, inventory/edge_stack.py), never a file.
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


# Inventory variable -> the Pulumi resource name of its key (a renamed resource is a new key).
STACK_KEYS = {
    "edge_tsig_secret": "tsig-key",   # zone transfers between the name servers (roles/dns)
    "edge_rndc_secret": "rndc-key",   # rndc, the name servers' local control channel (roles/dns)
}


def stack_secrets() -> dict[str, pulumi.Output[str]]:
    """A 256-bit key (HMAC-SHA256) per entry of STACK_KEYS, as secret outputs: made on the
    stack's first `pulumi up` that knows it, the same on every later one."""
    return {var: SecretKey(name, size=32).value for var, name in STACK_KEYS.items()}
