#!/usr/bin/env python3
"""Ansible dynamic inventory of one lab stack, built from its Pulumi stack outputs.

Groups by role (border, firewall, loadbalancer, dns, ...) and by tier; every host is reached
through the Docker engine (community.docker.docker), never over the lab network. The stack is
EDGE_STACK (default: lab); EDGE_STATE points at another Pulumi state folder (tests use their own). The stack's secrets are
included only with EDGE_INVENTORY_SECRETS=1 (set by edge's converge).

    EDGE_STACK=staging ansible-inventory -i inventory/edge_stack.py --graph
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.engines.stack import STATE, Backend, outputs  # noqa: E402
from edge.model.inventory import inventory_from_outputs  # noqa: E402


def main() -> None:
    stack = os.environ.get("EDGE_STACK", "lab")
    backend = Backend(state=Path(os.environ.get("EDGE_STATE", STATE)))
    if len(sys.argv) > 1 and sys.argv[1] == "--host":
        print("{}")   # every host variable is in _meta of --list
        return
    # The stack's secrets (the TSIG key) only when the converge asks for them: an inventory
    # listed by hand, or by a tool, never shows them.
    secrets = os.environ.get("EDGE_INVENTORY_SECRETS") == "1"
    print(json.dumps(inventory_from_outputs(outputs(stack, backend, secrets=secrets)), indent=1))


if __name__ == "__main__":
    main()
