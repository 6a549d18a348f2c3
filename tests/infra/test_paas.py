"""testinfra checks of the sample PaaS (roles/paas): the controller's API and its SQLite state,
the app instances and heartbeat agents of the execution nodes (DEAs).

HTTP is always sent from inside the lab (the `inside` vantage node, on the PaaS network), never
from this machine. The storage-loss test replays the 2011 incident (API down, apps up) and puts
the database back whatever happens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import testinfra
import yaml

from tests.conftest import ROOT, Lab

FACTS = yaml.safe_load((ROOT / "inventory" / "group_vars" / "all.yml").read_text())
DEFAULTS = yaml.safe_load((ROOT / "roles" / "paas" / "defaults" / "main.yml").read_text())
API_PORT = FACTS["edge_paas_api_port"]
APPS = FACTS["edge_paas_apps"]
DB = DEFAULTS["paas_db"]
DEAS = ["dea1", "dea2"]
PROGRAMS = {"controller": ["paas-controller"],
            **{dea: ["paas-heartbeat"] + [f"paas-app-{app['name']}" for app in APPS]
               for dea in DEAS}}
T = TypeVar("T")


def host_of(lab: Lab, node: str):
    return testinfra.get_host(f"docker://{lab.container(node)}")


def get(lab: Lab, url: str) -> tuple[int, str]:
    """GET from the `inside` node: (status, body)."""
    out = host_of(lab, "inside").check_output(f"curl -s -m 3 -w '\\n%{{http_code}}' {url}")
    body, _, status = out.rpartition("\n")
    return int(status), body.rstrip("\n")


def api(lab: Lab, path: str) -> tuple[int, str]:
    return get(lab, f"http://{lab.address('controller', 'paas')}:{API_PORT}{path}")


def eventually(probe: Callable[[], T], ok: Callable[[T], bool], seconds: float = 15) -> T:
    """Poll `probe` until `ok` holds for its result (heartbeats arrive every few seconds)."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if ok(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def app_state(lab: Lab, app: str) -> dict[str, Any]:
    status, body = api(lab, f"/v1/apps/{app}")
    return json.loads(body) | {"status": status}


def all_fresh(state: dict[str, Any], within: float) -> bool:
    """One healthy instance per DEA, each heard from within `within` seconds."""
    instances = state.get("instances") or []
    return (state["status"] == 200 and sorted(i["node"] for i in instances) == DEAS
            and all(i["healthy"] and i["age"] <= within for i in instances))


@pytest.mark.parametrize("node", sorted(PROGRAMS))
def test_programs_run_under_supervisord(lab: Lab, node: str) -> None:
    host = host_of(lab, node)
    for program in PROGRAMS[node]:
        assert host.supervisor(program).is_running, host.check_output("supervisorctl status")


def test_controller_listens_on_its_paas_address_with_state_on_the_volume(lab: Lab) -> None:
    host = host_of(lab, "controller")
    assert host.socket(f"tcp://{lab.address('controller', 'paas')}:{API_PORT}").is_listening
    assert host.mount_point(DB.rsplit("/", 1)[0]).exists
    assert host.file(DB).is_file
    assert api(lab, "/healthz") == (200, "ok")


@pytest.mark.parametrize("node", DEAS)
def test_dea_instances_listen_on_their_paas_address(lab: Lab, node: str) -> None:
    host = host_of(lab, node)
    for app in APPS:
        assert host.socket(f"tcp://{lab.address(node, 'paas')}:{app['port']}").is_listening


@pytest.mark.parametrize("app", [a["name"] for a in APPS])
def test_heartbeats_of_both_deas_are_fresh(lab: Lab, app: str) -> None:
    state = eventually(lambda: app_state(lab, app),
                       lambda s: all_fresh(s, DEFAULTS["paas_stale_after"]))
    assert all_fresh(state, DEFAULTS["paas_stale_after"]), state
    listed = {a["name"]: a for a in json.loads(api(lab, "/v1/apps")[1])["apps"]}
    assert (listed[app]["healthy"], listed[app]["healthy_instances"]) == (True, len(DEAS))


@pytest.mark.parametrize("app", APPS, ids=lambda a: a["name"])
def test_each_dea_answers_with_its_own_instance(lab: Lab, app: dict[str, Any]) -> None:
    state = eventually(lambda: app_state(lab, app["name"]),
                       lambda s: all_fresh(s, DEFAULTS["paas_stale_after"]))
    for instance in state["instances"]:
        node = instance["node"]
        status, body = get(lab, f"http://{lab.address(node, 'paas')}:{app['port']}/")
        assert status == 200
        assert f"app={app['name']} instance={instance['instance']} node={node}" in body
        assert get(lab, f"http://{lab.address(node, 'paas')}:{app['port']}/healthz") == (200, "ok")


def test_storage_loss_takes_the_api_down_but_not_the_apps(lab: Lab, breaks_the_lab: None) -> None:
    """The database vanishes from the volume: 503 with a JSON reason, no restart of the
    controller, the apps keep answering; once the file is back, everything is healthy again."""
    controller = host_of(lab, "controller")
    assert api(lab, "/healthz") == (200, "ok"), "the lab must be healthy before the test"
    pids = {(node, p): host_of(lab, node).supervisor(p).pid
            for node, programs in PROGRAMS.items() for p in programs}
    lost = f"{DB}.lost-by-test"
    logs = {dea: f"{DEFAULTS['paas_log_dir']}/paas-heartbeat.log" for dea in DEAS}
    seen = {dea: int(host_of(lab, dea).check_output(f"stat -c %s {log}"))
            for dea, log in logs.items()}

    def refused_beats() -> int:
        """Instances whose heartbeat the controller refused since the storage went (each DEA
        logs the change of outcome once per instance)."""
        return sum(host_of(lab, dea).check_output(f"tail -c +{seen[dea] + 1} {log}")
                   .count("controller answered 503") for dea, log in logs.items())

    controller.check_output(f"mv {DB} {lost}")
    try:
        status, body = api(lab, "/healthz")
        assert status == 503
        assert json.loads(body)["error"] == "storage unavailable"
        assert api(lab, "/v1/apps")[0] == 503
        # Every instance's heartbeats keep arriving and failing; nothing may crash or restart.
        everyone = len(DEAS) * len(APPS)
        assert eventually(refused_beats, lambda n: n >= everyone, 30) >= everyone
        assert api(lab, "/healthz")[0] == 503
        for node in DEAS:
            for app in APPS:
                status, body = get(lab, f"http://{lab.address(node, 'paas')}:{app['port']}/")
                assert status == 200 and body.startswith(f"app={app['name']} "), (node, body)
        assert {key: host_of(lab, key[0]).supervisor(key[1]).pid for key in pids} == pids
    finally:
        controller.check_output(f"test ! -e {lost} || mv {lost} {DB}")
    assert eventually(lambda: api(lab, "/healthz"), lambda r: r == (200, "ok")) == (200, "ok")
    for app in APPS:
        # Fresh heartbeats again: heard from within two intervals, not just not yet stale.
        within = 2 * DEFAULTS["paas_heartbeat_interval"]
        state = eventually(lambda: app_state(lab, app["name"]), lambda s: all_fresh(s, within))
        assert all_fresh(state, within), state
