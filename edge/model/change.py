"""A change to the edge's desired state, as a reviewable, replayable data file.

    description: Flip the firewall's forward policy to drop everything
    vars: {firewall_forward_policy: drop}   # role variables (Ansible extra vars)
    new_vars: {name: value}                 # optional: a variable a role reads, defined nowhere
    stop: [ns1]                             # nodes whose containers stop (infrastructure)
    expect: unsafe                          # optional: what the author expects a preview to say
    accept: [degraded]                      # optional: verdict classes the author accepts

A change file is data, never code. `vars:` may set only what the roles' defaults or the
inventory's group_vars define, `new_vars:` only names a role reads, and neither may touch
Ansible's connection or magic variables (`forbidden`). A value may refer to the inventory's
variables ("{{ edge_api_name }}"), but edge renders it itself, per host, in a Jinja sandbox that
knows only those variables and a few pure filters (`render_vars`): no lookup, no call, no file,
no process. Ansible then gets the rendered values marked unsafe, so it never templates them again
(`ansible_extra_vars`). Every mistake is found when the file is loaded, as one message with file,
line, field and fix.

`accept:` lists the classes of finding the author takes knowingly (ACCEPTABLE: only `degraded`,
flows that keep answering but much slower, e.g. traffic moved onto the slow border path on
purpose): the preview still reports them, as notes, but they do not make it UNSAFE. Breakage is
never acceptable.

A change's digest covers what it does (vars and stop) and what it accepts, not its description,
so an apply can check that the preview it relies on was made for exactly this change: a SAFE
preview of a change that accepted being slower opens no gate for the same change without it.

The other kind of change is the working tree itself: edited roles, templates, variables or
topology, against the revision last applied to the live stack (`working_tree_change`). Its
digest is the Git tree of the desired-state files, so any further edit needs a new preview.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2 import nodes as jinja_ast
from jinja2.environment import TemplateExpression
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from edge import ROOT
from edge.model.datafile import Mapping, Reader, load_checked
from edge.model.inventory import inventory_from_outputs
from edge.model.revision import Revision, changed_paths, worktree_tree

EXPECTATIONS = ("safe", "unsafe")
# Verdict classes a change file may accept (`accept:`), and what each means.
ACCEPTABLE = {"degraded": "every flow keeps answering, but much slower than before"}
VAR_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
# Ansible's extra var holding the values that differ between hosts (see ansible_extra_vars).
BY_HOST = "edge_change_by_host"

# Ansible's magic variables: its own view of the run. An extra var of one of these names would
# shadow it for every task of every host (see `forbidden`).
MAGIC_NAMES = frozenset({
    "environment", "group_names", "groups", "hostvars", "inventory_dir", "inventory_file",
    "inventory_hostname", "inventory_hostname_short", "item", "omit", "play_hosts",
    "playbook_dir", "vars", BY_HOST,
})
# ansible_*: connection and interpreter settings (ansible_host, ansible_connection,
# ansible_become...); edge_ansible_*: the role site.yml includes on a node; role_*: Ansible's
# role_name/role_path/role_names, and the inventory's group names.
MAGIC_PREFIXES = ("ansible_", "edge_ansible_", "role_", "_")

# Pure filters of Jinja itself: none reaches a file, a process or the network.
FILTERS = ("abs", "capitalize", "count", "d", "default", "dictsort", "first", "float", "int",
           "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
           "rejectattr", "replace", "reverse", "round", "select", "selectattr", "sort",
           "string", "sum", "title", "trim", "unique", "upper")
# Bounds on what one expression may build, so that `'x' * 10**9` fails instead of eating memory.
MAX_TEXT = 65_536      # characters of a string, items of a list
MAX_BITS = 4_096       # bits of an integer


class ChangeError(ValueError):
    """A change file that cannot be used; the message names file, line and fix."""


def forbidden(name: str) -> str | None:
    """Why a change may never set `name`, whatever the roles define (None: it may).

    A change runs through Ansible as extra vars, which beat every other variable. Ansible's
    connection variables (ansible_host, ansible_connection, ansible_python_interpreter,
    ansible_become...) decide where and as whom a task runs: a change setting them could point
    a converge at another machine. Its magic variables (hostvars, groups, inventory_hostname,
    omit, playbook_dir, environment, vars, role_*, a loop's item) are its own view of the run:
    shadowing one changes what every task sees. edge_ansible_role picks the role a node runs.
    """
    if name.startswith(MAGIC_PREFIXES):
        prefix = next(p for p in MAGIC_PREFIXES if name.startswith(p))
        return f"names starting with '{prefix}' belong to Ansible and the inventory"
    if name in MAGIC_NAMES:
        return f"'{name}' is one of Ansible's own variables"
    return None


@dataclass(frozen=True)
class Change:
    """A validated change file."""

    path: Path
    description: str
    vars: dict[str, Any] = field(default_factory=dict)
    stop: tuple[str, ...] = ()
    expect: str | None = None
    tree: str | None = None        # a working-tree change: the desired-state tree it brings
    accept: tuple[str, ...] = ()   # verdict classes the author accepts (ACCEPTABLE)

    @property
    def digest(self) -> str:
        what = {"vars": self.vars, "stop": sorted(self.stop), "tree": self.tree}
        # Only when given, so that the digest of every change that accepts nothing stays as it
        # was (recorded previews keep opening the gate for them).
        body = json.dumps(what | ({"accept": sorted(self.accept)} if self.accept else {}),
                          sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def on(self, live: Revision) -> Revision:
        """The revision the live stack runs once this change is applied on top of `live`."""
        return Revision(self.tree or live.tree, {**live.vars, **self.vars},
                        tuple(sorted(set(live.stop) | set(self.stop))))


def working_tree_change(live: Revision) -> Change:
    """The working tree's edits to the desired state, against the revision `live` runs."""
    tree = worktree_tree()
    files = changed_paths(live.tree, tree)
    if not files:
        raise ChangeError("the working tree's desired state (roles, inventory, site.yml, "
                          f"topology) is the one the live stack runs (tree {tree[:12]}): "
                          "nothing to preview. Edit a role or variable, or give a change file.")
    shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    return Change(Path("."), f"working tree: {shown}", tree=tree)


# --- what the roles and the inventory define ----------------------------------------------------

class _AnsibleYaml(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):   # type: ignore[misc]
    """Reads Ansible's own files (role defaults, tasks, group_vars) for the names they hold.
    Ansible's tags (!unsafe, !vault) are legitimate there, so their values load as None.
    libyaml's loader when there is one: every change file load reads all the roles."""


_AnsibleYaml.add_multi_constructor("!", lambda loader, suffix, node: None)


def _ansible_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_AnsibleYaml)  # noqa: S506
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        said = " ".join(str(err).split())
        raise ChangeError(f"{path}:1: file: cannot read it to know the roles' variables "
                          f"({said}). Fix that file first.") from None


def _group_vars(root: Path) -> dict[str, dict[str, Any]]:
    """inventory/group_vars as group -> variables (group_vars/G.yml and group_vars/G/*.yml)."""
    folder = root / "inventory" / "group_vars"
    found: dict[str, dict[str, Any]] = {}
    for path in sorted([*folder.rglob("*.yml"), *folder.rglob("*.yaml")]):
        group = path.relative_to(folder).parts[0].removesuffix(path.suffix)
        found.setdefault(group, {}).update(_ansible_yaml(path) or {})
    return found


def _names_set_at_run_time(doc: Any, found: set[str]) -> None:
    """Names a task or role sets while it runs (register, vars:, set_fact, loop_var): an extra
    var of that name would beat them, so a change may not declare one."""
    if isinstance(doc, list):
        for item in doc:
            _names_set_at_run_time(item, found)
    elif isinstance(doc, dict):
        for key, value in doc.items():
            if key == "register" and isinstance(value, str):
                found.add(value)
            elif key == "loop_control" and isinstance(value, dict) and value.get("loop_var"):
                found.add(str(value["loop_var"]))
            elif key in ("vars", "set_fact", "ansible.builtin.set_fact") \
                    and isinstance(value, dict):
                found.update(str(k) for k in value)
            _names_set_at_run_time(value, found)


# Variables a role's template binds itself: {% set x = %}, {% for x, y in %}, {% macro x( %}.
_TEMPLATE_LOCALS = re.compile(r"{%-?\s*(?:set|for|macro)\s+([\w\s,]+?)\s*(?:=|\bin\b|\()")


def _inventory_names() -> set[str]:
    """The variables the inventory script gives every host, whatever the stack."""
    sample = {"nodes": {"n": {"role": "r", "ansible_role": "r", "tier": "t", "addresses": {},
                              "container": "c"}}}
    inventory = inventory_from_outputs(sample)
    return set(inventory["all"]["vars"]) | set(inventory["_meta"]["hostvars"]["n"])


def _templated(text: str) -> bool:
    return any(mark in text for mark in ("{{", "{%", "{#"))


@dataclass(frozen=True)
class Vocabulary:
    """The variables a change may name, as one tree's roles and inventory define them."""

    defined: dict[str, str]       # settable name -> the file that defines it
    set_at_run_time: frozenset[str]
    readable: frozenset[str]      # what a value's {{ }} may read: the inventory's variables
    role_texts: tuple[tuple[str, str], ...]   # (file, text) of what the roles read

    def reader_of(self, name: str) -> str | None:
        """The first role file that reads `name` (as a whole word), if any."""
        word = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")
        return next((path for path, text in self.role_texts if word.search(text)), None)


def vocabulary(root: Path = ROOT) -> Vocabulary:
    """What the roles (roles/*/defaults/main.yml) and inventory/group_vars of `root` define."""
    defined: dict[str, str] = {}
    for path in sorted((root / "roles").glob("*/defaults/main.yml")):
        defined.update(dict.fromkeys(map(str, _ansible_yaml(path) or {}),
                                     str(path.relative_to(root))))
    group_vars = _group_vars(root)
    for variables in group_vars.values():
        defined.update(dict.fromkeys(map(str, variables), "inventory/group_vars"))
    # The inventory's plain data (not its templates, which only Ansible could render).
    plain = {name for variables in group_vars.values() for name, value in variables.items()
             if not _templated(json.dumps(value, default=str))}
    # Where and how Ansible connects (ansible_*) is no business of a change's values.
    readable = {name for name in _inventory_names() | plain if not name.startswith("ansible_")}
    readable.add("inventory_hostname")
    runtime: set[str] = set()
    texts = []
    for path in sorted(p for p in (root / "roles").glob("*/*/**/*")
                       if p.is_file() and p.relative_to(root).parts[2] != "files"):
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append((str(path.relative_to(root)), text))
        folder = path.relative_to(root).parts[2]
        if path.suffix in (".yml", ".yaml") and folder != "defaults":
            doc = _ansible_yaml(path)
            _names_set_at_run_time(doc, runtime)
            if folder == "vars":
                runtime.update(map(str, doc or {}))
        for names in _TEMPLATE_LOCALS.findall(text):
            runtime.update(n.strip() for n in names.split(",") if n.strip())
    return Vocabulary(defined, frozenset(runtime - set(defined)), frozenset(readable),
                      tuple(texts))


# --- the sandbox that renders a change's values ------------------------------------------------

def _replace(value: Any, old: str, new: str, count: int | None = None) -> str:
    """Jinja's `replace`, refusing results longer than MAX_TEXT before building them."""
    text, old, new = str(value), str(old), str(new)
    times = text.count(old) if count is None else min(int(count), text.count(old))
    if len(text) + times * (len(new) - len(old)) > MAX_TEXT:
        raise SecurityError(f"replace would make a string longer than {MAX_TEXT} characters")
    return text.replace(old, new, -1 if count is None else int(count))


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja with nothing but the values it is given: no globals, the pure FILTERS, no
    attribute starting with '_', no changes to the data, an error for any unknown name, and
    bounds on `*`, `**` and `%` (the operators that can build huge values from small ones)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
        self.globals.clear()
        self.filters = {name: JINJA_FILTERS[name] for name in FILTERS} | {"replace": _replace}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("'%' formatting is not available; join text with '~'")
        ints = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and ints and right > 0 and left.bit_length() * right > MAX_BITS:
            raise SecurityError(f"{left} ** {right} has more than {MAX_BITS} bits")
        if operator == "*":
            if ints and left.bit_length() + right.bit_length() > MAX_BITS:
                raise SecurityError(f"the product has more than {MAX_BITS} bits")
            seq, times = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(seq, (str, list, tuple)) and isinstance(times, int) \
                    and len(seq) * times > MAX_TEXT:
                raise SecurityError(f"repeating {len(seq)} items {times} times makes more than "
                                    f"{MAX_TEXT}")
        return super().call_binop(context, operator, left, right)


_SANDBOX = _Sandbox()


def _attribute_names(tree: jinja_ast.Template) -> Iterator[str]:
    """Every attribute or key name an expression reads: `.name`, `['name']`, and the
    `attribute=` (or selectattr's first) argument of filters."""
    for node in tree.find_all(jinja_ast.Getattr):
        yield node.attr
    for node in tree.find_all(jinja_ast.Getitem):
        if isinstance(node.arg, jinja_ast.Const):
            yield str(node.arg.value)
    for node in tree.find_all(jinja_ast.Filter):
        named = [kw.value for kw in node.kwargs if kw.key == "attribute"]
        if node.name in ("selectattr", "rejectattr"):
            named += node.args[:1]
        yield from (str(n.value) for n in named if isinstance(n, jinja_ast.Const))


def template_problem(text: str, readable: frozenset[str]) -> tuple[str, str] | None:
    """What is wrong with a value's template and what to do, or None when it may be rendered:
    only {{ expressions }} over the `readable` variables, the allowed filters, no call, no
    private attribute."""
    if not _templated(text):
        return None
    try:
        tree = _SANDBOX.parse(text)
    except TemplateError as err:
        return (f"not a valid template ({str(err.message).rstrip('.')})",
                "Write `{{ name }}` or `{{ name | filter }}` with an inventory variable.")
    if any(not isinstance(node, jinja_ast.Output) for node in tree.body):
        return ("uses a {% statement %}", "A value holds only text and {{ expressions }}; "
                "write a choice as `{{ a if condition else b }}`.")
    call = next(iter(tree.find_all(jinja_ast.Call)), None)
    if call is not None:
        what = getattr(call.node, "name", getattr(call.node, "attr", "a function"))
        return (f"calls {what}(): a change file can run nothing (no lookup, query or method)",
                "Use the inventory's variables and the filters " + ", ".join(FILTERS) + ".")
    for name in _attribute_names(tree):
        if any(part.startswith("_") for part in name.split(".")):
            return (f"reads the private attribute '{name}'",
                    "Use only the inventory's data: `.name` or `['key']`, no '_' names.")
    for node in tree.find_all(jinja_ast.Filter):
        if node.name not in FILTERS:
            return (f"the filter '{node.name}' is not available here",
                    "Use one of: " + ", ".join(FILTERS) + ".")
    for node in tree.find_all(jinja_ast.Name):
        if node.name not in readable:
            runs = " (a change file can run nothing)" if node.name in ("lookup", "query", "q") \
                else ""
            near = difflib.get_close_matches(node.name, readable, 1)
            return (f"unknown variable '{node.name}'{runs}",
                    (f"Did you mean '{near[0]}'? " if near else "") + "A value may read only "
                    "the inventory's variables: " + ", ".join(sorted(readable)) + ".")
    try:
        _SANDBOX.from_string(tree)
    except TemplateError as err:   # e.g. a test that Jinja does not have
        return (f"not a valid template ({str(err.message).rstrip('.')})",
                "Check the expression's syntax.")
    return None


def _plain(value: Any) -> Any:
    """A rendered expression's result as plain data (str, int, float, bool, None, list, dict);
    StrictUndefined raises here, naming the variable."""
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, Iterator)):
        return [_plain(v) for v in value]
    str(value)       # an Undefined raises its UndefinedError here
    raise TypeError(f"the expression gives a {type(value).__name__}, which is not data")


def _render_text(text: str, variables: dict[str, Any]) -> Any:
    """One string rendered in the sandbox. A string that is one {{ expression }} keeps the
    expression's type (a list stays a list), as Ansible does; anything else renders to text."""
    if not _templated(text):
        return text
    tree = _SANDBOX.parse(text)
    outputs = [n for n in tree.body if isinstance(n, jinja_ast.Output)]
    parts = outputs[0].nodes if len(tree.body) == 1 and outputs else []
    if len(parts) == 1 and not isinstance(parts[0], jinja_ast.TemplateData):
        body = [jinja_ast.Assign(jinja_ast.Name("result", "store"), parts[0], lineno=1)]
        expression = TemplateExpression(_SANDBOX.from_string(jinja_ast.Template(body, lineno=1)),
                                        undefined_to_none=False)
        return _plain(expression(**variables))
    return _SANDBOX.from_string(tree).render(variables)


def _render(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return _render_text(value, variables)
    if isinstance(value, list):
        return [_render(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: _render(item, variables) for key, item in value.items()}
    return value


def render_vars(change_vars: dict[str, Any],
                host_vars_by_host: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """host -> the change's variables rendered with that host's inventory variables only.
    ChangeError names the variable, the host and what went wrong."""
    rendered: dict[str, dict[str, Any]] = {}
    for host, variables in sorted(host_vars_by_host.items()):
        for name, value in change_vars.items():
            try:
                rendered.setdefault(host, {})[name] = _render(value, variables)
            except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as err:
                said = f"{type(err).__name__}: {str(err).rstrip('.')}"
                raise ChangeError(f"vars.{name}: on host {host}, its value cannot be rendered "
                                  f"({said}). Fix the expression, or set a plain value.") from None
    return rendered


def inventory_host_vars(outputs: dict[str, Any], root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """host -> the inventory variables a change's value may read there, as Ansible would see
    them (the inventory's `all` vars, then group_vars, then the host's vars), from the stack's
    outputs and the group_vars of `root`. The stack's secrets are left out: a change's values
    show in logs and diffs."""
    inventory = inventory_from_outputs({k: v for k, v in outputs.items() if k != "secrets"})
    group_vars = _group_vars(root)
    readable = vocabulary(root).readable
    found = {}
    for host, own in inventory["_meta"]["hostvars"].items():
        groups = sorted(g for g, spec in inventory.items()
                        if isinstance(spec, dict) and host in spec.get("hosts", []))
        merged = dict(inventory["all"]["vars"]) | group_vars.get("all", {})
        for group in groups:
            merged |= group_vars.get(group, {})
        merged |= own | {"inventory_hostname": host}
        found[host] = {k: v for k, v in merged.items() if k in readable}
    return found


def mark_unsafe(value: Any) -> Any:
    """`value` with every string wrapped as {"__ansible_unsafe": text}. ansible-runner writes
    extra vars as JSON to env/extravars and Ansible reads that file as trusted templates
    (ansible-core 2.19, utils/vars.py load_extra_vars); its JSON decoder turns this wrapper
    into an untrusted string, which Ansible never templates (_json/_profiles/_legacy.py)."""
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, list):
        return [mark_unsafe(item) for item in value]
    if isinstance(value, dict):
        return {key: mark_unsafe(item) for key, item in value.items()}
    return value


def ansible_extra_vars(variables: dict[str, Any],
                       host_vars: Callable[[], dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Ansible's extra vars for a revision's variables: rendered by edge, marked unsafe.

    `host_vars` (called only when a value refers to a variable) gives each host's inventory
    variables. A value that renders the same on every host is passed as it is; one that differs
    goes to BY_HOST[host] and the variable becomes a template of edge's own that picks the
    host's entry (extra vars are the same for every host).
    """
    templated = {name: value for name, value in variables.items()
                 if _templated(json.dumps(value))}
    rendered = render_vars(templated, host_vars()) if templated else {}
    extra: dict[str, Any] = {}
    by_host: dict[str, dict[str, Any]] = {}
    for name, value in variables.items():
        if name not in templated:
            extra[name] = mark_unsafe(value)
            continue
        per_host = {host: values[name] for host, values in rendered.items()}
        if len({json.dumps(v, sort_keys=True) for v in per_host.values()}) == 1:
            extra[name] = mark_unsafe(per_host.popitem()[1])
            continue
        for host, rendered_value in per_host.items():
            by_host.setdefault(host, {})[name] = mark_unsafe(rendered_value)
        extra[name] = f"{{{{ {BY_HOST}[inventory_hostname][{name!r}] }}}}"
    if by_host:
        extra[BY_HOST] = by_host
    return extra


# --- loading a change file ---------------------------------------------------------------------

@dataclass
class _VarChecker:
    """Validates the variables of one change file against a Vocabulary."""

    r: Reader
    words: Vocabulary

    def name(self, where: Mapping, section: str, name: Any) -> str:
        field = f"{section}.{name}"
        if not isinstance(name, str) or not VAR_NAME_RE.match(name):
            self.r.fail(where, field, f"'{name}' is not a variable name",
                        "Use lower-case letters, digits and '_', starting with a letter.",
                        str(name))
        why = forbidden(name)
        if why:
            self.r.fail(where, field, f"a change may not set '{name}': {why}",
                        "Set only the roles' variables; remove this one.", name)
        return name

    def known(self, where: Mapping, name: Any) -> None:
        name = self.name(where, "vars", name)
        if name not in self.words.defined:
            near = difflib.get_close_matches(name, self.words.defined, 1)
            self.r.fail(where, f"vars.{name}", "no role default or group_vars defines "
                        f"'{name}'", (f"Did you mean '{near[0]}'? " if near else "") +
                        "Set a variable of roles/*/defaults/main.yml or inventory/group_vars/, "
                        "or declare a new one under `new_vars:` if a role reads it.", name)

    def new(self, where: Mapping, name: Any) -> None:
        name = self.name(where, "new_vars", name)
        field = f"new_vars.{name}"
        if name in self.words.defined:
            self.r.fail(where, field, f"'{name}' is already defined in "
                        f"{self.words.defined[name]}", "Set it under `vars:` instead.", name)
        if name in self.words.set_at_run_time:
            self.r.fail(where, field, f"the roles set '{name}' themselves while they run "
                        "(register, vars, set_fact, a loop or template variable)",
                        "Choose another name, one a role reads with a default.", name)
        if self.words.reader_of(name) is None:
            self.r.fail(where, field, f"no role reads '{name}', so setting it would change "
                        "nothing", "Give it the name a role template or task reads, or add "
                        "that use to the role first.", name)

    def value(self, value: Any, field: str, where: Mapping, key: str) -> None:
        """Every string of a value must be text or an allowed template; every key a plain
        name (Ansible reads `__ansible_*` keys of extra vars as its own markers)."""
        if isinstance(value, str):
            problem = template_problem(value, self.words.readable)
            if problem:
                self.r.fail(where, field, *problem, key)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.value(item, f"{field}[{i}]", where, key)
        elif isinstance(value, dict):
            for k, item in value.items():
                if not isinstance(k, str) or k.startswith("__") or _templated(k):
                    self.r.fail(value, f"{field}.{k}", f"'{k}' is not usable as a key",
                                "Use a plain name as the key (no '__' prefix, no {{ }}).", str(k))
                self.value(item, f"{field}.{k}", value, k)


def load_change(path: Path | str, nodes: set[str] | None = None, root: Path = ROOT) -> Change:
    """Load and validate a change file (against the stack's `nodes`, when given, and the
    variables of the roles and inventory of `root`)."""
    path = Path(path)
    doc, r = load_checked(path, "change", "the command line", ChangeError)
    if not isinstance(doc, dict):
        raise ChangeError(f"{path}:1: file: a change is a mapping with description, vars, "
                          "new_vars and/or stop. See changes/examples/.")
    known = ("description", "vars", "new_vars", "stop", "expect", "accept")
    for key in doc:
        if key not in known:
            r.fail(doc, str(key), "unknown key", f"Use only: {', '.join(known)}.", str(key))
    if not isinstance(doc.get("description"), str) or not doc["description"].strip():
        r.fail(doc, "description", "missing", "Say in one line what the change does.",
               "description")
    variables = r.mapping(doc, "vars", "vars", required=False)
    new_vars = r.mapping(doc, "new_vars", "new_vars", required=False)
    check = _VarChecker(r, vocabulary(root))
    for name in variables:
        check.known(variables, name)
    for name in new_vars:
        check.new(new_vars, name)
    for section, mapping in (("vars", variables), ("new_vars", new_vars)):
        for name, value in mapping.items():
            check.value(value, f"{section}.{name}", mapping, name)
    stop = doc.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(n, str) for n in stop):
        r.fail(doc, "stop", "expected a list of node names", "Write e.g. `stop: [ns1]`.", "stop")
    unknown = sorted(set(stop) - nodes) if nodes is not None else []
    if unknown:
        r.fail(doc, "stop", f"no node {unknown} in the stack",
               f"Name nodes of the topology: {', '.join(sorted(nodes or []))}.", "stop")
    if not variables and not new_vars and not stop:
        r.fail(doc, "vars", "the change changes nothing", "Give `vars:`, `new_vars:` or `stop:`.",
               "description")
    expect = doc.get("expect")
    if expect is not None and expect not in EXPECTATIONS:
        r.fail(doc, "expect", f"'{expect}' is neither safe nor unsafe",
               "Write `expect: safe` or `expect: unsafe`, or leave it out.", "expect")
    return Change(path, doc["description"].strip(), dict(variables) | dict(new_vars),
                  tuple(stop), expect, accept=_accepted(r, doc))


def _accepted(r: Reader, doc: Mapping) -> tuple[str, ...]:
    """The `accept:` list: classes of ACCEPTABLE, each once."""
    accept = doc.get("accept")
    if accept is None:
        return ()
    kinds = ", ".join(ACCEPTABLE)
    if not isinstance(accept, list) or not accept or \
            not all(isinstance(a, str) for a in accept):
        r.fail(doc, "accept", "expected a list of verdict classes",
               f"Write e.g. `accept: [degraded]` (classes: {kinds}), or leave it out.", "accept")
    for item in accept:
        if item not in ACCEPTABLE:
            near = difflib.get_close_matches(str(item).lower(), ACCEPTABLE, 1)
            r.fail(doc, "accept", f"'{item}' is not a class a change may accept",
                   (f"Did you mean '{near[0]}'? " if near else "") + f"Only {kinds} may be "
                   "accepted (" + "; ".join(f"{k}: {v}" for k, v in ACCEPTABLE.items()) +
                   "); breakage never is.", "accept")
    if len(set(accept)) != len(accept):
        r.fail(doc, "accept", "a class is listed twice", "List each class once.", "accept")
    return tuple(sorted(accept))
