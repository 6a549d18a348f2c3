"""The Ansible inventory built from stack outputs."""

from edge.model.inventory import inventory_from_outputs

OUTPUTS = {
    "stack": "lab", "slot": 0, "zone": "paas.test",
    "networks": {"dmz": {"docker_name": "edge-lab-dmz", "subnet": "198.18.2.0/24"}},
    "nodes": {
        "lb1": {"role": "loadbalancer", "ansible_role": "loadbalancer", "tier": "load balancing",
                "container": "edge-lab-lb1", "container_id": "abc",
                "addresses": {"dmz": "198.18.2.10", "paas": "10.64.0.10"},
                "link": {"delay_ms": 120, "rate_kbit": 2000}},
        "dea1": {"role": "dea", "ansible_role": "paas", "tier": "paas",
                 "container": "edge-lab-dea1", "container_id": "def",
                 "addresses": {"paas": "10.64.0.31"}},
    },
}


def test_groups_by_role_ansible_role_and_tier() -> None:
    inv = inventory_from_outputs(OUTPUTS)
    assert inv["role_loadbalancer"]["hosts"] == ["lb1"]
    assert inv["role_paas"]["hosts"] == ["dea1"] and inv["role_dea"]["hosts"] == ["dea1"]
    assert inv["tier_load_balancing"]["hosts"] == ["lb1"]
    assert set(inv["all"]["children"]) == {"role_loadbalancer", "role_dea", "role_paas",
                                           "tier_load_balancing", "tier_paas"}
    assert not set(inv["all"]["children"]) & set(OUTPUTS["nodes"])   # no group named as a host


def test_hosts_are_reached_through_the_docker_engine() -> None:
    hostvars = inventory_from_outputs(OUTPUTS)["_meta"]["hostvars"]
    assert hostvars["lb1"]["ansible_connection"] == "docker"
    assert hostvars["lb1"]["ansible_host"] == "edge-lab-lb1"
    assert hostvars["dea1"]["edge_ansible_role"] == "paas"
    assert hostvars["lb1"]["edge_addresses"]["dmz"] == "198.18.2.10"


def test_link_shaping_reaches_the_host_variables() -> None:
    hostvars = inventory_from_outputs(OUTPUTS)["_meta"]["hostvars"]
    assert hostvars["lb1"]["edge_link"] == {"delay_ms": 120, "rate_kbit": 2000}
    assert hostvars["dea1"]["edge_link"] is None   # unshaped, or a stack older than `link`


def test_lab_wide_facts_are_in_all() -> None:
    all_vars = inventory_from_outputs(OUTPUTS)["all"]["vars"]
    assert all_vars["edge_zone"] == "paas.test"
    assert all_vars["edge_nodes"]["dea1"] == {"role": "dea", "addresses": {"paas": "10.64.0.31"}}
    assert all_vars["edge_role_addresses"]["loadbalancer"] == {"dmz": ["198.18.2.10"],
                                                               "paas": ["10.64.0.10"]}
