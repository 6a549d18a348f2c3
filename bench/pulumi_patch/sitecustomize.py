"""Bench-only experiments inside Pulumi's own Python processes (bench/floor.py puts this folder
on PYTHONPATH for one `pulumi up`; nothing else ever does).

Where `pulumi up` spends its time cannot be measured from outside alone: the dynamic provider
process (`python -m pulumi.dynamic`, started by the CLI) serves every create on a gRPC pool of 4
threads, and ContainerProvider sleeps a fixed grace after each start. Python imports this module
at start-up, so it can change either, for that process only:

  EDGE_BENCH_PROVIDER_THREADS=N   the gRPC server pool has N threads instead of 4
  EDGE_BENCH_START_WAIT=1         ContainerProvider._start waits on the container's state
                                  (bench/pulumi_patch/start_wait.py) instead of sleeping
"""

import os
import sys

_threads = os.environ.get("EDGE_BENCH_PROVIDER_THREADS")
if _threads:
    from concurrent import futures

    import grpc

    _server = grpc.server

    def _wider_server(_pool, *args, **kwargs):
        return _server(futures.ThreadPoolExecutor(max_workers=int(_threads)), *args, **kwargs)

    grpc.server = _wider_server

if os.environ.get("EDGE_BENCH_START_WAIT") == "1":
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path += [_here, os.path.dirname(os.path.dirname(_here))]
    from start_wait import start_and_wait

    from edge.infra import docker_provider

    docker_provider.ContainerProvider._start = start_and_wait
