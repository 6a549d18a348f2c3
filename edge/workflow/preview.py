"""`edge preview` as a function: try a change on the staging stack, as its only user, and record
the verdict for the gate.

Why the checks here: a preview converges the change onto its staging stack, so a staging stack
that is the live one would apply the change to live with no watchdog, and two previews sharing
one staging stack would each measure the other's change (an UNSAFE change could come out SAFE).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from edge.engines import stack
from edge.engines.configure import Progress, to_stderr
from edge.model.change import Change, ChangeError
from edge.model.state import StackLocked, stack_lock
from edge.workflow.apply import record_preview
from edge.workflow.staged import Preview, run_preview

POOL_POLL_S = 1.0   # how often a preview waiting for a free staging stack of a pool looks again


def staging_pool(live: str, staging: str) -> list[str]:
    """`--staging NAME` or a pool `--staging a,b,...` (each preview takes a free one, so N
    previews run at once on N stacks): the names, checked. None may be the live stack itself."""
    pool = [name.strip() for name in staging.split(",")]
    if not all(pool) or len(set(pool)) != len(pool):
        raise ChangeError(f"--staging '{staging}': give one stack, or a pool of different stacks "
                          "separated by commas (e.g. --staging staging-a,staging-b)")
    if live in pool:
        raise ChangeError(f"--staging '{live}' is the live stack itself: a preview converges "
                          "the change onto its staging stack, which would change live with no "
                          "watchdog. Give another stack, e.g. --staging staging.")
    return pool


@contextmanager
def free_staging(state: Path, pool: list[str], what: str, wait: bool,
                 say: Progress) -> Iterator[str]:
    """Hold the writer lock of the first staging stack of `pool` no other process holds, for the
    whole block, and give its name. When every one is held: refuse naming the pool, or with
    `wait` say so once and take the first one freed."""
    if len(pool) == 1:
        with stack_lock(state, pool[0], what, wait=wait, say=say):
            yield pool[0]
        return
    told = False
    while True:
        for name in pool:
            with ExitStack() as held:
                try:
                    held.enter_context(stack_lock(state, name, what))
                except StackLocked:
                    continue
                yield name
                return
        if not wait:
            raise StackLocked(f"every staging stack of the pool ({', '.join(pool)}) is held by "
                              "another preview: wait until one is done, or add one to the pool")
        if not told:
            say(f"every staging stack of the pool ({', '.join(pool)}) is held by another "
                "preview: waiting for the first one freed")
            told = True
        time.sleep(POOL_POLL_S)


def preview(change: Change, live: str, staging: str, contract: Path, report: Path, *,
            backend: stack.Backend = stack.Backend(),
            staging_config: dict[str, str] | None = None, wait: bool = True,
            progress: Progress = to_stderr,
            write_reports: Callable[[Preview, Path], object] | None = None) -> Preview:
    """Preview `change` for `live` on `staging` (or the first free stack of a pool `a,b,...`),
    holding that stack's writer lock for the whole run (`wait`: wait for another preview to
    finish instead of refusing), then record it."""
    pool = staging_pool(live, staging)
    with free_staging(backend.state, pool, f"edge preview {change.digest} for '{live}'", wait,
                      progress) as taken:
        if len(pool) > 1:
            progress(f"preview: staging stack '{taken}' of the pool {', '.join(pool)}")
        result = run_preview(change, live, taken, contract, backend, staging_config,
                             progress=progress)
    if write_reports is not None:
        write_reports(result, report)
    record_preview(backend.state, result, report)
    return result
