"""Turn a stack's Pulumi outputs into an Ansible inventory (pure data in, pure data out)."""

from __future__ import annotations

from typing import Any

from edge.model.topology import LOCAL

CONNECTION = {
    # `docker` is community.docker.docker (docker exec through the engine); under the Mitogen
    # strategy of site.yml it becomes Mitogen's docker connection, which works the same way.
    "ansible_connection": "docker",
    "ansible_python_interpreter": "/usr/bin/python3",
    "ansible_user": "root",
}


def role_addresses(nodes: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """role -> network -> addresses of that role's nodes there (sorted by node name).

    Roles address their peers by function ("the load balancers' dmz addresses"), never by a
    written address, because every stack moves the addresses.
    """
    found: dict[str, dict[str, list[str]]] = {}
    for _, node in sorted(nodes.items()):
        for network, address in node["addresses"].items():
            found.setdefault(node["role"], {}).setdefault(network, []).append(address)
    return found


def docker_host(node: dict[str, Any]) -> str:
    """How Ansible names a node's container: its name, or on a spread stack, for a node on
    another engine, NAME@URL (NAME@URL|CA|CERT|KEY with TLS files), which the converge's `docker`
    (edge/engines/bin/docker) runs on that engine."""
    endpoint = node.get("endpoint") or {}
    if isinstance(endpoint, str):   # stacks spread before the TLS files were in the outputs
        endpoint = {"url": endpoint}
    url = endpoint.get("url", LOCAL)
    if url == LOCAL:
        return node["container"]
    tls = [endpoint[k] for k in ("ca", "cert", "key") if endpoint.get(k)]
    return "|".join([f"{node['container']}@{url}", *tls])


def inventory_from_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """Groups by role and tier, host variables from the topology, lab-wide facts in `all`."""
    nodes = outputs.get("nodes") or {}
    groups: dict[str, dict[str, Any]] = {}
    hostvars = {}
    for name, node in sorted(nodes.items()):
        # Prefixed, so that no group shares a name with a host (border, firewall, ...).
        for group in {f"role_{node['role']}", f"role_{node['ansible_role']}",
                      "tier_" + node["tier"].replace(" ", "_")}:
            groups.setdefault(group, {"hosts": []})["hosts"].append(name)
        hostvars[name] = CONNECTION | {
            "ansible_host": docker_host(node),
            "edge_role": node["role"],
            "edge_ansible_role": node["ansible_role"],
            "edge_tier": node["tier"],
            "edge_addresses": node["addresses"],
            # How the node's links are shaped (roles/link); stacks brought up before the topology
            # had `link` have no such output.
            "edge_link": node.get("link"),
        }
    all_vars = {
        "edge_stack": outputs.get("stack"),
        "edge_slot": outputs.get("slot"),
        "edge_zone": outputs.get("zone"),
        "edge_networks": outputs.get("networks") or {},
        "edge_nodes": {n: {"role": v["role"], "addresses": v["addresses"]}
                       for n, v in nodes.items()},
        "edge_role_addresses": role_addresses(nodes),
    } | (outputs.get("secrets") or {})
    return {"all": {"children": sorted(groups), "vars": all_vars},
            **groups, "_meta": {"hostvars": hostvars}}
