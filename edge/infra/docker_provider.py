"""Docker networks, volumes and containers as Pulumi dynamic resources over the Docker SDK.

The pulumi-docker provider plugin cannot be built or downloaded here, so these three providers do
its job for the lab. Pulumi pickles a provider object with dill and runs it in a separate process,
so providers hold no state: every method opens its own Docker client. `diff` receives the old
*outputs*, so only input keys are compared; `read` reports what the engine really has, which is
how `pulumi refresh` notices a container stopped or removed by hand.
"""

from __future__ import annotations

import ipaddress
import re
import time
from typing import Any, Callable

import docker
import docker.errors
import pulumi
from docker.types import IPAMConfig, IPAMPool, Mount
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from edge.infra import bridge_filter
from edge.infra.engines import client_for
from edge.model.plan import LABEL_PROJECT, LABEL_STACK
from edge.model.topology import Endpoint

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
START_GRACE_S = 0.5   # a container whose entrypoint fails (e.g. a bad route) exits within this
ATTACH_FAILED = "attaching to network failed"   # a worker's overlay attachment timed out
ATTACH_TRIES = 3
VXLAN_OVERHEAD = 50   # bytes an overlay's VXLAN header takes from the underlay's frames
MTU_OPTION = "com.docker.network.driver.mtu"
DETACH_WAIT_S = 60   # how long an overlay's delete waits for Swarm to drop its attachment tasks

Props = dict[str, Any]
Validator = Callable[[Any], str | None]


def _client(props: Props | None = None) -> docker.DockerClient:
    """A client of the engine the resource lives on: its `endpoint` input, or the local one."""
    return client_for(Endpoint.from_props((props or {}).get("endpoint")))


def _is_name(value: Any) -> str | None:
    if isinstance(value, str) and DOCKER_NAME.match(value):
        return None
    return f"'{value}' is not a Docker object name (letters, digits, '_', '.', '-')"


def _is_ipv4(value: Any) -> str | None:
    try:
        ipaddress.IPv4Address(str(value))
        return None
    except ValueError:
        return f"'{value}' is not an IPv4 address"


def _is_labels(value: Any) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return "labels must map text to text"
    missing = [k for k in (LABEL_PROJECT, LABEL_STACK) if not value.get(k)]
    return f"labels {missing} are required, so leftovers can be found by label" if missing else None


def _is_map_of(check: Validator, what: str) -> Validator:
    def validate(value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"expected a mapping of {what}"
        return next((f"{k}: {err}" for k, v in value.items() if (err := check(v))), None)
    return validate


def _is_list_of(check: Validator, what: str) -> Validator:
    def validate(value: Any) -> str | None:
        if not isinstance(value, (list, tuple)):
            return f"expected a list of {what}"
        return next((err for v in value if (err := check(v))), None)
    return validate


def _is_text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else f"'{value}' is not non-empty text"


def _is_abs_path(value: Any) -> str | None:
    return None if isinstance(value, str) and value.startswith("/") else \
        f"'{value}' is not an absolute path"


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"'{value}' is not true or false"


def _is_endpoint(value: Any) -> str | None:
    """None (the local engine) or an Endpoint's props (edge/infra/engines.py)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("url"), str) or \
            set(value) != set(Endpoint().props()):
        return f"'{value}' is not an engine endpoint ({', '.join(Endpoint().props())})"
    return None


def _is_mtu(value: Any) -> str | None:
    """None (a bridge network) or the MTU of an overlay's interfaces (Pulumi sends numbers as
    floats: a whole one is taken)."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                         and float(value).is_integer() and 1280 <= value <= 9000 - VXLAN_OVERHEAD):
        return None
    return f"'{value}' is not an MTU from 1280 to {9000 - VXLAN_OVERHEAD}"


class _DockerProvider(ResourceProvider):
    """Shared check/diff/read logic; subclasses say how to create, observe and delete."""

    serialize_as_secret_always = False
    schema: dict[str, Validator] = {}       # every input, with its validator
    updatable: frozenset[str] = frozenset()  # inputs changed in place; all others replace

    def check(self, _olds: Props, news: Props) -> CheckResult:
        failures = [CheckFailure(key, err) for key, validate in self.schema.items()
                    if (err := validate(news.get(key)))]
        failures += self.check_more(news)
        return CheckResult(news, failures)

    def check_more(self, _news: Props) -> list[CheckFailure]:
        """Checks that span several inputs."""
        return []

    def diff(self, _id: str, olds: Props, news: Props) -> DiffResult:
        changed = [k for k in self.schema if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed),
                          replaces=[k for k in changed if k not in self.updatable],
                          delete_before_replace=True)  # names are fixed: the old one must go first

    def create(self, props: Props) -> CreateResult:
        client = _client(props)
        id_ = self.create_in(client, props)
        return CreateResult(id_, self.outputs(client, id_, props) or {})

    def read(self, id_: str, props: Props) -> ReadResult:
        outs = self.outputs(_client(props), id_, props)
        return ReadResult(id_, outs) if outs is not None else ReadResult("", {})

    def outputs(self, client: docker.DockerClient, id_: str, props: Props) -> Props | None:
        """`observe`, with the engine it was asked of (where later calls must go, too)."""
        outs = self.observe(client, id_, props)
        return None if outs is None else outs | {"endpoint": props.get("endpoint")}

    def create_in(self, client: docker.DockerClient, props: Props) -> str:
        raise NotImplementedError

    def observe(self, client: docker.DockerClient, id_: str, props: Props) -> Props | None:
        """The resource's outputs as the engine has it now, or None if it is gone."""
        raise NotImplementedError


class NetworkProvider(_DockerProvider):
    """An internal network with a fixed subnet: no NAT, no egress, by construction. A bridge on
    one engine; with `mtu`, an attachable Swarm overlay that containers on every member engine
    join, its interfaces `mtu` bytes (the underlay's frames minus VXLAN's header)."""

    schema = {"name": _is_name, "subnet": _is_text, "gateway": _is_ipv4, "internal": _is_bool,
              "labels": _is_labels, "mtu": _is_mtu, "ip_range": lambda v: None if v is None
              else _is_text(v), "endpoint": _is_endpoint}

    def check_more(self, news: Props) -> list[CheckFailure]:
        failures = []
        if news.get("internal") is not True:
            failures.append(CheckFailure("internal", "lab networks must be internal (no egress)"))
        try:
            subnet = ipaddress.IPv4Network(str(news.get("subnet")))
        except ValueError as err:
            return failures + [CheckFailure("subnet", f"'{news.get('subnet')}' is not an IPv4 "
                                                      f"prefix ({err})")]
        if _is_ipv4(news.get("gateway")) is None and \
                ipaddress.IPv4Address(news["gateway"]) not in subnet:
            failures.append(CheckFailure("gateway", f"{news['gateway']} is outside {subnet}"))
        if news.get("ip_range") and not ipaddress.IPv4Network(news["ip_range"]).subnet_of(subnet):
            failures.append(CheckFailure("ip_range", f"{news['ip_range']} is outside {subnet}"))
        return failures

    def create_in(self, client: docker.DockerClient, props: Props) -> str:
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=props["subnet"], gateway=props["gateway"],
                                                 iprange=props.get("ip_range"))])
        if props.get("mtu"):
            if not (client.info().get("Swarm") or {}).get("ControlAvailable"):
                raise RuntimeError(f"network {props['name']}: the stack has nodes on another "
                                   "engine, so its networks are Swarm overlays, and this engine "
                                   "is no Swarm manager: run `edge swarm init` and `edge swarm "
                                   "join` first.")
            options = {MTU_OPTION: str(int(props["mtu"]) + VXLAN_OVERHEAD)}
            return client.api.create_network(props["name"], driver="overlay", internal=True,
                                             attachable=True, scope="swarm", options=options,
                                             labels=props["labels"], ipam=ipam)["Id"]
        id_ = client.api.create_network(props["name"], driver="bridge", internal=True,
                                        labels=props["labels"], ipam=ipam)["Id"]
        bridge_filter.allow_within(bridge_filter.bridge_name(id_))
        return id_

    def observe(self, client: docker.DockerClient, id_: str, props: Props) -> Props | None:
        try:
            net = client.api.inspect_network(id_)
        except docker.errors.NotFound:
            return None
        mtu = None
        if net.get("Driver") == "overlay":
            mtu = int((net.get("Options") or {}).get(MTU_OPTION, 1500)) - VXLAN_OVERHEAD
        else:
            bridge_filter.allow_within(bridge_filter.bridge_name(id_))   # e.g. lost with the host's iptables
        pool = (net.get("IPAM", {}).get("Config") or [{}])[0]
        return {"name": net["Name"], "subnet": pool.get("Subnet"), "gateway": pool.get("Gateway"),
                "internal": net.get("Internal", False), "labels": net.get("Labels") or {},
                "mtu": mtu, "ip_range": pool.get("IPRange") or None, "network_id": net["Id"]}

    def delete(self, id_: str, props: Props) -> None:
        client = _client(props)
        deadline = time.monotonic() + DETACH_WAIT_S
        while True:
            try:
                client.api.remove_network(id_)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as err:
                # An overlay's attachment on a worker is a Swarm task, removed a moment after its
                # container: "network ... is in use by task ..." until then.
                if "in use by task" in str(err.explanation) and time.monotonic() < deadline:
                    time.sleep(1)
                    continue
                raise
            break
        if not props.get("mtu"):
            bridge_filter.remove(bridge_filter.bridge_name(id_))


class VolumeProvider(_DockerProvider):
    """A named local volume: the storage unit a node's state lives on."""

    schema = {"name": _is_name, "labels": _is_labels, "endpoint": _is_endpoint}

    def create_in(self, client: docker.DockerClient, props: Props) -> str:
        return client.api.create_volume(props["name"], driver="local", labels=props["labels"])["Name"]

    def observe(self, client: docker.DockerClient, id_: str, props: Props) -> Props | None:
        try:
            vol = client.api.inspect_volume(id_)
        except docker.errors.NotFound:
            return None
        return {"name": vol["Name"], "labels": vol.get("Labels") or {},
                "mountpoint": vol.get("Mountpoint", "")}

    def delete(self, id_: str, props: Props) -> None:
        try:
            _client(props).api.remove_volume(id_, force=True)
        except docker.errors.NotFound:
            pass


class ContainerProvider(_DockerProvider):
    """A container attached to several networks at fixed addresses, started by edge-init."""

    schema = {
        "name": _is_name,
        "image": _is_text,
        "hostname": _is_text,
        "networks": _is_map_of(_is_ipv4, "network name to IPv4 address"),
        "cap_add": _is_list_of(_is_text, "capability names"),
        "sysctls": _is_map_of(_is_text, "sysctl to value"),
        "env": _is_map_of(lambda v: None if isinstance(v, str) else f"'{v}' is not text",
                          "variable to value"),
        "mounts": _is_map_of(_is_abs_path, "volume name to mount point"),
        "labels": _is_labels,
        "restart_policy": lambda v: None if v in RESTART_POLICIES else
        f"'{v}' is not one of {', '.join(RESTART_POLICIES)}",
        "dns": _is_list_of(_is_ipv4, "IPv4 addresses"),
        "command": _is_list_of(_is_text, "arguments"),
        "running": _is_bool,
        "endpoint": _is_endpoint,
    }
    updatable = frozenset({"restart_policy", "running"})

    def check_more(self, news: Props) -> list[CheckFailure]:
        if isinstance(news.get("networks"), dict) and not news["networks"]:
            return [CheckFailure("networks", "a lab container needs at least one network")]
        bad = [k for k in news.get("sysctls") or {} if not str(k).startswith("net.")]
        return [CheckFailure("sysctls", f"{bad} are not namespaced net.* sysctls")] if bad else []

    def create_in(self, client: docker.DockerClient, props: Props) -> str:
        api = client.api
        first, *others = sorted(props["networks"].items())
        host_config = api.create_host_config(
            cap_add=list(props["cap_add"]), sysctls=dict(props["sysctls"]),
            restart_policy={"Name": props["restart_policy"]}, dns=list(props["dns"]),
            mounts=[Mount(target, source, type="volume") for source, target
                    in props["mounts"].items()],
            network_mode=first[0],
        )
        networking = api.create_networking_config(
            {first[0]: api.create_endpoint_config(ipv4_address=first[1])})
        container = api.create_container(
            props["image"], name=props["name"], hostname=props["hostname"],
            environment=[f"{k}={v}" for k, v in sorted(props["env"].items())],
            command=list(props["command"]) or None, labels=props["labels"],
            host_config=host_config, networking_config=networking, detach=True)
        id_ = container["Id"]
        try:
            for network, address in others:
                api.connect_container_to_network(id_, network, ipv4_address=address)
            if props["running"]:
                self._start(client, id_)
        except Exception:
            api.remove_container(id_, force=True)
            raise
        return id_

    def _start(self, client: docker.DockerClient, id_: str) -> None:
        """Start the container and fail loudly if its entrypoint dies straight away.

        On a Swarm worker, the first container of an overlay waits for the manager's attachment
        and for the network's sandbox; Docker gives that 20 s, which a loaded machine exceeds when
        several start at once (moby/moby#41841). The sandbox is there by the next try.
        """
        for attempt in range(1, ATTACH_TRIES + 1):
            try:
                client.api.start(id_)
                break
            except docker.errors.APIError as err:
                if ATTACH_FAILED not in str(err.explanation) or attempt == ATTACH_TRIES:
                    raise
        time.sleep(START_GRACE_S)
        state = client.api.inspect_container(id_)["State"]
        if not state.get("Running") or state.get("Restarting"):
            logs = client.api.logs(id_, tail=5).decode(errors="replace").strip()
            raise RuntimeError(f"container {id_[:12]} stopped right after start "
                               f"(exit {state.get('ExitCode')}): {logs}")

    def observe(self, client: docker.DockerClient, id_: str, props: Props) -> Props | None:
        try:
            info = client.api.inspect_container(id_)
        except docker.errors.NotFound:
            return None
        attached = info["NetworkSettings"].get("Networks") or {}
        networks = {name: (ep.get("IPAMConfig") or {}).get("IPv4Address") or ep.get("IPAddress")
                    for name, ep in attached.items()}
        outs = {k: props.get(k) for k in self.schema}
        outs |= {"networks": networks, "running": bool(info["State"].get("Running")),
                 "restart_policy": info["HostConfig"]["RestartPolicy"]["Name"] or "no",
                 "container_id": info["Id"]}
        return outs

    def update(self, id_: str, olds: Props, news: Props) -> UpdateResult:
        client = _client(news)
        if olds.get("restart_policy") != news["restart_policy"]:
            client.api.update_container(id_, restart_policy={"Name": news["restart_policy"]})
        if news["running"] and not olds.get("running"):
            self._start(client, id_)
        elif not news["running"] and olds.get("running"):
            client.api.stop(id_, timeout=5)
        return UpdateResult(self.outputs(client, id_, news) or {})

    def delete(self, id_: str, props: Props) -> None:
        try:
            _client(props).api.remove_container(id_, force=True)
        except docker.errors.NotFound:
            pass


class DockerNetwork(Resource, module="docker", name="Network"):
    """A lab network (internal bridge)."""

    network_id: pulumi.Output[str]
    subnet: pulumi.Output[str]

    def __init__(self, resource_name: str, *, name: str, subnet: str, gateway: str,
                 labels: dict[str, str], mtu: int | None = None, ip_range: str | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(NetworkProvider(), resource_name,
                         {"name": name, "subnet": subnet, "gateway": gateway, "internal": True,
                          "labels": labels, "mtu": mtu, "ip_range": ip_range, "endpoint": None,
                          "network_id": None}, opts)


class DockerVolume(Resource, module="docker", name="Volume"):
    """A named volume."""

    mountpoint: pulumi.Output[str]

    def __init__(self, resource_name: str, *, name: str, labels: dict[str, str],
                 endpoint: Endpoint | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(VolumeProvider(), resource_name,
                         {"name": name, "labels": labels, "mountpoint": None,
                          "endpoint": endpoint.props() if endpoint else None}, opts)


class DockerContainer(Resource, module="docker", name="Container"):
    """A lab container; `networks` maps Docker network names to static addresses."""

    container_id: pulumi.Output[str]
    running: pulumi.Output[bool]
    networks: pulumi.Output[dict[str, str]]

    def __init__(self, resource_name: str, *, name: str, image: str, hostname: str,
                 networks: dict[str, Any], labels: dict[str, str],
                 cap_add: list[str] | None = None, sysctls: dict[str, str] | None = None,
                 env: dict[str, str] | None = None, mounts: dict[str, Any] | None = None,
                 dns: list[str] | None = None, command: list[str] | None = None,
                 restart_policy: str = "unless-stopped", running: bool = True,
                 endpoint: Endpoint | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(ContainerProvider(), resource_name, {
            "name": name, "image": image, "hostname": hostname, "networks": networks,
            "cap_add": cap_add or [], "sysctls": sysctls or {}, "env": env or {},
            "mounts": mounts or {}, "labels": labels, "restart_policy": restart_policy,
            "dns": dns or [], "command": command or [], "running": running,
            "endpoint": endpoint.props() if endpoint else None, "container_id": None,
        }, opts)
