"""Plain-text tables for the terminal: every column but the last padded to its widest cell;
and the tables of a converge and of a contract measurement."""

from __future__ import annotations

from collections.abc import Sequence

from edge.engines.configure import ConvergeResult
from edge.lab.probes import Result


def text_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows (the first is the header) as aligned lines; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
                     .rstrip() for row in rows)


def results_table(results: list[Result]) -> str:
    """A reachability table: one row per flow, with its verdict."""
    rows = [("FLOW", "FROM", "MUST", "OUTCOME", "MS", "VERDICT")]
    for r in results:
        extra = f" {r.detail.get('status', '')}".rstrip() if r.flow.kind == "http" else ""
        rows.append((r.flow.name, r.flow.vantage, r.flow.must, r.outcome + extra,
                     f"{r.latency_ms:.0f}", "ok" if r.ok else f"FAIL: {r.reason}"))
    return text_table(rows)


def converge_table(result: ConvergeResult) -> str:
    """Per-host recap, like Ansible's PLAY RECAP but as a table."""
    rows = [("HOST", "OK", "CHANGED", "FAILED", "UNREACHABLE")]
    rows += [(h, str(r.ok), str(r.changed), str(r.failed), str(r.unreachable))
             for h, r in sorted(result.hosts.items())]
    return text_table(rows)
