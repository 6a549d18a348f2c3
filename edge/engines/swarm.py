"""A Docker Swarm of this machine's engine and others, so that one lab can spread over engines.

Swarm (part of the Docker engine the project already installs) carries a lab network across
engines as a VXLAN overlay; edge only makes the Swarm, joins engines to it and shows it. What it
does to an engine is kept small and undoable, because the engine is shared with every other stack:

- The engines talk over a project bridge of their own (`edge-NAME-engines`, an internal network on
  the last /24 of the slot's internal block), never over the host's uplink: the manager advertises
  and carries VXLAN on its address there, so no Swarm port listens on any other interface.
- Swarm's default address pool (for the ingress network) and the host's `docker_gwbridge` are
  carved from the same spare part of the slot's block, checked against `ip route` and every
  Docker network first, and `docker_gwbridge` is made by edge (no NAT) when it is missing.
- `init` refuses an engine that is already in a Swarm; `leave` makes every joined engine leave,
  then the host, then removes what `init` and `join` made (found by label), so the engine is back
  where it was. What edge made is written in the Swarm's own labels and each node's labels (name,
  endpoint), so `leave` needs no other record.

For tests on one machine, `start_engine` runs a second engine: a real dockerd in a
container of the `engine` image variant (images/engine/), on the project bridge, its API a unix
socket in a volume (no TCP port anywhere), with the lab's base image loaded into it.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool, Mount

from edge import ROOT
from edge.engines import cleanup, images
from edge.infra.addressing import taken_prefixes
from edge.infra.engines import client_for
from edge.model.plan import (
    LABEL_PROJECT,
    LABEL_PURPOSE,
    LABEL_STACK,
    PROJECT,
    shift,
    slot_count,
    stack_plan,
)
from edge.model.topology import LOCAL, Endpoint, Topology

PURPOSE = "engine"
LABEL_ENGINE = "edge-testbed.engine"      # on Swarm nodes: the engine's name
LABEL_ENDPOINT = "edge-testbed.endpoint"  # on Swarm nodes: how to reach its API (for `leave`)
LABEL_SLOT = "edge-testbed.slot"
LABEL_GWBRIDGE = "edge-testbed.gwbridge"  # on the Swarm: "made" when edge made docker_gwbridge
GWBRIDGE = "docker_gwbridge"
SWARM_PORT = 2377
SOCKET_DIR = "/run/edge-engine"           # in an engine container: its API socket's volume
# Linux capabilities by bit number (capabilities(7)): to tell which ones this machine lacks.
CAPABILITY_BITS = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
LOAD_IMAGE_S = 900
ENGINE_START_S = 90                       # a fresh dockerd is up in seconds; a loaded host slower
# What an engine says when it refuses a Swarm step (the CLI prints its explanation).
EngineAPIError = docker.errors.APIError


class SwarmError(RuntimeError):
    """A Swarm step that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class SwarmPlan:
    """The addresses a Swarm of slot `slot` uses: all in the spare top /20 of its internal block.

    The topology's networks start at the bottom of the block, so its top /20 is free; the plan
    checks that it is.
    """

    name: str
    slot: int
    bridge: ipaddress.IPv4Network       # the engines' own network: manager .1, engines .2 on
    gwbridge: ipaddress.IPv4Network     # the host's docker_gwbridge, if edge makes it
    engine_pool: ipaddress.IPv4Network  # local address pool of the engines edge starts
    pool: ipaddress.IPv4Network         # Swarm's default address pool (ingress, unnamed overlays)

    @property
    def manager(self) -> ipaddress.IPv4Address:
        """The host's address on the bridge: the manager advertises it and sends VXLAN from it."""
        return self.bridge.network_address + 1

    def engine_address(self, index: int) -> ipaddress.IPv4Address:
        """The address of the index-th engine started here (0 is the first)."""
        return self.bridge.network_address + 2 + index

    @property
    def bridge_name(self) -> str:
        return f"edge-{self.name}-engines"

    def labels(self, **extra: str) -> dict[str, str]:
        """Labels of what edge makes for the Swarm: found and removed by them on `leave`."""
        return {LABEL_PROJECT: PROJECT, LABEL_STACK: self.name, LABEL_PURPOSE: PURPOSE, **extra}


def swarm_plan(topology: Topology, slot: int, name: str) -> SwarmPlan:
    """Carve the Swarm's prefixes out of slot `slot`'s internal block; pure."""
    if not 0 <= slot < slot_count(topology):
        raise SwarmError(f"slot {slot} is out of range: use a --slot from 0 to "
                         f"{slot_count(topology) - 1} that no stack of the Swarm's labs uses.")
    block = ipaddress.IPv4Network(
        f"{shift(topology.internal_block.network_address, topology, slot)}/"
        f"{topology.internal_block.prefixlen}")
    if block.prefixlen > 20:
        raise SwarmError(f"{topology.path}: address_plan.internal is a /{block.prefixlen}: a Swarm "
                         "needs its top /20 for the engines. Use a /20 or larger block.")
    top = list(block.subnets(new_prefix=20))[-1]
    lab = stack_plan(topology, name, slot)
    used = [n for n in lab.networks.values() if n.subnet.overlaps(top)]
    if used:
        raise SwarmError(f"{topology.path}: network '{used[0].name}' ({used[0].subnet}) is in "
                         f"{top}, which a Swarm of slot {slot} uses for its engines. Move the "
                         "network lower in the internal block.")
    quarters = list(top.subnets(new_prefix=24))
    return SwarmPlan(name, slot, bridge=quarters[-1], gwbridge=quarters[-2],
                     engine_pool=list(top.subnets(new_prefix=23))[-2],
                     pool=list(top.subnets(new_prefix=21))[0])


# --- the host's engine: init, status, leave -------------------------------------------------


def _state(client: docker.DockerClient) -> dict:
    return client.info().get("Swarm") or {}


def _check_free(plan: SwarmPlan, client: docker.DockerClient) -> None:
    """Refuse prefixes that overlap a host route, a Docker network or a reserved prefix."""
    ours = [plan.bridge, plan.gwbridge, plan.engine_pool, plan.pool]
    clashes = [f"{mine} overlaps {t.owner}" for mine in ours
               for t in taken_prefixes(plan.name, client) if mine.overlaps(t.prefix)]
    if clashes:
        raise SwarmError("the Swarm's addresses collide with this host; nothing was made:\n  - "
                         + "\n  - ".join(clashes) + "\nChoose another --slot.")


def _network(client: docker.DockerClient, name: str, subnet: ipaddress.IPv4Network,
             labels: dict[str, str], options: dict[str, str], internal: bool) -> None:
    """Make a bridge network with a fixed subnet (gateway .1), unless it is there already."""
    if client.api.networks(names=[name]):
        return
    pool = IPAMPool(subnet=str(subnet), gateway=str(subnet.network_address + 1))
    client.api.create_network(name, driver="bridge", internal=internal, labels=labels,
                              options=options, ipam=IPAMConfig(pool_configs=[pool]))


def init(plan: SwarmPlan, client: docker.DockerClient) -> str:
    """Make the host's engine the manager of a new Swarm on the project bridge; its node id."""
    state = _state(client)
    if state.get("LocalNodeState") != "inactive":
        raise SwarmError(f"this engine is already in a Swarm (state "
                         f"{state.get('LocalNodeState')!r}, node {state.get('NodeID') or '?'}): "
                         "edge leaves a Swarm it did not make alone. `edge swarm leave` if edge "
                         "made it, else `docker swarm leave` by hand.")
    _check_free(plan, client)
    _network(client, plan.bridge_name, plan.bridge, plan.labels(), {}, internal=True)
    made_gwbridge = not client.api.networks(names=[GWBRIDGE])
    # Docker's own docker_gwbridge would take a 172.x prefix and NAT to the uplink; edge's is in
    # the lab's range and without NAT (lab overlays are internal and never use it anyway).
    _network(client, GWBRIDGE, plan.gwbridge, plan.labels(), {
        "com.docker.network.bridge.name": GWBRIDGE,
        "com.docker.network.bridge.enable_icc": "false",
        "com.docker.network.bridge.enable_ip_masquerade": "false",
    }, internal=False)
    address = str(plan.manager)
    node = client.swarm.init(
        advertise_addr=address, listen_addr=f"{address}:{SWARM_PORT}", data_path_addr=address,
        default_addr_pool=[str(plan.pool)], subnet_size=24, name="default",
        labels=plan.labels(**{LABEL_SLOT: str(plan.slot),
                              LABEL_GWBRIDGE: "made" if made_gwbridge else "kept"}))
    _label_node(client, node, LOCAL, Endpoint())
    return node


def _label_node(manager: docker.DockerClient, node_id: str, engine: str,
                endpoint: Endpoint) -> None:
    """Write the engine's name and endpoint on its Swarm node: `leave` reads them back."""
    node = manager.nodes.get(node_id)
    spec = dict(node.attrs["Spec"])
    spec["Labels"] = {**(spec.get("Labels") or {}), LABEL_ENGINE: engine,
                      LABEL_ENDPOINT: endpoint.url}
    node.update(spec)


def _ours(client: docker.DockerClient) -> dict[str, str]:
    """The Swarm's labels if edge made the Swarm the host is in; else a SwarmError."""
    state = _state(client)
    if state.get("LocalNodeState") == "inactive":
        raise SwarmError("this engine is in no Swarm: run `edge swarm init` first.")
    if not state.get("ControlAvailable"):
        raise SwarmError("this engine is a Swarm worker, not its manager: edge manages only a "
                         "Swarm it made on this engine.")
    labels = client.swarm.attrs.get("Spec", {}).get("Labels") or {}
    if labels.get(LABEL_PROJECT) != PROJECT:
        raise SwarmError("this engine manages a Swarm edge did not make: edge leaves it alone.")
    return labels


def join(client: docker.DockerClient, engine: str, endpoint: Endpoint,
         advertise: ipaddress.IPv4Address) -> str:
    """Join the engine at `endpoint` to the host's Swarm as a worker, advertising `advertise`."""
    _ours(client)
    manager = client.swarm.attrs
    remote = f"{_state(client)['NodeAddr']}:{SWARM_PORT}"
    worker = client_for(endpoint)
    try:
        if _state(worker).get("LocalNodeState") != "inactive":
            raise SwarmError(f"engine '{engine}' ({endpoint.url}) is already in a Swarm: make it "
                             "leave first (`docker swarm leave` on it).")
        worker.swarm.join(remote_addrs=[remote], join_token=manager["JoinTokens"]["Worker"],
                          advertise_addr=str(advertise), listen_addr=f"{advertise}:{SWARM_PORT}",
                          data_path_addr=str(advertise))
        node = _state(worker)["NodeID"]
    finally:
        worker.close()
    _label_node(client, node, engine, endpoint)
    return node


@dataclass(frozen=True)
class Member:
    """One node of the Swarm, as `edge swarm status` shows it."""

    engine: str
    hostname: str
    role: str
    state: str
    availability: str
    address: str
    version: str
    endpoint: str


def members(client: docker.DockerClient) -> list[Member]:
    """The Swarm's nodes, the manager first."""
    found = []
    for node in client.nodes.list():
        attrs = node.attrs
        labels = attrs["Spec"].get("Labels") or {}
        found.append(Member(
            engine=labels.get(LABEL_ENGINE, "?"), hostname=attrs["Description"]["Hostname"],
            role=attrs["Spec"]["Role"] + (" (leader)" if attrs.get("ManagerStatus", {})
                                          .get("Leader") else ""),
            state=attrs["Status"]["State"], availability=attrs["Spec"]["Availability"],
            address=attrs["Status"].get("Addr", ""),
            version=attrs["Description"]["Engine"]["EngineVersion"],
            endpoint=labels.get(LABEL_ENDPOINT, "?")))
    return sorted(found, key=lambda m: (not m.role.startswith("manager"), m.engine))


def wait_ready(client: docker.DockerClient, count: int = 0, deadline_s: float = 60
               ) -> list[Member]:
    """Wait until `count` nodes (default: all) are `ready`: a joined worker reports in within
    seconds. Only a Swarm edge made on this engine is shown."""
    _ours(client)
    count = count or len(client.nodes.list())
    end = time.monotonic() + deadline_s
    while True:
        found = members(client)
        if sum(m.state == "ready" for m in found) >= count or time.monotonic() > end:
            return found
        time.sleep(0.5)


def leave(name: str, client: docker.DockerClient) -> list[str]:
    """Undo `init`, `join` and `start_engine`: every engine leaves, then the host; what they made
    is removed by label. Returns what was done, one line each (for the record)."""
    done: list[str] = []
    state = _state(client)
    gwbridge = "kept"
    if state.get("LocalNodeState") != "inactive":
        labels = _ours(client)
        if labels.get(LABEL_STACK) != name:
            raise SwarmError(f"the Swarm of this engine was made as '{labels.get(LABEL_STACK)}', "
                             f"not '{name}': `edge swarm leave --name {labels.get(LABEL_STACK)}`.")
        gwbridge = labels.get(LABEL_GWBRIDGE, "kept")
        for node in client.nodes.list():
            if node.id == state["NodeID"]:
                continue
            endpoint = (node.attrs["Spec"].get("Labels") or {}).get(LABEL_ENDPOINT)
            if endpoint:
                done.append(_worker_leave(Endpoint(endpoint)))
            client.api.remove_node(node.id, force=True)
            done.append(f"removed node {node.attrs['Description']['Hostname']} from the Swarm")
        client.swarm.leave(force=True)
        done.append("the host's engine left the Swarm")
    if gwbridge == "made" and client.api.networks(names=[GWBRIDGE]):
        client.api.remove_network(GWBRIDGE)
        done.append(f"removed {GWBRIDGE}")
    gone = cleanup.remove({LABEL_STACK: name, LABEL_PURPOSE: PURPOSE}, client)
    done.append(f"removed {gone.containers} engine containers, {gone.networks} networks, "
                f"{gone.volumes} volumes labelled {name}")
    return done


def _worker_leave(endpoint: Endpoint) -> str:
    """Make one worker leave; an engine that is gone already has nothing left to undo."""
    try:
        worker = client_for(endpoint)
    except docker.errors.DockerException as err:
        return f"{endpoint.url}: unreachable ({err}); it keeps its Swarm state until it is removed"
    try:
        worker.swarm.leave(force=True)
        return f"{endpoint.url}: left the Swarm"
    except docker.errors.APIError as err:
        return f"{endpoint.url}: {err.explanation}"
    finally:
        worker.close()


# --- a second engine on this machine ----------------------------------------------------------


def engine_container(plan: SwarmPlan, engine: str) -> str:
    return f"edge-{plan.name}-{engine}"


def start_engine(plan: SwarmPlan, engine: str, index: int, client: docker.DockerClient,
                 log=lambda _line: None) -> Endpoint:
    """Run a dockerd in a container on the project bridge; its endpoint.

    The container has every capability this machine has, no seccomp or AppArmor profile and
    writable /proc/sys, because dockerd makes namespaces, cgroups, bridges and iptables rules of
    its own. It is not `--privileged`: that asks for every capability, and a machine whose
    bounding set lacks one (this one lacks SYS_RESOURCE) refuses to start it. The container still
    has only the internal project bridge (no way off the machine), and its API is a unix socket in
    a volume the host reads, so nothing listens on TCP but Swarm's own ports on the bridge. Its
    data is a volume too, so overlay2 works (no overlay on overlay).
    """
    image = images.ensure_image(ROOT, log, variant="engine")
    name = engine_container(plan, engine)
    run_volume, data_volume = f"{name}-run", f"{name}-data"
    labels = plan.labels(**{LABEL_ENGINE: engine})
    for volume in (run_volume, data_volume):
        client.api.create_volume(volume, driver="local", labels=labels)
    if not client.api.containers(all=True, filters={"name": f"^{name}$"}):
        api = client.api
        address = plan.engine_address(index)
        args = [f"--host=unix://{SOCKET_DIR}/docker.sock", "--bridge=none",
                f"--default-address-pool=base={plan.engine_pool},size=24"]
        host_config = api.create_host_config(
            cap_add=["ALL"], cap_drop=missing_capabilities(), network_mode=plan.bridge_name,
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            devices=[f"{tun}:{tun}:rwm" for tun in ("/dev/net/tun",) if Path(tun).exists()],
            restart_policy={"Name": "no"},
            mounts=[Mount(SOCKET_DIR, run_volume, type="volume"),
                    Mount("/var/lib/docker", data_volume, type="volume")])
        # `--security-opt systempaths=unconfined`, which the SDK lacks: dockerd writes /proc/sys.
        host_config.update(MaskedPaths=[], ReadonlyPaths=[])
        networking = api.create_networking_config(
            {plan.bridge_name: api.create_endpoint_config(ipv4_address=str(address))})
        created = api.create_container(image, command=["/usr/local/sbin/edge-engine", *args],
                                       name=name, hostname=engine, labels=labels,
                                       host_config=host_config, networking_config=networking)
        api.start(created["Id"])
        log(f"swarm: started {name} at {address}")
    socket = Path(client.api.inspect_volume(run_volume)["Mountpoint"]) / "docker.sock"
    endpoint = Endpoint(f"unix://{socket}")
    _wait_engine(endpoint, name, client)
    load_image(client, endpoint, images.image_ref(ROOT), log)
    return endpoint


def missing_capabilities(status: str | None = None) -> list[str]:
    """The capabilities outside this process's bounding set (the engine's machine is this one),
    which a container cannot be given: `CapBnd` of /proc/self/status."""
    text = status if status is not None else Path("/proc/self/status").read_text()
    bound = int(next(line.split()[1] for line in text.splitlines()
                     if line.startswith("CapBnd:")), 16)
    return [name for bit, name in enumerate(CAPABILITY_BITS) if not bound >> bit & 1]


def _wait_engine(endpoint: Endpoint, name: str, host: docker.DockerClient) -> None:
    """Wait until the engine answers on its socket; its log's end if it dies or never does."""
    end = time.monotonic() + ENGINE_START_S
    while time.monotonic() < end:
        state = host.api.inspect_container(name)["State"]
        if not state["Running"]:
            break
        try:
            engine = client_for(endpoint)
            engine.ping()
            engine.close()
            return
        except docker.errors.DockerException:
            time.sleep(0.5)
    logs = host.api.logs(name, tail=8).decode(errors="replace").strip()
    raise SwarmError(f"the engine in {name} did not answer on {endpoint.url} within "
                     f"{ENGINE_START_S}s; its last lines:\n{logs}")


def load_image(host: docker.DockerClient, endpoint: Endpoint, ref: str, log) -> bool:
    """Copy an image from the host's engine to another (save | load, streamed); False if it had
    it. No registry is reachable here, so this is how an engine gets the lab's image. The engine
    answers once the whole image is in (25 s for the base image at load 30 on 2 cores, more than
    the usual 60 s wait at load 60), so the wait is LOAD_IMAGE_S."""
    engine = client_for(endpoint, timeout=LOAD_IMAGE_S)
    try:
        if engine.api.images(name=ref):
            return False
        started = time.monotonic()
        engine.api.load_image(host.api.get_image(ref))
        log(f"swarm: loaded {ref} into {endpoint.url} in {time.monotonic() - started:.1f}s")
        return True
    finally:
        engine.close()


def plan_of(topology: Topology, client: docker.DockerClient) -> SwarmPlan:
    """The plan of the Swarm edge made on this engine, from the slot and name in its labels."""
    labels = _ours(client)
    return swarm_plan(topology, int(labels[LABEL_SLOT]), labels[LABEL_STACK])


def join_local(topology: Topology, engine: str, client: docker.DockerClient,
               log=lambda _line: None) -> str:
    """Start a second engine on this machine (`start_engine`) and join it as a worker."""
    plan = plan_of(topology, client)
    if client.api.containers(all=True, filters={"name": f"^{engine_container(plan, engine)}$"}):
        raise SwarmError(f"engine '{engine}' is already started here: see `edge swarm status`.")
    started = client.api.containers(all=True, filters={"label": [
        f"{LABEL_STACK}={plan.name}", f"{LABEL_PURPOSE}={PURPOSE}"]})
    index = len(started)
    endpoint = start_engine(plan, engine, index, client, log)
    return join(client, engine, endpoint, plan.engine_address(index))


# Issue 13's split of the reference lab: border, firewall and name servers stay on this engine;
# the load balancers and the PaaS go to a second one.
SPLIT_TIERS = ("load balancing", "paas")


def split_topology(topology: Path, engine: str, endpoint: str, out: Path, *,
                   tiers: tuple[str, ...] = SPLIT_TIERS,
                   stacks: dict[str, str] | None = None) -> Path:
    """Write to `out` the topology file `topology` with `tiers` placed on `engine` (reached at
    `endpoint`) and the `stacks` placed wholly on their engines, for the Swarm tests and
    benchmarks; returns `out`."""
    placement = [f"  {key}: {{{', '.join(f'{name}: {where}' for name, where in entries)}}}\n"
                 for key, entries in (("tiers", [(t, engine) for t in tiers]),
                                      ("stacks", sorted((stacks or {}).items()))) if entries]
    out.write_text(topology.read_text() + f'\nengines:\n  {engine}: {{endpoint: "{endpoint}"}}\n'
                   "placement:\n" + "".join(placement))
    return out
