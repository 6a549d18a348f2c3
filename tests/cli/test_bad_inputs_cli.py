"""The catalog of bad inputs (tests/unit/test_bad_inputs.py) through the command line, on the
session's lab: every bad change file given to `edge preview` and `edge apply`, every bad contract
to `edge verify` and every bad replay catalog to `edge replay` ends with exit 2 and one line
naming the file and line, no traceback, and the live lab's configuration digest is the same
before and after the whole catalog: nothing ran.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge.workflow.staged import config_digest
from tests.cli.conftest import edge
from tests.lab_fixtures import Lab
from tests.unit.test_bad_inputs import CATALOG, Bad

pytestmark = pytest.mark.lab

COMMANDS = {
    "change": [["preview", "{file}"], ["apply", "{file}"]],
    "contract": [["verify", "--contract", "{file}"]],
    "replays": [["replay", "outage", "--catalog", "{file}"]],
}
CASES = [bad for bad in CATALOG if bad.kind in COMMANDS]


def one_refusal(proc: subprocess.CompletedProcess[str], path: Path, bad: Bad) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("edge: ")]
    assert len(said) == 1 and said[0].startswith(f"edge: {path}:{bad.line}: "), proc.stderr
    assert bad.words in said[0], (bad.words, said[0])


@pytest.fixture(scope="module")
def untouched(lab: Lab):
    """The live lab's configuration digest before the catalog, checked again after it."""
    before = config_digest(lab.view)
    yield
    assert config_digest(lab.view) == before, "a bad input changed the live lab"


def test_the_cli_catalog_covers_every_kind_it_can_be_given() -> None:
    assert len(CASES) >= 50 and {b.kind for b in CASES} == set(COMMANDS)


@pytest.mark.parametrize("bad", CASES, ids=str)
def test_a_bad_input_is_refused_with_exit_2_and_one_line(
        lab: Lab, untouched: None, tmp_path: Path, bad: Bad) -> None:
    path = tmp_path / f"bad-{bad.kind}.yaml"
    if isinstance(bad.text, bytes):
        path.write_bytes(bad.text)
    else:
        path.write_text(bad.text)
    for command in COMMANDS[bad.kind]:
        args = [word.format(file=path) for word in command]
        one_refusal(edge(*args, "--stack", lab.stack, state=lab.state, engine=None), path, bad)
