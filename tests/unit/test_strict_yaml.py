"""The strict loader of every data file: plain YAML data only, each mistake one clear message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.model.datafile import (
    MAX_BYTES,
    MAX_VALUES,
    DataFileError,
    Mapping,
    load_checked,
    load_yaml,
)

ROOT = Path(__file__).resolve().parents[2]
DATA_FILES = [ROOT / "topology" / "reference.yaml", ROOT / "contract.yaml",
              ROOT / "replays.yaml", *sorted((ROOT / "changes" / "examples").glob("*.yaml"))]


def load(tmp_path: Path, text: str | bytes) -> object:
    path = tmp_path / "data.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_yaml(path, "test", "the test")


def error(tmp_path: Path, text: str | bytes) -> str:
    with pytest.raises(DataFileError) as err:
        load(tmp_path, text)
    message = str(err.value)
    # <file>:<line>: <field>: <what is wrong>. <what to do>.
    assert re.match(rf"{re.escape(str(tmp_path / 'data.yaml'))}:\d+: [^ ]+: .+\. .+\.$", message), \
        message
    assert "\n" not in message and "Traceback" not in message, message
    return message


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.name)
def test_every_data_file_of_the_project_is_plain_data(path: Path) -> None:
    assert isinstance(load_yaml(path, "data", "the test"), dict)


def test_plain_data_loads_as_before_with_lines(tmp_path: Path) -> None:
    doc = load(tmp_path, "a: 1\nb:\n  c: [1, 2.5, true, null, x]\n  d: '2026-12-02'\n"
                         "e: !!str 2026-12-02\n")
    assert doc == {"a": 1, "b": {"c": [1, 2.5, True, None, "x"], "d": "2026-12-02"},
                   "e": "2026-12-02"}
    assert isinstance(doc, Mapping) and isinstance(doc["b"], Mapping)
    assert doc.line == 1 and doc.key_lines == {"a": 1, "b": 2, "e": 5}
    assert doc["b"].line == 3 and doc["b"].key_lines == {"c": 3, "d": 4}


def test_small_aliases_still_work(tmp_path: Path) -> None:
    doc = load(tmp_path, "base: &port [80]\nweb: {ports: *port}\n")
    assert doc == {"base": [80], "web": {"ports": [80]}}


def test_empty_file_is_no_document(tmp_path: Path) -> None:
    assert load(tmp_path, "# nothing\n") is None


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    message = error(tmp_path, "vars:\n  firewall_forward_policy: drop\n"
                              "  firewall_forward_policy: accept\n")
    assert ":3: vars.firewall_forward_policy: duplicate key 'firewall_forward_policy' (first on " \
           "line 2)" in message


def test_keys_that_yaml_reads_as_the_same_value_are_duplicates(tmp_path: Path) -> None:
    assert "duplicate key 'True'" in error(tmp_path, "true: 1\nTrue: 2\n")


@pytest.mark.parametrize("text,words", [
    ("a: !!binary aGVsbG8=\n", "the tag !!binary is not plain data"),
    ("a: !!set {x, y}\n", "the tag !!set is not plain data"),
    ("a: !!omap [x: 1]\n", "the tag !!omap is not plain data"),
    ("a: !!pairs [x: 1]\n", "the tag !!pairs is not plain data"),
    ("a: !!python/object/apply:os.system [true]\n", "!!python/object/apply:os.system"),
    ("a: !vault secret\n", "the tag !vault is not plain data"),
    ("a: !unsafe '{{ x }}'\n", "the tag !unsafe is not plain data"),
    ("a: !!timestamp 2026-12-02\n", "reads as a date"),
])
def test_tags_other_than_plain_data_are_refused(tmp_path: Path, text: str, words: str) -> None:
    message = error(tmp_path, text)
    assert ":1: a: " in message and words in message, message


@pytest.mark.parametrize("value", ["2026-12-02", "2026-12-02 10:00:00", "2026-12-02T10:00:00Z"])
def test_a_date_must_be_quoted(tmp_path: Path, value: str) -> None:
    message = error(tmp_path, f"x: 1\nwhen: {value}\n")
    assert f":2: when: {value} reads as a date, not as text. Quote it: '{value}'." in message


def test_billion_laughs_stops_at_the_bound(tmp_path: Path) -> None:
    """Expanded, these aliases would be 10**9 values: the loader stops counting at the bound
    (its speed is the benchmark's business, not a test's)."""
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        levels.append(f"l{i}: &l{i} [" + ", ".join([f"*{'a' if i == 1 else f'l{i - 1}'}"] * 10)
                      + "]")
    message = error(tmp_path, "\n".join(levels) + "\n")
    assert f"more than {MAX_VALUES} values once its *aliases are expanded" in message


def test_an_alias_inside_itself_is_refused(tmp_path: Path) -> None:
    assert "an *alias refers to a value that contains it" in error(tmp_path, "a: &a [1, *a]\n")


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    message = error(tmp_path, "base: &b {x: 1}\nweb:\n  <<: *b\n  y: 2\n")
    assert ":3: web: a merge key `<<`" in message


def test_complex_keys_are_refused(tmp_path: Path) -> None:
    assert "a key is a list or mapping" in error(tmp_path, "? [a, b]\n: 1\n")


def test_deep_nesting_is_refused_without_a_traceback(tmp_path: Path) -> None:
    assert "nested" in error(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested more than" in error(tmp_path, "a: " + "[" * 150 + "]" * 150 + "\n")


def test_oversized_file_names_its_size(tmp_path: Path) -> None:
    message = error(tmp_path, b"a: '" + b"x" * MAX_BYTES + b"'\n")
    assert f"is {MAX_BYTES + 6} bytes, more than the {MAX_BYTES} bytes (1 MiB)" in message


def test_non_utf8_names_the_byte_and_line(tmp_path: Path) -> None:
    message = error(tmp_path, b"a: 1\nb: caf\xe9\n")
    assert ":2: file: byte 11 (0xe9) is not UTF-8 text. Save the file as UTF-8." in message


def test_control_characters_name_the_line(tmp_path: Path) -> None:
    assert ":2: file: the character #x0007" in error(tmp_path, "a: 1\nb: x\x07\n")


@pytest.mark.parametrize("text,line,words", [
    ("a: [1, 2\n", 2, "expected ',' or ']'"),
    ("a: 1\n---\nb: 2\n", 2, "expected a single document in the stream but found another"),
    ("a: *nowhere\n", 1, "found undefined alias 'nowhere'"),
    ("a: 'open\n", 2, "found unexpected end of stream"),
])
def test_syntax_errors_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "data.yaml"
    path.write_text(text)
    with pytest.raises(DataFileError, match=rf"^{re.escape(str(path))}:{line}: not valid YAML: "
                                            rf".*{re.escape(words)}.*\. Fix the syntax"):
        load_yaml(path, "test", "the test")


def test_missing_file_says_where_it_was_set(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"missing.yaml:1: file: cannot read the contract "
                                            r"file \(No such file or directory\)\. Check the path "
                                            r"given in --contract\."):
        load_yaml(tmp_path / "missing.yaml", "contract", "--contract")


def test_load_checked_raises_the_callers_error_class(tmp_path: Path) -> None:
    class MyError(ValueError):
        pass

    path = tmp_path / "data.yaml"
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(MyError, match=r":2: a: duplicate key 'a'"):
        load_checked(path, "test", "the test", MyError)
