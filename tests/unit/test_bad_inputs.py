"""A catalog of bad inputs to every data file (change files, topology, contract, replays).

Each one must give exactly one error of the file's own class, on one line, in the form
`<file>:<line>: <field>: <what is wrong>. <what to do>.`, never a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from edge.model.change import ChangeError, load_change
from edge.model.contract import ContractError, load_contract
from edge.model.datafile import MAX_BYTES
from edge.model.topology import TopologyError, load_topology
from edge.workflow.replay import ReplayError, load_catalog

NODES = {"ns1", "ns2", "lb1", "lb2", "border"}
LOADERS: dict[str, tuple[Callable[[Path], object], type[ValueError]]] = {
    "change": (lambda path: load_change(path, NODES), ChangeError),
    "topology": (load_topology, TopologyError),
    "contract": (load_contract, ContractError),
    "replays": (load_catalog, ReplayError),
}
CHANGE = "description: a change\n"
TOPOLOGY = "zone: paas.test\naddress_plan: {public: 198.18.0.0/16, internal: 10.64.0.0/16}\n"
CONTRACT = "flows:\n  - name: web\n    from: client\n    must: work\n"
REPLAYS = "replays:\n  outage:\n    description: x\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"l{i}: &l{i} [" + ", ".join([f"*{'a' if i == 1 else f'l{i - 1}'}"] * 10) + "]\n"
    for i in range(1, 9))


@dataclass(frozen=True)
class Bad:
    """One bad input: the file's kind, its text, and what its one error must say."""

    kind: str
    text: str | bytes
    line: int
    # None: the message names no field, as for YAML syntax and the topology's and contract's
    # whole-file messages (which also say what is wrong and what to do in a single sentence).
    field: str | None
    words: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.words[:40]}"


CATALOG = [
    # --- any data file: the strict loader ---------------------------------------------------
    Bad("change", CHANGE + "vars:\n  dns_ttl: 60\n  dns_ttl: 6000\n", 4, "vars.dns_ttl",
        "duplicate key 'dns_ttl' (first on line 3)"),
    Bad("change", CHANGE + "vars: {dns_ttl: 60}\nvars: {dns_ttl: 1}\n", 3, "vars",
        "duplicate key 'vars'"),
    Bad("change", CHANGE + "vars: {dns_primary: !!binary bnMx}\n", 2, "vars.dns_primary",
        "the tag !!binary is not plain data"),
    Bad("change", CHANGE + "vars: {dns_service_names: !!set {api, www}}\n", 2,
        "vars.dns_service_names", "the tag !!set is not plain data"),
    Bad("change", CHANGE + "vars:\n  edge_paas_apps: !!omap [{hello: 1}]\n", 3,
        "vars.edge_paas_apps", "the tag !!omap is not plain data"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: !unsafe '{{ x }}'}\n", 2,
        "vars.dns_hostmaster", "the tag !unsafe is not plain data"),
    Bad("change", CHANGE + "vars: {dns_ttl: !!python/object/apply:os.system [id]}\n", 2,
        "vars.dns_ttl", "!!python/object/apply:os.system is not plain data"),
    Bad("change", "description: 2026-12-02\nvars: {dns_ttl: 60}\n", 1, "description",
        "2026-12-02 reads as a date, not as text. Quote it: '2026-12-02'"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: 2026-12-02 10:00:00}\n", 2,
        "vars.dns_hostmaster", "reads as a date"),
    Bad("change", CHANGE + LAUGHS, 2, None, "more than 100000 values once its *aliases are "
        "expanded"),
    Bad("change", CHANGE + "vars: {dns_service_names: &n [a, *n]}\n", 2,
        "vars.dns_service_names[1]", "an *alias refers to a value that contains it"),
    Bad("change", CHANGE + "base: &b {dns_ttl: 60}\nvars:\n  <<: *b\n", 4, "vars",
        "a merge key `<<`"),
    Bad("change", CHANGE + "vars:\n  ? [dns_ttl]\n  : 60\n", 3, "vars", "a key is a list"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: '" + "x" * MAX_BYTES + "'}\n", 1, "file",
        "more than the 1048576 bytes (1 MiB)"),
    Bad("change", CHANGE.encode() + b"vars: {dns_hostmaster: h\xf6stmaster}\n", 2, "file",
        "byte 46 (0xf6) is not UTF-8 text. Save the file as UTF-8"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"a\x00b\"}\n", 2, "file",
        "the character #x0000 is not allowed"),
    Bad("change", CHANGE + "vars: {dns_ttl: [60}\n", 2, None, "not valid YAML"),
    Bad("change", CHANGE + "vars:\n\tdns_ttl: 60\n", 3, None, "not valid YAML"),
    Bad("change", CHANGE + "vars: {dns_ttl: 60}\n---\nstop: [ns1]\n", 3, None,
        "expected a single document"),
    Bad("change", CHANGE + "vars: {dns_ttl: *ttl}\n", 2, None, "found undefined alias 'ttl'"),
    # --- a change file's shape ----------------------------------------------------------------
    Bad("change", "", 1, "file", "a change is a mapping"),
    Bad("change", "- dns_ttl: 60\n", 1, "file", "a change is a mapping"),
    Bad("change", "vars: {dns_ttl: 60}\n", 1, "description", "missing"),
    Bad("change", CHANGE + "vars: {dns_ttl: 60}\nvarz: {}\n", 3, "varz", "unknown key"),
    Bad("change", CHANGE + "vars: [dns_ttl, 60]\n", 2, "vars", "expected a mapping, found a list"),
    Bad("change", CHANGE + "vars: dns_ttl=60\n", 2, "vars", "expected a mapping, found a string"),
    Bad("change", CHANGE, 1, "vars", "the change changes nothing"),
    Bad("change", CHANGE + "stop: ns1\n", 2, "stop", "expected a list of node names"),
    Bad("change", CHANGE + "stop: [ns9]\n", 2, "stop", "no node ['ns9'] in the stack"),
    Bad("change", CHANGE + "stop: [ns1]\nexpect: fine\n", 3, "expect",
        "'fine' is neither safe nor unsafe"),
    # --- a change's variable names ----------------------------------------------------------------
    Bad("change", CHANGE + "vars: {ansible_host: 127.0.0.1}\n", 2, "vars.ansible_host",
        "names starting with 'ansible_' belong to Ansible"),
    Bad("change", CHANGE + "vars: {ansible_connection: local}\n", 2, "vars.ansible_connection",
        "a change may not set 'ansible_connection'"),
    Bad("change", CHANGE + "vars: {hostvars: {}}\n", 2, "vars.hostvars",
        "'hostvars' is one of Ansible's own variables"),
    Bad("change", CHANGE + "vars: {inventory_hostname: lb2}\n", 2, "vars.inventory_hostname",
        "a change may not set 'inventory_hostname'"),
    Bad("change", CHANGE + "vars: {edge_ansible_role: vantage}\n", 2, "vars.edge_ansible_role",
        "names starting with 'edge_ansible_'"),
    Bad("change", CHANGE + "vars: {omit: 1}\n", 2, "vars.omit", "a change may not set 'omit'"),
    Bad("change", CHANGE + "vars: {dns_tll: 60}\n", 2, "vars.dns_tll",
        "no role default or group_vars defines 'dns_tll'. Did you mean 'dns_ttl'?"),
    Bad("change", CHANGE + "vars: {edge_zone: evil.test}\n", 2, "vars.edge_zone",
        "no role default or group_vars defines 'edge_zone'"),
    Bad("change", CHANGE + "vars: {DNS_TTL: 60}\n", 2, "vars.DNS_TTL", "is not a variable name"),
    Bad("change", CHANGE + "vars: {60: dns_ttl}\n", 2, "vars.60", "is not a variable name"),
    Bad("change", CHANGE + "new_vars: {dns_nothing_reads_me: 1}\n", 2,
        "new_vars.dns_nothing_reads_me", "no role reads 'dns_nothing_reads_me'"),
    Bad("change", CHANGE + "new_vars: {dns_ttl: 60}\n", 2, "new_vars.dns_ttl",
        "already defined in roles/dns/defaults/main.yml. Set it under `vars:` instead"),
    Bad("change", CHANGE + "new_vars: {dns_live_zone: {}}\n", 2, "new_vars.dns_live_zone",
        "the roles set 'dns_live_zone' themselves while they run"),
    Bad("change", CHANGE + "new_vars: {ansible_become: true}\n", 2, "new_vars.ansible_become",
        "a change may not set 'ansible_become'"),
    # --- a change's values: data, rendered by edge, running nothing ---------------------------
    Bad("change", CHANGE + "vars:\n  dns_ttl: \"{{ lookup('ansible.builtin.pipe', "
        "'touch /tmp/x; echo 300') }}\"\n", 3, "vars.dns_ttl",
        "calls lookup(): a change file can run nothing"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ query('pipe', 'id') }}\"}\n", 2,
        "vars.dns_hostmaster", "calls query()"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ lookup }}\"}\n", 2,
        "vars.dns_hostmaster", "unknown variable 'lookup' (a change file can run nothing)"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ 'id' | pipe }}\"}\n", 2,
        "vars.dns_hostmaster", "the filter 'pipe' is not available here"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ edge_zone | b64decode }}\"}\n", 2,
        "vars.dns_hostmaster", "the filter 'b64decode' is not available here"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ edge_zone | attr('upper') }}\"}\n", 2,
        "vars.dns_hostmaster", "the filter 'attr' is not available here"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ edge_zone.__class__.__mro__ }}\"}\n",
        2, "vars.dns_hostmaster", "reads the private attribute '__mro__'"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ edge_nodes['__class__'] }}\"}\n", 2,
        "vars.dns_hostmaster", "reads the private attribute '__class__'"),
    Bad("change", CHANGE + "vars:\n  dns_service_names: [\"{{ edge_nodes | map(attribute="
        "'__class__') | list }}\"]\n", 3, "vars.dns_service_names[0]",
        "reads the private attribute '__class__'"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ edge_zone.upper() }}\"}\n", 2,
        "vars.dns_hostmaster", "calls upper()"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ range(9) | join }}\"}\n", 2,
        "vars.dns_hostmaster", "calls range()"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ no_such_name }}\"}\n", 2,
        "vars.dns_hostmaster", "unknown variable 'no_such_name'"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ edge_zon }}\"}\n", 2,
        "vars.dns_hostmaster", "unknown variable 'edge_zon'. Did you mean 'edge_zone'?"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ edge_tsig_secret }}\"}\n", 2,
        "vars.dns_hostmaster", "unknown variable 'edge_tsig_secret'"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ ansible_host }}\"}\n", 2,
        "vars.dns_hostmaster", "unknown variable 'ansible_host'"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ self }}\"}\n", 2,
        "vars.dns_hostmaster", "unknown variable 'self'"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{% for x in edge_nodes %}{{ x }}"
        "{% endfor %}\"}\n", 2, "vars.dns_hostmaster", "uses a {% statement %}"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{% include '/etc/passwd' %}\"}\n", 2,
        "vars.dns_hostmaster", "uses a {% statement %}"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ edge_zone \"}\n", 2,
        "vars.dns_hostmaster", "not a valid template"),
    Bad("change", CHANGE + "vars: {dns_hostmaster: \"{{ edge_zone is match('x') }}\"}\n", 2,
        "vars.dns_hostmaster", "No test named 'match'"),
    Bad("change", CHANGE + "vars:\n  edge_paas_apps:\n    - {__ansible_vault: x}\n", 4,
        "vars.edge_paas_apps[0].__ansible_vault", "'__ansible_vault' is not usable as a key"),
    Bad("change", CHANGE + "vars:\n  edge_paas_apps:\n    - {\"{{ edge_zone }}\": 1}\n", 4,
        "vars.edge_paas_apps[0].{{ edge_zone }}", "is not usable as a key"),
    # --- topology ---------------------------------------------------------------------------
    Bad("topology", "", 1, None, "the file must be a mapping with zone"),
    Bad("topology", "- zone: paas.test\n", 1, None, "the file must be a mapping with zone"),
    Bad("topology", "zone: paas.test\nzone: paas.example.com\n", 2, "zone",
        "duplicate key 'zone'"),
    Bad("topology", "zone: paas.example.com\n", 1, "zone",
        "is not a zone under the reserved .test TLD"),
    Bad("topology", TOPOLOGY + "nodez: {}\n", 3, "nodez", "unknown top-level key"),
    Bad("topology", "zone: paas.test\naddress_plan: [198.18.0.0/16]\n", 2, "address_plan",
        "expected a mapping, found a list"),
    Bad("topology", "zone: !!binary cGFhcy50ZXN0\n", 1, "zone", "the tag !!binary"),
    # --- contract ---------------------------------------------------------------------------
    Bad("contract", "", 1, None, "the contract needs a `flows:` list"),
    Bad("contract", "- name: web\n", 1, None, "the contract needs a `flows:` list"),
    Bad("contract", CONTRACT + "    must: block\n", 5, "flows[0].must",
        "duplicate key 'must' (first on line 4)"),
    Bad("contract", CONTRACT.replace("must: work", "must: maybe"), 4, "flows[0].must",
        "'maybe' is neither work nor block"),
    Bad("contract", CONTRACT, 2, "flows[0]", "needs exactly one of"),
    Bad("contract", CONTRACT + "    tcp: {to: {role: lb, network: dmz}, port: '80'}\n", 5,
        "flows[0].tcp.port", "a tcp flow needs a port number"),
    Bad("contract", "defaults: {timeout_s: 2}\nflows: !!set {web}\n", 2, "flows",
        "the tag !!set is not plain data"),
    # --- replays ----------------------------------------------------------------------------
    Bad("replays", "", 1, "replays", "expected a mapping, found nothing"),
    Bad("replays", "- outage\n", 1, "replays", "expected a mapping, found nothing"),
    Bad("replays", REPLAYS + "    inject: [{fault: explode, node: lb1}]\n", 4,
        "replays.outage.inject[0].fault", "unknown fault 'explode'"),
    Bad("replays", REPLAYS + "    inject: [{fault: kill}]\n", 4, "replays.outage.inject[0]",
        "a fault needs `fault:` and `node:`"),
    Bad("replays", REPLAYS + "    inject: [{fault: kill, node: lb1}]\n"
        "    expect: {class: PANIC, service: api, within_s: 3}\n", 5,
        "replays.outage.expect.class", "'PANIC' is no alarm class"),
    Bad("replays", REPLAYS + "    inject: [{fault: kill, node: lb1}]\n"
        "    expect: {class: DEGRADED, service: api, within_s: 3, within_s: 300}\n", 5,
        "replays.outage.expect.within_s", "duplicate key 'within_s'"),
    Bad("replays", REPLAYS + "    inject: [{fault: kill, node: lb1}]\n"
        "    expect: {class: DEGRADED, service: api, within_s: 2026-12-02}\n", 5,
        "replays.outage.expect.within_s", "reads as a date"),
]


def test_the_catalog_is_large_and_covers_every_kind_of_file() -> None:
    assert len(CATALOG) >= 50
    assert {bad.kind for bad in CATALOG} == set(LOADERS)


@pytest.mark.parametrize("bad", CATALOG, ids=str)
def test_bad_input_gives_one_clear_error(tmp_path: Path, bad: Bad) -> None:
    path = tmp_path / f"{bad.kind}.yaml"
    path.write_bytes(bad.text if isinstance(bad.text, bytes) else bad.text.encode())
    load, error = LOADERS[bad.kind]
    with pytest.raises(ValueError) as raised:
        load(path)
    message = str(raised.value)
    assert type(raised.value) is error, f"{type(raised.value).__name__}: {message}"
    where = f"{path}:{bad.line}: " + (f"{bad.field}: " if bad.field else "")
    assert message.startswith(where), message
    assert bad.words in message, message
    # One sentence saying what is wrong, one saying what to do; one line, no traceback.
    if bad.field:
        assert re.fullmatch(r"[^\n]+\. [A-Z`'(][^\n]*\.", message[len(where):]), message
    assert "\n" not in message and "Traceback" not in message and len(message) < 1200, message
