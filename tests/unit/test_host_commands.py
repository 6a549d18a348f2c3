"""Every command the project runs on this machine is installed by setup, or ships with the image.

Why: CI runs on the developers' own machine, where a package installed by hand stays installed, so
a green CI once hid that setup never installed debootstrap. This test reads what the project
actually calls on the host (the shell scripts' commands, and the literal argv[0] of every
subprocess call in the Python code that runs on the host) and checks each against
scripts/host-packages, the list setup installs from:

- a command missing from the list fails, unless its Debian package has priority required or
  important (those are on every Debian machine: coreutils, tar, grep, ...);
- a listed command must come from the package the list names (`dpkg -S`), so the list cannot lie;
- a command listed as `image` (shipped with this kind of machine, e.g. Go and CPython) must not come
  from an optional Debian package: that would be a hand-installed package in disguise.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "scripts" / "host-packages"
SHELL_SCRIPTS = [ROOT / ".ci" / "run", ROOT / "scripts" / "setup", ROOT / "Makefile",
                 *sorted((ROOT / "scripts").glob("*.sh"))]
PYTHON_DIRS = ["edge", "bench", "inventory", "scripts", "tests"]
# Python files that run inside lab containers (copied there), not on this machine.
IN_CONTAINER = {"edge/lab/netem_agent.py", "edge/lab/probe_agent.py"}
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "which"}
# Words that start a simple command without being one.
PREFIXES = {"if", "then", "else", "elif", "do", "while", "until", "!", "time", "exec", "command",
            "{", "}", "fi", "done", "esac", "return"}
# Simple commands whose words are names, not commands.
DECLARATIONS = {"local", "export", "readonly", "declare", "for", "case", "unset"}
WRAPPERS = {"timeout", "setsid", "nohup", "env"}
ESSENTIAL_PRIORITIES = {"required", "important"}


def manifest() -> dict[str, str]:
    """command -> package (or "image") from scripts/host-packages."""
    entries: dict[str, str] = {}
    for line in MANIFEST.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            assert len(words) >= 2, f"{MANIFEST}: '{line}': write `command package who-calls-it`"
            entries[words[0]] = words[1]
    return entries


def _shell_lines(text: str) -> list[str]:
    """Command text of a script: comments and single-quoted strings (awk, sed programs) dropped,
    `$(...)` inside double quotes kept as commands of their own, the rest of the string dropped."""
    lines = []
    text = re.sub(r"(^|\s)#.*$", "", text, flags=re.MULTILINE)
    text = re.sub(r"'[^']*'", "''", text)           # may span lines (awk programs)
    text = re.sub(r"\(\((.|\n)*?\)\)", "0", text)      # arithmetic
    text = re.sub(r"\b\w+\+?=\([^)]*\)", "", text)      # array assignments
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw
        for quoted in re.findall(r'"((?:[^"\\]|\\.)*)"', line):
            lines.extend(re.findall(r"\$\(([^()]*)\)", quoted))
        lines.append(re.sub(r'"(?:[^"\\]|\\.)*"', '""', line))
    return lines


def _functions(path: Path) -> set[str]:
    """The shell functions a script defines, itself or in the files it sources (`. FILE`, a
    path from the repository's root, perhaps behind a variable: `. "$REPO/scripts/x.sh"`)."""
    text = path.read_text()
    names = set(re.findall(r"^\s*([A-Za-z_][\w-]*)\s*\(\)\s*\{", text, re.MULTILINE))
    for sourced in re.findall(r'^\s*(?:\.|source)\s+"?(?:\$\{?\w+\}?/)?([\w./-]+)"?', text,
                              re.MULTILINE):
        if (ROOT / sourced).is_file() and ROOT / sourced != path:
            names |= _functions(ROOT / sourced)
    return names


def shell_commands(path: Path) -> set[str]:
    """The first word of every simple command of a shell script or Makefile recipe."""
    text = path.read_text()
    functions = _functions(path)
    found: set[str] = set()
    for line in _shell_lines(text):
        if path.name == "Makefile" and not line.startswith("\t"):
            continue
        for part in re.split(r"\|\||&&|[;|&()`]|\$\(", line.lstrip("\t@")):
            words = part.split()
            if words and words[0] in DECLARATIONS:
                continue
            while words and (words[0] in PREFIXES or re.match(r"^[A-Za-z_]\w*(\[.*\])?\+?=", words[0])):
                words = words[1:]
            while words and words[0] in WRAPPERS:
                found.add(words[0])
                words = [w for w in words[1:] if not w.startswith("-")]
                while words and re.fullmatch(r"[\d.]+[smh]?", words[0]):
                    words = words[1:]
            if words and re.fullmatch(r"[a-z][a-z0-9._+-]*", words[0]) and words[0] not in functions:
                found.add(words[0])
    return found - _shell_builtins()


@functools.cache
def _shell_builtins() -> frozenset[str]:
    listed = subprocess.run(["bash", "-c", "compgen -b; compgen -k"], capture_output=True,
                            text=True, check=True).stdout.split()
    return frozenset(listed)


def python_commands(path: Path) -> set[str]:
    """argv[0] of every subprocess call (and shutil.which) with a literal command name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"subprocess", "shutil"}
                and node.func.attr in SUBPROCESS_CALLS and node.args):
            continue
        first = node.args[0]
        if isinstance(first, (ast.List, ast.Tuple)) and first.elts:
            first = first.elts[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            word = first.value.split()[0] if node.func.attr != "which" else first.value
            if "/" not in word:
                found.add(word)
    return found


def host_commands() -> dict[str, set[str]]:
    """command -> the files that run it on this machine."""
    callers: dict[str, set[str]] = {}
    sources = [*SHELL_SCRIPTS]
    for directory in PYTHON_DIRS:
        sources += sorted((ROOT / directory).rglob("*.py"))
    for path in sources:
        relative = path.relative_to(ROOT).as_posix()
        if relative in IN_CONTAINER:
            continue
        commands = python_commands(path) if path.suffix == ".py" else shell_commands(path)
        for command in commands:
            callers.setdefault(command, set()).add(relative)
    return callers


@functools.cache
def owner(command: str) -> tuple[str | None, str | None]:
    """(Debian package owning the command's file, its priority), or (None, None)."""
    path = shutil.which(command)
    if path is None:
        return None, None
    real = os.path.realpath(path)
    # /bin and /usr/bin are one directory on merged-/usr systems: dpkg may know either spelling.
    spellings = [path, real, *(re.sub(r"^/usr(/s?bin/)", r"\1", p) for p in (path, real)),
                 *(re.sub(r"^(/s?bin/)", r"/usr\1", p) for p in (path, real))]
    for candidate in dict.fromkeys(spellings):
        result = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        if result.returncode == 0:
            package = result.stdout.split(":", 1)[0].split(",")[0].strip()
            priority = subprocess.run(["dpkg-query", "-W", "-f", "${Priority}", package],
                                      capture_output=True, text=True).stdout.strip()
            return package, priority
    return None, None


def _installs(package: str, command: str, path: str) -> bool:
    """Whether the package installs the command itself, or the file it resolves to through
    Debian's alternatives (awk -> mawk, iptables -> iptables-nft)."""
    files = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True).stdout
    real = os.path.basename(os.path.realpath(path))
    return any(re.search(rf"^/(usr/)?s?bin/{re.escape(name)}$", files, re.MULTILINE)
               for name in {command, real})


needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-query") is None,
                                reason="not a Debian machine: package ownership cannot be read")


def test_the_scanner_sees_the_commands_that_once_hid():
    """The scanner itself: debootstrap (Python, edge.engines.images), dockerd and pgrep (shell)."""
    callers = host_commands()
    assert "edge/engines/images.py" in callers["debootstrap"]
    assert "scripts/setup-docker.sh" in callers["dockerd"]
    assert "scripts/setup-docker.sh" in callers["pgrep"]
    assert "edge/model/revision.py" in callers["git"]
    assert "edge_cache_dir" not in callers       # a function of the sourced setup-cache.sh
    assert not {"if", "then", "say", "die", "step", "run_job"} & set(callers)


def test_every_manifest_line_names_a_command_and_a_package():
    for command, package in manifest().items():
        assert re.fullmatch(r"[a-z][a-z0-9._+-]*", command), command
        assert package == "image" or re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", package), package


@needs_dpkg
def test_every_host_command_is_installed_by_setup_or_essential():
    listed = manifest()
    problems = []
    for command, callers in sorted(host_commands().items()):
        where = ", ".join(sorted(callers))
        if command in listed:
            continue
        package, priority = owner(command)
        if package is None:
            problems.append(f"{command} (called by {where}) is not on this machine or not from "
                            "a Debian package: list it in scripts/host-packages")
        elif priority not in ESSENTIAL_PRIORITIES:
            problems.append(f"{command} (called by {where}) comes from Debian package {package} "
                            f"(priority {priority}), which setup does not install: add "
                            f"`{command} {package}` to scripts/host-packages")
    assert not problems, "\n".join(problems)


@needs_dpkg
def test_each_listed_command_comes_from_the_listed_package():
    problems = []
    for command, listed in sorted(manifest().items()):
        path = shutil.which(command)
        if path is None:
            problems.append(f"{command} is listed but not installed: run scripts/setup")
            continue
        package, priority = owner(command)
        if listed == "image":
            if package is not None and priority not in ESSENTIAL_PRIORITIES:
                problems.append(f"{command} is listed as shipped with the image, but {path} comes "
                                f"from Debian package {package} (priority {priority}), which a "
                                f"new machine does not have: list `{command} {package}`")
        elif not _installs(listed, command, path):
            problems.append(f"{command} is listed under package {listed}, which installs no "
                            f"{command} command (dpkg-query -L {listed})")
    assert not problems, "\n".join(problems)


def test_setup_installs_from_the_list():
    """The installer reads the same list (one source), and setup runs it before anything else."""
    installer = (ROOT / "scripts" / "setup-host-packages.sh").read_text()
    assert "scripts/host-packages" in installer
    setup = (ROOT / "scripts" / "setup").read_text()
    assert setup.index("scripts/setup-host-packages.sh\n") < setup.index("\nrun_job ")
    assert shlex.split("apt-get install")[0] in shell_commands(ROOT / "scripts" / "setup-host-packages.sh")
