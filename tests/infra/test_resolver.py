"""testinfra checks of the internet side's recursive resolver (unbound, stub zone for the lab).

Lookups run inside lab containers with dnspython, with the nameserver named explicitly: never
resolv.conf, never Docker's embedded DNS.
"""

from __future__ import annotations

import json
import shlex
import time

import pytest
import testinfra

from tests.lab_fixtures import Lab

# Run inside a container: python3 -c LOOKUP SERVER NAME... prints {name: [addresses] or error}.
LOOKUP = """
import json, sys
import dns.exception, dns.resolver
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [sys.argv[1]]
resolver.lifetime = 3
found = {}
for name in sys.argv[2:]:
    try:
        found[name] = sorted(r.address for r in resolver.resolve(name, "A"))
    except dns.exception.DNSException as err:
        found[name] = type(err).__name__
print(json.dumps(found))
"""


def host_of(lab: Lab, node: str):
    return testinfra.get_host(f"docker://{lab.container(node)}")


def lookup(lab: Lab, node: str, server: str, names: list[str]) -> dict:
    command = shlex.join(["python3", "-c", LOOKUP, server, *names])
    return json.loads(host_of(lab, node).check_output(command))


def lb_addresses(lab: Lab) -> list[str]:
    return sorted(node.address("dmz") for node in lab.view.with_role("loadbalancer"))


def service_names(lab: Lab) -> list[str]:
    zone = lab.view.zone
    return [f"api.{zone}", f"hello.apps.{zone}"]


def test_unbound_runs_listens_and_config_is_valid(lab: Lab) -> None:
    host = host_of(lab, "resolver")
    assert "RUNNING" in host.check_output("supervisorctl status unbound")
    address = lab.address("resolver", "internet")
    assert host.socket(f"udp://{address}:53").is_listening
    assert host.socket(f"tcp://{address}:53").is_listening
    check = host.run("unbound-checkconf /etc/unbound/unbound.conf")
    assert check.rc == 0, check.stdout + check.stderr


def test_client_resolves_the_services_through_the_resolver(lab: Lab) -> None:
    expected = {name: lb_addresses(lab) for name in service_names(lab)}
    deadline = time.monotonic() + 15   # the edge's routes (BGP) may still be settling
    while True:
        found = lookup(lab, "client", lab.address("resolver", "internet"), service_names(lab))
        if found == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert found == expected


@pytest.mark.parametrize("server", ["ns1", "ns2"])
def test_client_gets_the_same_answers_from_each_name_server(lab: Lab, server: str) -> None:
    found = lookup(lab, "client", lab.address(server, "dmz"), service_names(lab))
    assert found == {name: lb_addresses(lab) for name in service_names(lab)}


def test_names_outside_the_lab_fail_fast(lab: Lab) -> None:
    """No root server is reachable: the resolver answers SERVFAIL, it does not hang. The kind of
    failure tells, not a stop-watch around `docker exec` on a busy machine: an answer ends the
    lookup in NoNameservers, a resolver that hangs ends it in a timeout (LifetimeTimeout) once
    the client gives up (LOOKUP's `lifetime`)."""
    found = lookup(lab, "client", lab.address("resolver", "internet"), ["example.com"])
    assert found == {"example.com": "NoNameservers"}


def test_recursion_is_refused_outside_the_internet_network(lab: Lab) -> None:
    # The border has an address in both networks: asking from its transit address is refused.
    border = host_of(lab, "border")
    out = border.check_output(f"dig +time=2 +tries=1 -b {lab.address('border', 'transit')} "
                              f"@{lab.address('resolver', 'internet')} api.{lab.view.zone}")
    assert "status: REFUSED" in out, out
