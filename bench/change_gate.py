"""Benchmark: the change gate with staging already up. Each run previews a one-host
configuration change (the zone's TTL, a new value each run) to a verdict, times the static stage
alone, applies the change under the watchdog (apply plus post-apply verification), then applies a
breaking change with --force and times the automatic rollback (first failed probe to service
restored, and to the watchdog's decision).

Usage: .venv/bin/python bench/change_gate.py [--runs N]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import ROOT, Figures, bench_stack, edge_up, main, report, timed

from edge.engines import stack
from edge.model.change import Change, load_change
from edge.model.contract import load_contract
from edge.model.revision import load_live
from edge.workflow.apply import record_preview, run_apply
from edge.workflow.staged import SAFE, change_scope, run_preview, static_stage

NAME = "change_gate"
LIVE, LIVE_SLOT = "bench-live", 18
STAGING, STAGING_SLOT = "bench-staging", 19
CONTRACT = load_contract(ROOT / "contract.yaml")


def quiet(_: str) -> None:
    """Progress lines are not part of the figures."""


def ttl_change(ttl: int, folder: Path) -> Change:
    path = folder / f"ttl-{ttl}.yaml"
    path.write_text(f"description: zone TTL {ttl}s\nvars: {{dns_ttl: {ttl}}}\n")
    return load_change(path)


def measure(runs: int) -> Figures:
    """Preview, static stage, apply and a forced rollback, `runs` times, staging up."""
    figures: Figures = {"preview_s": [], "static_stage_s": [], "apply_verify_s": [],
                        "rollback_detect_s": [], "rollback_restore_s": []}
    breaking = load_change(ROOT / "changes" / "examples" / "lb-wrong-bind.yaml")
    with bench_stack(LIVE, LIVE_SLOT) as backend, tempfile.TemporaryDirectory() as tmp:
        stack.select_stack(STAGING, backend, {"slot": str(STAGING_SLOT), "purpose": "bench"})
        try:
            edge_up(LIVE, backend)
            # Staging is brought up by a first preview; the figures are with staging up.
            run_preview(ttl_change(299, Path(tmp)), LIVE, STAGING, ROOT / "contract.yaml",
                        backend, progress=quiet)
            for run in range(1, runs + 1):
                change = ttl_change(300 + run, Path(tmp))
                started = time.monotonic()
                preview = run_preview(change, LIVE, STAGING, ROOT / "contract.yaml", backend,
                                      progress=quiet)
                figures["preview_s"].append(round(time.monotonic() - started, 2))
                if preview.verdict != SAFE:
                    raise SystemExit(f"preview said {preview.verdict}: {preview.reasons}")
                record_preview(backend.state, preview, Path(tmp) / change.digest)
                live = load_live(backend.state, LIVE)
                figures["static_stage_s"].append(timed(
                    static_stage, LIVE, change.on(live), backend,
                    change_scope(change, live, stack.lab(LIVE, backend), backend)))
                applied = run_apply(change, LIVE, CONTRACT, backend, progress=quiet,
                                    staging=STAGING)
                if applied.outcome != "applied":
                    raise SystemExit(f"apply: {applied.outcome}: {applied.reasons}")
                figures["apply_verify_s"].append(applied.verified_s)
                rolled = run_apply(breaking, LIVE, CONTRACT, backend, force=True, progress=quiet,
                                   staging=STAGING)
                if rolled.outcome != "rolled-back":
                    raise SystemExit(f"forced breaking apply: {rolled.outcome}: {rolled.reasons}")
                figures["rollback_detect_s"].append(rolled.detect_s)
                figures["rollback_restore_s"].append(rolled.restore_s)
                report(run, runs, figures)
        finally:
            stack.destroy(STAGING, backend, stream=False)
            stack.remove_stack(STAGING, backend)
    return figures


if __name__ == "__main__":
    main(NAME, measure, __doc__)
