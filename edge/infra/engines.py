"""A Docker client for any engine a lab may be placed on: the local one, or one named by endpoint.

An endpoint (edge/model/topology.py's Endpoint) is what the topology's `engines:` section says:
`local` (the engine `docker` itself would use: $DOCKER_HOST or the local socket), `unix:///path/docker.sock`,
`ssh://user@host` (through the `ssh` program, so the user's keys and ssh config apply and no
Python SSH library is needed) or `tcp://host:2376` with TLS files (never plain TCP: the API
of an engine is root on its machine). The Pulumi providers run in their own processes and hold no
state, so an endpoint travels as plain data (`Endpoint.props()`) and each call opens its client.
"""

from __future__ import annotations

import docker
import docker.tls

from edge.model.topology import LOCAL, Endpoint

TIMEOUT_S = 60


def client_for(endpoint: Endpoint, timeout: float = TIMEOUT_S) -> docker.DockerClient:
    """A client of the engine at `endpoint` whose calls wait `timeout` seconds for an answer;
    the caller closes it when it is done."""
    if endpoint.url == LOCAL:
        return docker.from_env(timeout=timeout)
    if endpoint.url.startswith("ssh://"):
        return docker.DockerClient(base_url=endpoint.url, use_ssh_client=True, timeout=timeout)
    if endpoint.url.startswith("tcp://"):
        tls = docker.tls.TLSConfig(client_cert=(endpoint.cert, endpoint.key),
                                   ca_cert=endpoint.ca, verify=True)
        return docker.DockerClient(base_url=endpoint.url.replace("tcp://", "https://", 1),
                                   tls=tls, timeout=timeout)
    return docker.DockerClient(base_url=endpoint.url, timeout=timeout)
