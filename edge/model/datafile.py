"""Load the project's YAML data files strictly, so that every error can name its file and line.

The data files (topology, contract, change files, the replay catalog) are what a reviewer reads
and what edge acts on, so the two must never differ. PyYAML's SafeLoader is not enough for that:

- a duplicate key silently keeps the last value (the reviewer reads `drop`, `accept` is applied);
- `2026-12-02` becomes a datetime, `!!binary`/`!!set`/`!!omap` become bytes, sets and pairs;
- aliases expand without bound (a few hundred bytes of "billion laughs" make 10^9 values).

So a data file is UTF-8 text of at most MAX_BYTES holding one document of plain YAML data only
(str, int, float, bool, null, list, mapping), with unique keys and at most MAX_VALUES values once
its aliases are expanded. Each violation is one DataFileError "<file>:<line>: <field>: <what is
wrong>. <what to do>."
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")

MAX_BYTES = 1024 * 1024
# Values once aliases are expanded. The project's largest file (the contract) has about a
# thousand; a billion-laughs document reaches this bound after a few levels and stops there.
MAX_VALUES = 100_000
# PyYAML composes nested collections recursively: a deeper document would end in a RecursionError.
MAX_DEPTH = 100

_CORE = "tag:yaml.org,2002:"
# The tags of plain data: what a reader sees is what is loaded.
PLAIN_TAGS = {f"{_CORE}{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")}
FILE = "file"   # the field named by an error about the file as a whole


class DataFileError(ValueError):
    """A data file that cannot be read or parsed; the message says where and what to do."""


class Mapping(dict):
    """A YAML mapping that remembers its line and the line of each key (1-based)."""

    line: int
    key_lines: dict[str, int]


def kind(value: Any) -> str:
    """A value's kind in a data file's own words (for "expected a mapping, found a list")."""
    if value is None:
        return "nothing"
    return {bool: "true/false", int: "a number", float: "a number", str: "a string",
            list: "a list"}.get(type(value), "a mapping" if isinstance(value, dict) else
                                type(value).__name__)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings carry their line numbers."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Mapping:
        mapping = Mapping(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
        return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                            _LineLoader.construct_mapping)


def _shown(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


@dataclass
class _Checker:
    """Walks a composed YAML node graph, before anything is constructed, and rejects what is not
    plain data. The walk follows aliases, so it counts values as the loaded data would hold them,
    and stops at MAX_VALUES: an alias bomb costs this walk MAX_VALUES steps, never more."""

    path: Path
    loader: _LineLoader
    values: int = 0

    def fail(self, node: yaml.Node, field: str, problem: str, fix: str) -> None:
        shown = field if len(field) <= 80 else field[:77] + "..."
        raise DataFileError(f"{self.path}:{node.start_mark.line + 1}: {shown or FILE}: "
                            f"{problem}. {fix}.")

    def check(self, node: yaml.Node, field: str = "", inside: tuple[int, ...] = ()) -> None:
        """Check `node` at `field`, below the collections `inside` (their ids)."""
        self.values += 1
        if self.values > MAX_VALUES:
            self.fail(node, field, f"the document holds more than {MAX_VALUES} values once its "
                      "*aliases are expanded", "Write each value out once, without chains of "
                      "&anchors and *aliases, or split the file")
        if id(node) in inside:
            self.fail(node, field, "an *alias refers to a value that contains it",
                      "Write the value out; data cannot contain itself")
        if len(inside) > MAX_DEPTH:
            self.fail(node, field, f"nested more than {MAX_DEPTH} levels deep",
                      "Flatten the data")
        self.tag(node, field)
        inside = (*inside, id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.check(item, f"{field}[{i}]", inside)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                key = self.key(key_node, field)
                name = f"{field}.{key}" if field else str(key)
                if key in seen:
                    self.fail(key_node, name, f"duplicate key '{key}' (first on line "
                              f"{seen[key]}); YAML would silently keep only the last one",
                              "Keep one of them")
                seen[key] = key_node.start_mark.line + 1
                self.check(value_node, name, inside)

    def key(self, node: yaml.Node, field: str) -> Any:
        if node.tag == f"{_CORE}merge":
            self.fail(node, field, "a merge key `<<` copies entries from elsewhere",
                      "Write the entries out where they apply")
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, field, "a key is a list or mapping", "Use a plain name as the key")
        self.tag(node, field)
        return self.loader.construct_object(node)

    def tag(self, node: yaml.Node, field: str) -> None:
        if node.tag in PLAIN_TAGS:
            return
        if node.tag == f"{_CORE}timestamp":
            self.fail(node, field, f"{node.value} reads as a date, not as text",
                      f"Quote it: '{node.value}'")
        self.fail(node, field, f"the tag {_shown(node.tag)} is not plain data",
                  "Write a plain string, number, true/false, null, list or mapping (no `!` tags)")


def load_checked(path: Path, what: str, where_set: str,
                 error: type[ValueError]) -> tuple[object, "Reader"]:
    """Parse a data file for validation: the document and a Reader raising `error`."""
    try:
        doc = load_yaml(path, what, where_set)
    except DataFileError as err:
        raise error(str(err)) from None
    return doc, Reader(path, error)


def load_yaml(path: Path, what: str, where_set: str) -> object:
    """Parse `path` (a `what` file, chosen by `where_set`) strictly, with line numbers on every
    mapping; DataFileError for anything but plain UTF-8 YAML data (see the module docstring)."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DataFileError(f"{path}:1: {FILE}: the {what} file is {size} bytes, more than "
                                f"the {MAX_BYTES} bytes (1 MiB) a data file may have. Keep only "
                                "what it needs, or split it.")
        data = path.read_bytes()
    except OSError as err:
        raise DataFileError(f"{path}:1: {FILE}: cannot read the {what} file ({err.strerror}). "
                            f"Check the path given in {where_set}.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataFileError(f"{path}:{line}: {FILE}: byte {err.start} (0x{data[err.start]:02x}) "
                            "is not UTF-8 text. Save the file as UTF-8.") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path) -> object:
    """One document of plain YAML data from `text` (read from `path`, named in errors)."""
    loader = None
    try:
        loader = _LineLoader(text)      # checks the characters first
        node = loader.get_single_node()
        if node is None:
            return None
        _Checker(path, loader).check(node)
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise DataFileError(_syntax_error(err, text, path)) from None
    except RecursionError:
        raise DataFileError(f"{path}:1: {FILE}: nested too deeply to read. Flatten the "
                            "data.") from None
    finally:
        if loader is not None:
            loader.dispose()


def _syntax_error(err: yaml.YAMLError, text: str, path: Path) -> str:
    if isinstance(err, yaml.reader.ReaderError):
        line = text.count("\n", 0, err.position) + 1
        return (f"{path}:{line}: {FILE}: the character #x{err.character:04x} is not allowed in "
                "YAML. Remove it, or write it as an escape inside a double-quoted string.")
    mark = getattr(err, "problem_mark", None)
    line = mark.line + 1 if mark else 1
    said = [getattr(err, "context", None), getattr(err, "problem", None)]
    problem = " ".join(part for part in said if part).rstrip(".") or str(err)
    # No field: the parser cannot tell which one (and "not valid YAML" takes its place).
    return (f"{path}:{line}: not valid YAML: {problem}. Fix the syntax (indentation, "
            "':' after keys, matching brackets and quotes, one document).")


class Reader:
    """Walks parsed YAML and turns every problem into one error naming file, line and fix."""

    def __init__(self, path: Path, error: type[ValueError]) -> None:
        self.path = path
        self.error = error

    def fail(self, where: Any, field: str, problem: str, fix: str, key: str | None = None) -> None:
        line = getattr(where, "key_lines", {}).get(key, None) if key else None
        line = line or getattr(where, "line", 1)
        raise self.error(f"{self.path}:{line}: {field}: {problem}. {fix}")

    def mapping(self, parent: Any, key: str, field: str, required: bool = True) -> Mapping:
        value = parent.get(key) if isinstance(parent, dict) else None
        if value is None and not required:
            empty = Mapping()
            empty.line, empty.key_lines = getattr(parent, "line", 0), {}
            return empty
        if not isinstance(value, dict):
            self.fail(parent, field, f"expected a mapping, found {kind(value)}",
                      f"Write `{key}:` followed by indented `name: value` entries.", key)
        return value

    def name(self, parent: Any, key: Any, field: str) -> str:
        if not isinstance(key, str) or not NAME_RE.match(key):
            self.fail(parent, field, f"'{key}' is not a valid name",
                      "Use lower-case letters, digits and '-', starting with a letter, at most 31 "
                      "characters.", str(key))
        return key

    def entry(self, parent: Any, key: Any, field: str, shape: str) -> Any:
        """A named entry of a mapping: its name must be valid and its value a mapping."""
        self.name(parent, key, field)
        value = parent[key]
        if not isinstance(value, dict):
            self.fail(parent, field, f"expected a mapping {shape}", f"Write {shape} under it.",
                      str(key))
        return value

    def number(self, parent: Any, key: str, field: str, default: float,
               unit: str = "seconds") -> float:
        """A positive number (an int or a float, never a string or a bool), or `default`."""
        value = parent.get(key, default) if isinstance(parent, dict) else default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.fail(parent, field, f"'{value}' is not a positive number of {unit}",
                      f"Write a number such as {default:g}.", key)
        return float(value)

    def network(self, parent: Any, key: str, field: str) -> ipaddress.IPv4Network:
        try:
            return ipaddress.IPv4Network(str(parent.get(key)), strict=True)
        except ValueError as err:
            self.fail(parent, field, f"'{parent.get(key)}' is not an IPv4 prefix ({err})",
                      "Write a prefix such as 198.18.2.0/24 with no host bits set.", key)
        raise AssertionError("unreachable")

    def address(self, parent: Any, key: str, field: str) -> ipaddress.IPv4Address:
        try:
            return ipaddress.IPv4Address(str(parent.get(key)))
        except ValueError:
            self.fail(parent, field, f"'{parent.get(key)}' is not an IPv4 address",
                      "Write a dotted address such as 198.18.2.10.", key)
        raise AssertionError("unreachable")
