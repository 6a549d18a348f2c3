"""A change's variables are data: only the roles' variables, rendered by edge in a sandbox, and
handed to Ansible so that it never templates them again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar
from ansible.utils.collection_loader import AnsibleCollectionConfig

from edge.model.change import (
    BY_HOST,
    FILTERS,
    ChangeError,
    ansible_extra_vars,
    forbidden,
    inventory_host_vars,
    load_change,
    mark_unsafe,
    render_vars,
    vocabulary,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "changes" / "examples").glob("*.yaml"))
OUTPUTS: dict[str, Any] = {
    "stack": "lab", "slot": 0, "zone": "paas.test",
    "networks": {"dmz": {"subnet": "198.18.2.0/24"}, "paas": {"subnet": "10.64.0.0/24"}},
    "nodes": {
        "lb1": {"role": "loadbalancer", "ansible_role": "loadbalancer", "tier": "load balancing",
                "container": "edge-lab-lb1", "addresses": {"dmz": "198.18.2.10",
                                                           "paas": "10.64.0.10"}},
        "ns1": {"role": "dns", "ansible_role": "dns", "tier": "dns", "container": "edge-lab-ns1",
                "addresses": {"dmz": "198.18.2.53"}},
    },
    "secrets": {"edge_tsig_secret": "c2VjcmV0"},
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "change.yaml"
    path.write_text(text)
    return path


def fails(path: Path, words: str, root: Path = ROOT) -> str:
    with pytest.raises(ChangeError) as err:
        load_change(path, root=root)
    message = str(err.value)
    assert message.startswith(f"{path}:") and words in message, message
    return message


# --- which names a change may set ---------------------------------------------------------------

def test_vocabulary_is_the_roles_defaults_and_the_group_vars() -> None:
    words = vocabulary()
    assert words.defined["dns_ttl"] == "roles/dns/defaults/main.yml"
    assert words.defined["edge_paas_apps"] == "inventory/group_vars"
    assert "edge_zone" not in words.defined            # the stack's data, not a setting
    assert {"edge_zone", "edge_api_name", "edge_nodes", "inventory_hostname"} <= words.readable
    assert not {n for n in words.readable if n.startswith("ansible_")}
    assert "edge_tsig_secret" not in words.readable
    assert {"dns_live_zone", "paas_confs", "site_supervisor"} & words.set_at_run_time


@pytest.mark.parametrize("name", [
    "ansible_host", "ansible_connection", "ansible_python_interpreter", "ansible_become",
    "edge_ansible_role", "hostvars", "groups", "group_names", "inventory_hostname", "omit",
    "playbook_dir", "environment", "vars", "role_name", "role_path", "item", BY_HOST, "_x",
])
def test_ansible_names_are_forbidden(tmp_path: Path, name: str) -> None:
    assert forbidden(name)
    fails(write(tmp_path, f"description: x\nvars:\n  {name}: 1\n"),
          f":3: vars.{name}: a change may not set '{name}'")


def test_forbidden_explains_why() -> None:
    assert "connection" in (forbidden.__doc__ or "") and forbidden("dns_ttl") is None


def test_an_unknown_variable_suggests_the_nearest(tmp_path: Path) -> None:
    message = fails(write(tmp_path, "description: x\nvars: {dns_tll: 60}\n"),
                    ":2: vars.dns_tll: no role default or group_vars defines 'dns_tll'. "
                    "Did you mean 'dns_ttl'?")
    assert "`new_vars:`" in message


@pytest.fixture
def roles(tmp_path: Path) -> Path:
    """A tree with one role: a template reading web_banner (with a default) and a loop
    variable, a task registering a result, group_vars with one variable."""
    root = tmp_path / "tree"
    for folder, text in {
        "roles/web/defaults/main.yml": "web_port: 80\n",
        "roles/web/templates/site.j2": "{{ web_banner | default('') }}\n"
                                       "{% for rule in web_rules | default([]) %}{{ rule }}"
                                       "{% endfor %}\n",
        "roles/web/tasks/main.yml": "- ansible.builtin.command: 'true'\n  register: web_result\n",
        "roles/web/files/app.py": "web_secret_word = 1\n",
        "inventory/group_vars/all.yml": "edge_site: demo\n",
    }.items():
        (root / folder).parent.mkdir(parents=True, exist_ok=True)
        (root / folder).write_text(text)
    return root


def test_new_vars_are_names_a_role_reads(roles: Path, tmp_path: Path) -> None:
    change = load_change(write(tmp_path, "description: x\nnew_vars: {web_banner: hi}\n"
                                         "vars: {web_port: 81, edge_site: '{{ edge_zone }}'}\n"),
                         root=roles)
    assert change.vars == {"web_banner": "hi", "web_port": 81, "edge_site": "{{ edge_zone }}"}


@pytest.mark.parametrize("name,words", [
    ("web_nothing", "no role reads 'web_nothing', so setting it would change nothing"),
    ("web_secret_word", "no role reads 'web_secret_word'"),   # files/ is code, not Ansible's
    ("web_port", "'web_port' is already defined in roles/web/defaults/main.yml. Set it under "
                 "`vars:` instead."),
    ("web_result", "the roles set 'web_result' themselves while they run"),
    ("rule", "the roles set 'rule' themselves while they run"),
    ("hostvars", "a change may not set 'hostvars'"),
    ("Web-Banner", "'Web-Banner' is not a variable name"),
])
def test_new_vars_refused(roles: Path, tmp_path: Path, name: str, words: str) -> None:
    fails(write(tmp_path, f"description: x\nnew_vars:\n  {name}: 1\n"),
          f":3: new_vars.{name}: {words}", roles)


# --- values: templates rendered in a sandbox ----------------------------------------------------

def test_every_example_loads_and_renders_on_every_host() -> None:
    hosts = inventory_host_vars(OUTPUTS)
    for path in EXAMPLES:
        change = load_change(path)
        rendered = render_vars(change.vars, hosts)
        assert set(rendered) == ({"lb1", "ns1"} if change.vars else set()), path
        assert "{{" not in json.dumps(rendered), path
    record = load_change(ROOT / "changes" / "examples" / "dns-record.yaml")
    assert render_vars(record.vars, hosts)["ns1"] == {
        "dns_service_names": ["api", "*.apps", "status"]}


def test_lookup_is_refused_when_the_file_is_loaded_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "x"
    for value in (f"{{{{ lookup('ansible.builtin.pipe', 'touch {marker}; echo 300') }}}}",
                  f"{{{{ query('ansible.builtin.pipe', 'touch {marker}') }}}}",
                  f"{{{{ q('pipe', 'touch {marker}') }}}}"):
        path = write(tmp_path, f'description: x\nvars:\n  dns_ttl: "{value}"\n')
        fails(path, ":3: vars.dns_ttl: calls ")
        with pytest.raises(ChangeError, match="cannot be rendered"):
            render_vars({"dns_ttl": value}, inventory_host_vars(OUTPUTS))
    assert not marker.exists()


def test_inventory_host_vars_are_what_ansible_would_give_minus_connection_and_secrets() -> None:
    hosts = inventory_host_vars(OUTPUTS)
    lb1 = hosts["lb1"]
    assert lb1["inventory_hostname"] == "lb1" and lb1["edge_zone"] == "paas.test"
    assert lb1["edge_addresses"] == {"dmz": "198.18.2.10", "paas": "10.64.0.10"}
    assert lb1["edge_api_name"] == "api"                    # inventory/group_vars/all.yml
    assert not [k for k in lb1 if k.startswith("ansible_")]
    assert "edge_tsig_secret" not in lb1 and "secrets" not in lb1


def test_render_is_per_host_and_keeps_types() -> None:
    hosts = inventory_host_vars(OUTPUTS)
    rendered = render_vars({
        "a": "{{ inventory_hostname | upper }}.{{ edge_zone }}",
        "b": "{{ edge_addresses | list | sort }}",
        "c": "{{ edge_http_port + 1 }}",
        "d": ["{{ edge_api_name }}", {"n": "{{ edge_nodes | length }}"}, 7, None],
        "e": "{{ edge_nodes | dictsort | map('first') | join(',') }}",
        "f": "{{ edge_link | default('none', true) }}",
    }, hosts)
    assert rendered["lb1"] == {"a": "LB1.paas.test", "b": ["dmz", "paas"], "c": 81,
                               "d": ["api", {"n": 2}, 7, None], "e": "lb1,ns1", "f": "none"}
    assert rendered["ns1"]["a"] == "NS1.paas.test" and rendered["ns1"]["b"] == ["dmz"]


@pytest.mark.parametrize("value,words", [
    ("{{ edge_missing }}", "'edge_missing' is undefined"),
    ("x {{ edge_nodes.nowhere }}", "has no attribute 'nowhere'"),
    ("{{ 'x' * 100000 }}", "makes more than 65536"),
    ("{{ 2 ** 100000 }}", "has more than 4096 bits"),
    ("{{ '%99999999s' % 1 }}", "'%' formatting is not available"),
    ("{{ 'a' | replace('a', 'aaaaaaaaaa') | replace('a', 'aaaaaaaaaa') | replace('a', 'aaaaaaaaaa')"
     " | replace('a', 'aaaaaaaaaa') | replace('a', 'aaaaaaaaaa') }}", "longer than 65536"),
    ("{{ edge_nodes.items }}", "which is not data"),
    ("{{ 1 // 0 }}", "ZeroDivisionError"),
    ("{{ edge_zone.__class__ }}", "SecurityError"),    # the sandbox, had the load not refused it
])
def test_render_errors_name_variable_and_host(value: str, words: str) -> None:
    with pytest.raises(ChangeError) as err:
        render_vars({"dns_ttl": value}, {"ns1": inventory_host_vars(OUTPUTS)["ns1"]})
    message = str(err.value)
    assert message.startswith("vars.dns_ttl: on host ns1, its value cannot be rendered (")
    assert words in message and message.endswith("Fix the expression, or set a plain value."), \
        message


def test_only_pure_filters_are_allowed() -> None:
    assert not {"pipe", "b64decode", "from_yaml", "to_json", "attr", "format", "regex_replace",
                "password_hash", "tojson", "random"} & set(FILTERS)


# --- handing the rendered values to Ansible -----------------------------------------------------

def test_plain_values_need_no_host_vars() -> None:
    def no_lab() -> dict[str, dict[str, Any]]:
        raise AssertionError("host variables asked for a change without templates")

    assert ansible_extra_vars({"dns_ttl": 60, "dns_primary": "ns2"}, no_lab) == {
        "dns_ttl": 60, "dns_primary": {"__ansible_unsafe": "ns2"}}


def test_mark_unsafe_wraps_every_string() -> None:
    assert mark_unsafe({"a": ["x", 1, {"b": "y"}], "c": True}) == {
        "a": [{"__ansible_unsafe": "x"}, 1, {"b": {"__ansible_unsafe": "y"}}], "c": True}


def ansible_reads(tmp_path: Path, extra: dict[str, Any], host: str) -> Templar:
    """A Templar over the extra vars as ansible-playbook reads ansible-runner's env/extravars
    (a JSON file loaded as trusted templates: ansible.utils.vars.load_extra_vars)."""
    if AnsibleCollectionConfig.collection_finder is None:
        init_plugin_loader()        # as ansible-playbook does: lookups resolve as in a run
    path = tmp_path / "extravars"
    path.write_text(json.dumps(extra))
    data = DataLoader().load_from_file(str(path), trusted_as_template=True)
    return Templar(loader=DataLoader(), variables=data | {"inventory_hostname": host})


def test_ansible_gets_rendered_values_per_host(tmp_path: Path) -> None:
    extra = ansible_extra_vars({"dns_service_names": ["{{ edge_api_name }}", "*.x"],
                                "dns_primary": "{{ inventory_hostname }}"},
                               lambda: inventory_host_vars(OUTPUTS))
    assert extra["dns_service_names"] == mark_unsafe(["api", "*.x"])   # the same everywhere
    assert set(extra[BY_HOST]) == {"lb1", "ns1"}                        # differs per host
    for host in ("lb1", "ns1"):
        templar = ansible_reads(tmp_path, extra, host)
        assert templar.template(templar.available_variables["dns_service_names"]) == \
            ["api", "*.x"]
        assert templar.template(templar.available_variables["dns_primary"]) == host


def test_ansible_never_templates_a_rendered_value_again(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = f"{{{{ lookup('ansible.builtin.pipe', 'touch {marker}; echo 300') }}}}"
    # A value that renders to a template (built from text, so no lookup in the change itself).
    built = "{{ '{' ~ '{' }} lookup('ansible.builtin.pipe', 'touch " + str(marker) + \
        "; echo 300') {{ '}' ~ '}' }}"
    extra = ansible_extra_vars({"dns_ttl": built, "dns_primary": evil.replace("{{", "{ {")},
                               lambda: inventory_host_vars(OUTPUTS))
    templar = ansible_reads(tmp_path, extra, "ns1")
    assert templar.template(templar.available_variables["dns_ttl"]) == evil
    assert not marker.exists()
    # The check is a real one: the same text, trusted, does run.
    templar = ansible_reads(tmp_path, {"dns_ttl": evil}, "ns1")
    assert templar.template(templar.available_variables["dns_ttl"]) == "300"
    assert marker.exists()
