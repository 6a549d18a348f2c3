"""edge/model/scope.py decides which hosts a preview checks and stages, and which an apply converges
and rolls back: a host left out of the scope is never checked, and a rollback never reaches it.

Each rule is tried on a small roles tree written here (so the rules, not today's roles, are
under test), then the rule's premise on the project's own roles: a role's defaults are read only
by roles that run it, or a change of one would reach hosts the scope leaves out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from edge.model import scope
from edge.model.change import Change, load_change
from edge.model.lab import Lab, Node
from edge.model.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]

# A small tree: `web` and `router` run `filter` (a meta dependency, one by name and one as a
# mapping with vars), everyone runs `base` through their own dependencies, `link` runs on every
# host from site.yml.
ROLES = {
    "base": ({"base_motd": "hi"}, []),
    "filter": ({"filter_policy": "drop"}, ["base"]),
    "web": ({"web_port": 80}, ["base", {"role": "filter", "vars": {"filter_policy": "accept"}}]),
    "router": ({"router_asn": 65000}, ["filter"]),
    "dns": ({"dns_ttl": 300, "shared_timeout": 5}, ["base"]),
    "cache": ({"shared_timeout": 5}, ["base"]),
    "link": ({"link_rate": ""}, ["base"]),
    "plain": ({}, []),                          # no defaults, no meta: a role that sets nothing
}


def lab_of(ansible_roles: dict[str, str]) -> Lab:
    """A stack whose nodes run these Ansible roles: all that the scope reads of a stack."""
    return Lab("lab", 0, "paas.test", {}, {name: Node(name, role, role, "tier", name, name, {})
                                           for name, role in ansible_roles.items()})


LAB = lab_of({"web1": "web", "web2": "web", "r1": "router", "ns1": "dns", "c1": "cache",
              "p1": "plain"})


@pytest.fixture
def roles(tmp_path: Path) -> Path:
    for name, (defaults, deps) in ROLES.items():
        folder = tmp_path / "roles" / name
        folder.mkdir(parents=True)
        if defaults:
            (folder / "defaults").mkdir()
            (folder / "defaults" / "main.yml").write_text(yaml.safe_dump(defaults))
        if deps:
            (folder / "meta").mkdir()
            (folder / "meta" / "main.yml").write_text(yaml.safe_dump({"dependencies": deps}))
    # A name a role reads that no defaults define: what a change may set under new_vars.
    (tmp_path / "roles" / "web" / "templates").mkdir()
    (tmp_path / "roles" / "web" / "templates" / "site.conf.j2").write_text(
        "banner {{ web_banner | default('') }}\n")
    return tmp_path / "roles"


def setting(**variables: object) -> Change:
    return Change(Path("c.yaml"), "test", dict(variables))


def edit() -> Change:
    """A working-tree change (its changed files are passed to scope.hosts beside it)."""
    return Change(Path("."), "working tree", tree="0" * 40)


def test_a_role_runs_its_meta_dependencies_transitively(roles: Path) -> None:
    closure = scope.role_closure(roles)
    assert closure["web"] == {"web", "base", "filter"}
    assert closure["router"] == {"router", "filter", "base"}
    assert closure["plain"] == {"plain"}


def test_a_role_default_reaches_only_the_hosts_that_run_the_role(roles: Path) -> None:
    assert scope.hosts(setting(dns_ttl=60), [], LAB, roles) == ["ns1"]
    assert scope.hosts(setting(web_port=8080), [], LAB, roles) == ["web1", "web2"]


def test_a_default_of_a_dependency_reaches_every_host_whose_role_depends_on_it(
        roles: Path) -> None:
    assert scope.hosts(setting(filter_policy="accept"), [], LAB, roles) == ["r1", "web1",
                                                                               "web2"]
    # base: every role but `plain` depends on it.
    assert scope.hosts(setting(base_motd="x"), [], LAB, roles) == ["c1", "ns1", "r1",
                                                                      "web1", "web2"]


def test_a_variable_two_roles_define_reaches_the_hosts_of_both(roles: Path) -> None:
    assert scope.touched_roles(setting(shared_timeout=1), [], roles) == {"dns", "cache"}
    assert scope.hosts(setting(shared_timeout=1, web_port=1), [], LAB, roles) == [
        "c1", "ns1", "web1", "web2"]


@pytest.mark.parametrize("change", [
    setting(edge_api_name="x"),                 # an inventory group_vars variable
    setting(dns_ttl=60, edge_api_name="x"),     # with a role's: still every host
    setting(link_rate="1mbit"),                 # a role site.yml runs on every host
], ids=["group-vars", "group-vars-and-role", "everyones-role"])
def test_what_no_single_role_owns_reaches_every_host(roles: Path, change: Change) -> None:
    assert scope.touched_roles(change, [], roles) is None
    assert scope.hosts(change, [], LAB, roles) is None


def test_new_vars_are_defined_by_no_role_so_they_reach_every_host(roles: Path) -> None:
    """new_vars: a name a role reads but no defaults define, so the scope cannot tell whose it
    is (load_change merges them into the change's vars)."""
    path = roles.parent / "c.yaml"
    path.write_text("description: a banner\nnew_vars: {web_banner: hello}\n")
    change = load_change(path, root=roles.parent)
    assert change.vars == {"web_banner": "hello"}
    assert scope.hosts(change, [], LAB, roles) is None


def test_stopping_a_node_converges_no_host(roles: Path) -> None:
    """Stopping is infrastructure (Pulumi), not configuration: nothing to converge."""
    stop = Change(Path("c.yaml"), "stop ns1", stop=("ns1",))
    assert scope.touched_roles(stop, [], roles) == set()
    assert scope.hosts(stop, [], LAB, roles) == []


@pytest.mark.parametrize("files, hosts", [
    (["roles/dns/templates/zone.j2"], ["ns1"]),
    (["roles/filter/tasks/main.yml"], ["r1", "web1", "web2"]),
    (["roles/dns/defaults/main.yml", "roles/web/handlers/main.yml"], ["ns1", "web1", "web2"]),
    (["roles/link/tasks/main.yml"], None),                  # every host runs link
    (["inventory/group_vars/all.yml"], None),               # outside roles/: any host
    (["site.yml"], None),
    (["topology/reference.yaml"], None),
    (["roles/dns/templates/zone.j2", "site.yml"], None),    # one file outside roles/ is enough
    (["roles/README.md"], None),                            # not inside a role
    ([], None),                                             # nothing known: every host
], ids=["one-role", "dependency", "two-roles", "link", "inventory", "playbook", "topology",
        "mixed", "roles-readme", "no-files"])
def test_a_working_tree_change_is_scoped_by_the_paths_it_changes(
        roles: Path, files: list[str], hosts: list[str] | None) -> None:
    assert scope.hosts(edit(), files, LAB, roles) == hosts


def test_a_working_tree_change_ignores_its_variables(roles: Path) -> None:
    """A working-tree change is scoped by its files only (its vars belong to the revision)."""
    change = Change(Path("."), "working tree", {"edge_api_name": "x"}, tree="0" * 40)
    assert scope.hosts(change, ["roles/dns/tasks/main.yml"], LAB, roles) == ["ns1"]


# --- the project's own roles ---------------------------------------------------------------------

def reference_lab() -> Lab:
    """The reference topology's nodes with the Ansible role Pulumi's outputs give each."""
    topology = load_topology(ROOT / "topology" / "reference.yaml")
    return lab_of({name: topology.roles[node.role].ansible_role
                   for name, node in topology.nodes.items()})


def test_the_examples_reach_the_hosts_their_roles_run_on() -> None:
    lab, roles = reference_lab(), ROOT / "roles"
    routers = sorted(n for n, node in lab.nodes.items()
                     if node.ansible_role in ("border", "firewall"))
    assert scope.hosts(setting(dns_ttl=60), [], lab, roles) == ["ns1", "ns2"]
    assert scope.hosts(setting(firewall_allow=[]), [], lab, roles) == ["firewall"]
    assert scope.hosts(setting(nftables_input_icmp=False), [], lab, roles) == routers
    assert scope.hosts(setting(loadbalancer_public_network="paas"), [], lab,
                       roles) == ["lb1", "lb2"]
    # new-app-route sets a variable of inventory/group_vars/all.yml: every host.
    assert "edge_paas_apps" in yaml.safe_load((ROOT / "inventory/group_vars/all.yml").read_text())
    assert scope.hosts(setting(edge_paas_apps=[]), [], lab, roles) is None


def test_a_role_default_is_read_only_by_roles_that_run_it() -> None:
    """The premise of the scope: if a role's file read another role's default without running
    that role, a change of the default (an extra var, seen by every role) would change hosts the
    scope leaves out, and a rollback would not reach them."""
    roles = ROOT / "roles"
    closure = scope.role_closure(roles)
    leaks = []
    for owner in sorted(closure):
        for var in scope.role_defaults(roles, owner):
            word = re.compile(rf"(?<![\w.]){re.escape(var)}(?!\w)")
            leaks += [f"{path.relative_to(ROOT)} reads {var} of roles/{owner}/defaults"
                      for path in sorted(roles.glob("*/**/*"))
                      if path.is_file() and owner not in closure[path.relative_to(roles).parts[0]]
                      and word.search(path.read_text(errors="replace"))]
    assert leaks == []
