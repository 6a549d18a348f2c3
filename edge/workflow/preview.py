"""`edge preview` as a function: try a change on the staging stack, as its only user, and record
the verdict for the gate.

Why the checks here: a preview converges the change onto its staging stack, so a staging stack
that is the live one would apply the change to live with no watchdog, and two previews sharing
one staging stack would each measure the other's change (an UNSAFE change could come out SAFE).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge.engines import stack
from edge.engines.configure import Progress, to_stderr
from edge.model.change import Change, ChangeError
from edge.model.state import stack_lock
from edge.workflow.apply import record_preview
from edge.workflow.staged import Preview, run_preview


def check_staging(live: str, staging: str) -> None:
    """Refuse a staging stack that is the live stack itself."""
    if staging == live:
        raise ChangeError(f"--staging '{staging}' is the live stack itself: a preview converges "
                          "the change onto its staging stack, which would change live with no "
                          "watchdog. Give another stack, e.g. --staging staging.")


def preview(change: Change, live: str, staging: str, contract: Path, report: Path, *,
            backend: stack.Backend = stack.Backend(),
            staging_config: dict[str, str] | None = None, wait: bool = True,
            progress: Progress = to_stderr,
            write_reports: Callable[[Preview, Path], object] | None = None) -> Preview:
    """Preview `change` for `live` on `staging` (holding staging's writer lock for the whole
    run; `wait`: wait for another preview to finish instead of refusing), then record it."""
    check_staging(live, staging)
    with stack_lock(backend.state, staging, f"edge preview {change.digest} for '{live}'",
                    wait=wait, say=progress):
        result = run_preview(change, live, staging, contract, backend, staging_config,
                             progress=progress)
    if write_reports is not None:
        write_reports(result, report)
    record_preview(backend.state, result, report)
    return result
