"""The half-configured daemons check (edge/workflow/daemons.py) read from a node's output."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.workflow.daemons import half_configured

AGREE = """\
@@ want nftables: the file is the one loaded
sha256 aa
@@ live nftables: the file is the one loaded
sha256 aa
@@ want HAProxy: it runs the file
sha256:1f
@@ live HAProxy: it runs the file
sha256:1f
@@ want named: it read its files since they were written
ok
@@ live named: it read its files since they were written
ok
@@ programs
haproxy                          RUNNING   pid 41, uptime 0:10:02
nftables-load                    EXITED    Dec 02 07:00 AM
@@ want program unbound: it started after its files were written
ok
@@ live program unbound: it started after its files were written
ok
"""


def test_daemons_that_run_their_files_are_not_told() -> None:
    assert half_configured("lb1", AGREE) == []


def test_a_file_written_but_not_loaded_is_told_with_its_diff() -> None:
    text = AGREE.replace("@@ live nftables: the file is the one loaded\nsha256 aa",
                         "@@ live nftables: the file is the one loaded\nsha256 bb")
    [found] = half_configured("fw", text)
    assert (found.node, found.what) == ("fw", "nftables: the file is the one loaded")
    assert "-sha256 bb" in found.diff and "+sha256 aa" in found.diff


def test_a_program_older_than_its_files_and_a_missing_reading_are_told() -> None:
    text = AGREE.replace("@@ live program unbound: it started after its files were written\nok",
                         "@@ live program unbound: it started after its files were written\n"
                         "/etc/unbound/unbound.conf written at 20, unbound started at 10")
    text = text.replace("@@ live HAProxy: it runs the file\nsha256:1f\n", "")
    assert [d.what for d in half_configured("resolver", text)] == [
        "HAProxy: it runs the file", "program unbound: it started after its files were written"]


def test_a_stopped_program_runs_no_file() -> None:
    text = AGREE.replace("haproxy                          RUNNING   pid 41, uptime 0:10:02",
                         "haproxy                          STOPPED   Dec 02 07:01 AM")
    assert [d.what for d in half_configured("lb1", text)] == ["program haproxy STOPPED"]


FIXTURES = Path(__file__).parent / "fixtures" / "daemons"


@pytest.mark.parametrize("node", ["firewall", "lb1", "ns1", "controller"])
def test_a_converged_node_as_captured_runs_every_file(node: str) -> None:
    assert half_configured(node, (FIXTURES / node).read_text()) == []


@pytest.mark.parametrize(("node", "what"), [
    ("firewall", "nftables: the file is the one loaded"),
    ("lb1", "HAProxy: it runs the file"),
    ("ns1", "named: it read its files since they were written"),
    ("resolver", "program unbound: it started after its files were written")])
def test_a_file_changed_after_its_daemon_took_it_as_captured(node: str, what: str) -> None:
    """Captured after: a line appended to the ruleset file, the HAProxy file's description
    edited, named.conf and unbound.conf touched, none of them reloaded."""
    assert [d.what for d in half_configured(node, (FIXTURES / f"{node}-half").read_text())] \
        == [what]
