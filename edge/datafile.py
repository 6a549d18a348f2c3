"""Load the project's YAML data files so that every error can name its file and line."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import yaml


NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class DataFileError(ValueError):
    """A data file that cannot be read or parsed; the message says where and what to do."""


class Mapping(dict):
    """A YAML mapping that remembers its line and the line of each key (1-based)."""

    line: int
    key_lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings carry their line numbers."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Mapping:
        mapping = Mapping(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
        return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                            _LineLoader.construct_mapping)


def load_checked(path: Path, what: str, where_set: str,
                 error: type[ValueError]) -> tuple[object, "Reader"]:
    """Parse a data file for validation: the document and a Reader raising `error`."""
    try:
        doc = load_yaml(path, what, where_set)
    except DataFileError as err:
        raise error(str(err)) from None
    return doc, Reader(path, error)


def load_yaml(path: Path, what: str, where_set: str) -> object:
    """Parse `path` (a `what` file, chosen by `where_set`) with line numbers on every mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DataFileError(f"{path}: cannot read the {what} file ({err.strerror}). "
                            f"Check the path given in {where_set}.") from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        problem = getattr(err, "problem", None) or str(err)
        raise DataFileError(f"{path}:{line}: not valid YAML: {problem}. Fix the syntax "
                            "(indentation, ':' after keys, matching brackets).") from None


class Reader:
    """Walks parsed YAML and turns every problem into one error naming file, line and fix."""

    def __init__(self, path: Path, error: type[ValueError]) -> None:
        self.path = path
        self.error = error

    def fail(self, where: Any, field: str, problem: str, fix: str, key: str | None = None) -> None:
        line = getattr(where, "key_lines", {}).get(key, None) if key else None
        line = line or getattr(where, "line", 0)
        raise self.error(f"{self.path}:{line}: {field}: {problem}. {fix}")

    def mapping(self, parent: Any, key: str, field: str, required: bool = True) -> Mapping:
        value = parent.get(key) if isinstance(parent, dict) else None
        if value is None and not required:
            empty = Mapping()
            empty.line, empty.key_lines = getattr(parent, "line", 0), {}
            return empty
        if not isinstance(value, dict):
            self.fail(parent, field, f"expected a mapping, found {type(value).__name__}",
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
