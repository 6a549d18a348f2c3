"""The lab's base container image: built locally from this machine's Debian mirror.

Why not a Dockerfile: no container registry is reachable, so there is no `debian:bookworm` to start
FROM. The only package source is the machine's own apt mirror, so the root filesystem is
bootstrapped from it with debootstrap and turned into a one-layer image with `docker import`.

Why a content-hashed tag: the tag changes exactly when an input changes (packages.txt, every file
under images/base/ including the rootfs/ overlay, and RECIPE_VERSION for the code below), so
`ensure_image` skips the slow build whenever an image with that tag exists, and a changed input
can never be served by a stale image.

Why stdlib only: bootstrap scripts call it before the project's virtualenv exists.

Usage: `python3 -m edge.engines.images ref` prints the tag without building; `python3 -m edge.engines.images
tarball` builds the cached root filesystem without needing an engine; `python3 -m edge.engines.images
ensure` builds (or imports) the image if needed and prints the tag. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

# Bump whenever the build below changes what ends up in the image: the tag must change with it.
RECIPE_VERSION = "2"

IMAGE_REPOSITORY = "edge-testbed/base"
BASE_DIR = Path("images") / "base"
# A variant is the base recipe plus folders of its own (packages.txt and a rootfs/ overlay each),
# applied in order: `engine` adds Debian's docker.io, so that a second Docker engine can run in a
# container (edge/engines/swarm.py). Variants leave the base image's tag alone.
VARIANTS: dict[str, tuple[Path, ...]] = {
    "base": (BASE_DIR,),
    "engine": (BASE_DIR, Path("images") / "engine"),
}
PACKAGES_FILE = "packages.txt"
ROOTFS_DIR = "rootfs"
# Provided by the rootfs/ overlay: fixes the container's routes, then execs tini + supervisord.
ENTRYPOINT = "/usr/local/sbin/edge-init"
LABELS = {"edge-testbed.project": "edge-testbed", "edge-testbed.image": "base"}
IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
# Cached root filesystem tarballs kept (newest first); each is a few hundred MB.
CACHE_KEEP = 2
# debootstrap needs a directory where device nodes work (/tmp may be a nodev tmpfs).
BUILD_PARENT = Path(os.environ.get("EDGE_BUILD_DIR", "/var/tmp"))
APT_URI_SCHEMES = ("http", "https", "ftp", "file")

Log = Callable[[str], None]


class ImageError(RuntimeError):
    """Building or finding the base image failed; the message says what to do about it."""


def log_to_stderr(message: str) -> None:
    """Default progress sink: stderr, so that stdout carries only the image reference."""
    print(message, file=sys.stderr, flush=True)


# --- the tag --------------------------------------------------------------------------------------


def read_packages(path: Path) -> list[str]:
    """Package names of packages.txt: one per line, `#` comments, order kept, duplicates dropped.

    Names are checked here so that a typo fails before a long debootstrap run, with the line.
    """
    packages: list[str] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
            raise ImageError(f"{path}:{number}: {name!r} is not a Debian package name")
        if name not in packages:
            packages.append(name)
    if not packages:
        raise ImageError(f"{path}: no packages listed")
    return packages


def _tree_entries(top: Path) -> list[Path]:
    """Every directory, file and symlink under `top`, in a stable order (symlinks not followed)."""
    entries: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top):
        entries.extend(Path(dirpath, name) for name in dirnames + filenames)
    return sorted(entries, key=lambda path: path.relative_to(top).as_posix())


def _feed(digest: hashlib._Hash, *fields: bytes) -> None:
    """Add length-prefixed fields, so that no two different inputs can hash the same stream."""
    for field in fields:
        digest.update(b"%d:" % len(field))
        digest.update(field)


def _hash_entry(digest: hashlib._Hash, top: Path, path: Path) -> None:
    """Hash what the image gets from one entry: its path, kind, permission bits and content."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        kind, content = b"symlink", os.readlink(path).encode()
    elif stat.S_ISDIR(info.st_mode):
        kind, content = b"dir", b""
    elif stat.S_ISREG(info.st_mode):
        kind, content = b"file", path.read_bytes()
    else:
        raise ImageError(f"{path}: only files, directories and symlinks can go into the image")
    relative = path.relative_to(top).as_posix().encode()
    _feed(digest, kind, relative, b"%o" % stat.S_IMODE(info.st_mode), content)


def recipe_dirs(repo_root: Path, variant: str = "base") -> list[Path]:
    """The folders of a variant's recipe, in the order they are applied; each has packages.txt."""
    if variant not in VARIANTS:
        raise ImageError(f"unknown image variant {variant!r}: use one of {', '.join(VARIANTS)}")
    folders = [repo_root / folder for folder in VARIANTS[variant]]
    for folder in folders:
        if not (folder / PACKAGES_FILE).is_file():
            raise ImageError(f"{folder / PACKAGES_FILE} is missing")
    return folders


def image_ref(repo_root: Path, variant: str = "base") -> str:
    """The image's tag for the current inputs: `edge-testbed/<variant>:<12 hex of sha256>`.

    Pure: reads only files under the variant's folders (packages.txt, the rootfs/ overlay,
    anything else there) and RECIPE_VERSION. Modification times are ignored: a fresh checkout
    gets the same tag. Folders after the first are fed with their name, so the base tag is the
    same as before variants existed and moving a file from one folder to the next changes a tag.
    """
    digest = hashlib.sha256()
    _feed(digest, b"recipe", RECIPE_VERSION.encode())
    for number, folder in enumerate(recipe_dirs(repo_root, variant)):
        if number:
            _feed(digest, b"folder", folder.name.encode())
        for path in _tree_entries(folder):
            _hash_entry(digest, folder, path)
    return f"{IMAGE_REPOSITORY.rsplit('/', 1)[0]}/{variant}:{digest.hexdigest()[:12]}"


# --- the machine's Debian mirror ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AptSource:
    """One (type, URI, suite) combination of an apt sources entry."""

    kind: str  # "deb" or "deb-src"
    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str | None = None


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Field dictionaries (lower-case keys) of a deb822 file; continuation lines are joined."""
    fields: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif line[0] in " \t":
            if key is not None:
                fields[key] += "\n" + line.strip()
        else:
            name, separator, value = line.partition(":")
            if separator:
                key = name.strip().lower()
                fields[key] = value.strip()
    if fields:
        yield fields


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Entries of a `*.sources` file (deb822 format); stanzas with `Enabled: no` are skipped."""
    sources: list[AptSource] = []
    for fields in _deb822_stanzas(text):
        if fields.get("enabled", "yes").strip().lower() == "no":
            continue
        components = tuple(fields.get("components", "").split())
        signed_by = fields.get("signed-by") or None
        for kind in fields.get("types", "").split():
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    sources.append(AptSource(kind, uri, suite, components, signed_by))
    return sources


_ONE_LINE = re.compile(r"(deb|deb-src)\s+(?:\[([^\]]*)\]\s*)?(\S+)\s+(\S+)\s*(.*)")


def parse_legacy_sources(text: str) -> list[AptSource]:
    """Entries of a `sources.list`-style file: `deb [options] URI suite components...`."""
    sources: list[AptSource] = []
    for raw in text.splitlines():
        match = _ONE_LINE.fullmatch(raw.split("#", 1)[0].strip())
        if match is None:
            continue
        kind, options, uri, suite, components = match.groups()
        settings = dict(option.split("=", 1) for option in (options or "").split() if "=" in option)
        signed_by = settings.get("signed-by")
        sources.append(AptSource(kind, uri, suite, tuple(components.split()), signed_by))
    return sources


def read_apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """All entries apt itself would read: sources.list, then sources.list.d/ in name order."""
    files = [etc_apt / "sources.list"]
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    sources: list[AptSource] = []
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        parse = parse_deb822_sources if path.suffix == ".sources" else parse_legacy_sources
        sources += parse(text)
    return sources


def host_codename(os_release: Path = Path("/etc/os-release")) -> str | None:
    """This machine's release codename (`bookworm`), or None if os-release does not say."""
    if not os_release.is_file():
        return None
    for line in os_release.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_CODENAME":
            return value.strip().strip("\"'") or None
    return None


def release_origin(source: AptSource, lists_dir: Path) -> str | None:
    """`Origin:` of the Release file apt downloaded for this entry, or None if there is none.

    It is the one certain way to tell the Debian archive from a third-party repository that also
    publishes a `bookworm main` (apt names the file after the URI, like its URItoFileName).
    """
    location = source.uri.split("://", 1)[-1]
    host, slash, path = location.partition("/")
    location = host.rsplit("@", 1)[-1] + slash + path  # credentials are not part of the name
    prefix = f"{location.rstrip('/')}/dists/{source.suite}/".replace("/", "_")
    for name in ("InRelease", "Release"):
        release = lists_dir / (prefix + name)
        if release.is_file():
            text = release.read_text(encoding="utf-8", errors="replace")
            match = re.search(r"^Origin:\s*(.+?)\s*$", text, re.MULTILINE)
            return match.group(1) if match else None
    return None


def _debian_score(source: AptSource, lists_dir: Path) -> int | None:
    """How surely an entry is the Debian archive: higher is surer, None means surely not."""
    origin = release_origin(source, lists_dir)
    if origin is not None:
        return 3 if origin == "Debian" else None
    if source.signed_by is None:
        return 1  # the classic `deb http://.../debian bookworm main` line
    return 2 if "debian-archive-keyring" in source.signed_by else 0


def pick_debian_mirror(
    sources: list[AptSource],
    codename: str | None,
    lists_dir: Path = Path("/var/lib/apt/lists"),
) -> AptSource:
    """The entry of the main Debian archive for the host's suite (not -updates, -security, ...).

    debootstrap fetches from one mirror and one suite, so exactly the host's own release is taken,
    from the mirror this machine is configured to use (the only one reachable here).
    """

    def is_candidate(source: AptSource) -> bool:
        scheme = source.uri.split(":", 1)[0].lower()
        if source.kind != "deb" or "main" not in source.components or scheme not in APT_URI_SCHEMES:
            return False
        if codename is not None:
            return source.suite == codename
        return "-" not in source.suite and "/" not in source.suite

    scored = [(_debian_score(s, lists_dir), s) for s in sources if is_candidate(s)]
    ranked = [(score, s) for score, s in scored if score is not None]
    if not ranked:
        wanted = f"suite {codename!r}" if codename else "the release suite"
        raise ImageError(
            f"no Debian archive entry (type deb, {wanted}, component main, http/https/ftp/file URI)"
            " in /etc/apt/sources.list or /etc/apt/sources.list.d/: the base image is bootstrapped"
            " from this machine's own Debian mirror"
        )
    best = max(score for score, _ in ranked)
    return next(s for score, s in ranked if score == best)


def _keyring_option(source: AptSource) -> list[str]:
    """`--keyring=...` when the entry names a binary keyring file; else debootstrap's default."""
    signed_by = (source.signed_by or "").strip()
    if signed_by.endswith(".gpg") and len(signed_by.split()) == 1 and Path(signed_by).is_file():
        return [f"--keyring={signed_by}"]
    return []


# --- docker ---------------------------------------------------------------------------------------


def _docker(*args: str, stdin: IO[bytes] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI, output captured; a missing CLI becomes an ImageError."""
    try:
        return subprocess.run(
            ["docker", *args], stdin=stdin, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise ImageError("the docker CLI is not installed: run scripts/setup-docker.sh") from None


def image_exists(ref: str) -> bool:
    """True if the engine has the image; an unreachable engine is an error, not a missing image."""
    result = _docker("image", "inspect", "--format", "{{.Id}}", ref)
    if result.returncode == 0:
        return True
    if re.search(r"no such (image|object)", result.stderr, re.IGNORECASE):
        return False
    raise ImageError(
        f"cannot ask the Docker engine about {ref}: {result.stderr.strip()}"
        " (is it running? see scripts/setup-docker.sh)"
    )


def import_image(tarball: Path, ref: str, log: Log) -> None:
    """`docker import` the root filesystem with the lab's entrypoint, environment and labels."""
    changes = [f'ENTRYPOINT ["{ENTRYPOINT}"]', "CMD []"]
    changes += [f"ENV {key}={value}" for key, value in IMAGE_ENV.items()]
    labels = LABELS | {"edge-testbed.image": _variant_of(ref)}
    changes += [f"LABEL {key}={value}" for key, value in labels.items()]
    options = [arg for change in changes for arg in ("--change", change)]
    message = f"edge-testbed {_variant_of(ref)} image, recipe {RECIPE_VERSION}"
    log(f"images: importing {tarball.name} as {ref}")
    with tarball.open("rb") as stream:
        result = _docker("import", *options, "--message", message, "-", ref, stdin=stream)
    if result.returncode != 0:
        raise ImageError(f"docker import failed: {result.stderr.strip()}")


# --- cache and locking ----------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where root filesystem tarballs are kept, so a pruned image is re-imported, not rebuilt."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge-testbed"
    return Path(os.environ.get("EDGE_CACHE") or default) / "images"


def _variant_of(ref: str) -> str:
    """`base` of `edge-testbed/base:0123abcd`: the variant an image tag is of."""
    return ref.rsplit(":", 1)[0].rsplit("/", 1)[-1]


def cached_tarball(ref: str) -> Path:
    """The cache file for one tag: same hash, same root filesystem."""
    return cache_dir() / f"{_variant_of(ref)}-{ref.rsplit(':', 1)[1]}.tar"


def _prune_cache(keep: Path) -> None:
    """Drop all but the newest CACHE_KEEP tarballs of `keep`'s variant (always keeping `keep`)."""
    variant = keep.name.rsplit("-", 1)[0]
    tarballs = sorted(cache_dir().glob(f"{variant}-*.tar"), key=lambda p: p.stat().st_mtime,
                      reverse=True)
    for old in tarballs[CACHE_KEEP:]:
        if old != keep:
            old.unlink(missing_ok=True)


@contextlib.contextmanager
def _build_lock(log: Log) -> Iterator[None]:
    """One build at a time on this machine: two builds would download and import twice."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("images: another base image build is running: waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# --- building the root filesystem -----------------------------------------------------------------


def _run_logged(command: list[str], prefix: str, log: Log) -> int:
    """Run a command, passing each output line to `log` as it comes; return the exit status.

    The command gets its own process group so that, if the build is interrupted, it is stopped
    together with its helpers (downloads, chrooted dpkg) before its directory is deleted.
    """
    env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        start_new_session=True,
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            log(prefix + line.rstrip())
        return process.wait()
    except BaseException:
        _stop_group(process, log)
        raise
    finally:
        process.stdout.close()


def _stop_group(process: subprocess.Popen[str], log: Log) -> None:
    """Stop a command started by _run_logged and everything in its process group."""
    log(f"images: interrupted: stopping pid {process.pid} and its process group")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _run_checked(command: list[str], what: str, stdin: IO[bytes] | None = None) -> str:
    """Run a command whose failure ends the build; return its stdout."""
    result = subprocess.run(command, stdin=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise ImageError(f"{what} failed (exit {result.returncode}): {detail}")
    return result.stdout.decode(errors="replace")


def _debootstrap(root: Path, source: AptSource, packages: list[str], log: Log) -> None:
    """Bootstrap a minimal Debian with the packages, from the machine's mirror.

    debootstrap's second stage itself installs a `policy-rc.d` that exits 101 and a fake
    `start-stop-daemon` while it configures every package (the --include ones too), so no
    postinst starts a daemon on this machine; both are removed again when it is done.
    """
    command = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(packages)}",
        *_keyring_option(source),
        source.suite,
        str(root),
        source.uri,
    ]
    log(f"images: debootstrap {source.suite} with {len(packages)} packages from the apt mirror")
    status = _run_logged(command, "debootstrap: ", log)
    if status != 0:
        kept = cache_dir() / "debootstrap-failed.log"
        with contextlib.suppress(OSError):
            kept.write_bytes((root / "debootstrap" / "debootstrap.log").read_bytes())
        raise ImageError(f"debootstrap failed (exit {status}): see the lines above and {kept}")


# What the image must not carry: this machine's DNS and name (docker provides both to every
# container), and the rndc key bind9's installation generated, which every stack and anyone with
# the image would share (each stack's converge writes its own, roles/dns).
DROPPED = ("etc/resolv.conf", "etc/hostname", "etc/bind/rndc.key")


def _slim(root: Path) -> None:
    """Drop what only the build needed (apt's caches and lists) and what must not be in the
    image (DROPPED). Runs before the overlay, on debootstrap's own tree, so no path here can be
    a symlink planted to point outside it.
    """
    for directory in ("var/cache/apt", "var/lib/apt/lists"):
        for path in sorted((root / directory).rglob("*"), reverse=True):
            if path.is_file() or path.is_symlink():
                path.unlink()
    for name in DROPPED:
        (root / name).unlink(missing_ok=True)


def _apply_overlay(overlay: Path, root: Path, log: Log) -> None:
    """Copy images/base/rootfs/ over the tree verbatim (modes kept, owned by root).

    The copy is extracted by tar running *inside* the chroot, so that symlinks of the tree
    (e.g. the absolute /var/run -> /run) resolve inside it and never onto this machine's files.
    Existing directories keep their modes (--no-overwrite-dir): only files and new dirs are copied.
    """
    if not overlay.is_dir():
        log(f"images: no {overlay} overlay")
        return
    log(f"images: copying the {overlay.name}/ overlay into the image")
    pack = ["tar", "-C", str(overlay), "--numeric-owner", "--owner=0", "--group=0", "-cf", "-", "."]
    unpack = ["chroot", str(root), "tar", "-x", "-p", "--no-overwrite-dir", "-f", "-", "-C", "/"]
    with subprocess.Popen(pack, stdout=subprocess.PIPE) as packer:
        try:
            _run_checked(unpack, "copying the rootfs overlay", stdin=packer.stdout)
        finally:
            assert packer.stdout is not None
            packer.stdout.close()
    if packer.returncode != 0:
        raise ImageError(
            f"reading the rootfs overlay {overlay} failed (tar exit {packer.returncode})"
        )


def _check_rootfs(root: Path, packages: list[str]) -> None:
    """Fail the build, not the lab later, if the image could not start or lacks a package."""
    chroot = ["chroot", str(root)]
    if subprocess.run([*chroot, "test", "-x", ENTRYPOINT], check=False).returncode != 0:
        raise ImageError(f"{ENTRYPOINT} is missing or not executable: add it under rootfs/")
    conf = _run_checked(
        [*chroot, "cat", "/etc/supervisor/supervisord.conf"], "reading supervisord.conf"
    )
    if not re.search(r"^\s*files\s*=.*/etc/supervisor/conf\.d/\*\.conf", conf, re.MULTILINE):
        raise ImageError("supervisord.conf does not include /etc/supervisor/conf.d/*.conf")
    if not re.search(r"^\[unix_http_server\]", conf, re.MULTILINE):
        raise ImageError("supervisord.conf has no [unix_http_server]: supervisorctl would not work")
    query = [*chroot, "dpkg-query", "-W", "-f", "${Package} ${Status}\n", *packages]
    statuses = _run_checked(query, "checking the installed packages")
    missing = [line.split()[0] for line in statuses.splitlines() if not line.endswith(" installed")]
    if missing:
        raise ImageError(f"packages not installed in the image: {', '.join(missing)}")


def _write_tarball(root: Path, tarball: Path, log: Log) -> None:
    """Pack the tree for `docker import`: numeric owners, xattrs (file capabilities) kept.

    /dev, /proc and /sys stay empty: docker mounts its own. Written under a temporary name and
    renamed, so an interrupted build never leaves a truncated tarball in the cache.
    """
    partial = tarball.with_name(tarball.name + ".partial")
    command = [
        "tar", "-C", str(root), "--numeric-owner", "--xattrs", "--xattrs-include=*",
        "--one-file-system", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
        "-cf", str(partial), ".",
    ]  # fmt: skip
    try:
        _run_checked(command, "packing the root filesystem")
        partial.rename(tarball)
    finally:
        partial.unlink(missing_ok=True)
    log(f"images: root filesystem packed: {tarball} ({tarball.stat().st_size / 2**20:.0f} MiB)")


# --- cleaning up safely ---------------------------------------------------------------------------


def _mounts_below(top: Path) -> list[str]:
    """Mount points at or below `top` (debootstrap mounts /proc and /sys inside the tree)."""
    found: list[str] = []
    prefix = str(top).rstrip("/") + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == str(top) or point.startswith(prefix):
            found.append(point)
    return found


def _processes_in(root: Path) -> list[int]:
    """Processes whose root directory is inside the tree (a daemon a postinst left running)."""
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                target = os.readlink(entry / "root")
                if target == str(root) or target.startswith(str(root).rstrip("/") + "/"):
                    pids.append(int(entry.name))
    return pids


def _remove_tree(top: Path, log: Log) -> None:
    """Delete the build directory without ever reaching through a mount into this machine.

    Leftover chroot processes are stopped and leftover mounts undone first; `rm --one-file-system`
    is the last guard. If a mount cannot be undone, the directory is left in place and said so.
    """
    if not top.exists():
        return
    for pid in _processes_in(top):
        log(f"images: stopping leftover process {pid} of the build chroot")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for point in sorted(_mounts_below(top), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    if _mounts_below(top):
        log(f"images: WARNING: {top} still has mounts below it; not deleting it")
        return
    subprocess.run(["rm", "-rf", "--one-file-system", str(top)], check=False)


# --- the build ------------------------------------------------------------------------------------


def build_tarball(repo_root: Path, tarball: Path, log: Log, variant: str = "base") -> None:
    """Bootstrap, customise, check and pack a variant's root filesystem into `tarball`."""
    if os.geteuid() != 0:
        raise ImageError("building the base image needs root (debootstrap, chroot)")
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed: run scripts/setup (it installs every package of scripts/host-packages)")
    folders = recipe_dirs(repo_root, variant)
    packages = list(dict.fromkeys(name for folder in folders
                                  for name in read_packages(folder / PACKAGES_FILE)))
    source = pick_debian_mirror(read_apt_sources(), host_codename())
    BUILD_PARENT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"edge-{variant}-", dir=BUILD_PARENT))
    try:
        root = workdir / "rootfs"
        root.mkdir()
        _debootstrap(root, source, packages, log)
        _slim(root)
        for folder in folders:
            _apply_overlay(folder / ROOTFS_DIR, root, log)
        _check_rootfs(root, packages)
        tarball.parent.mkdir(parents=True, exist_ok=True)
        _write_tarball(root, tarball, log)
    finally:
        _remove_tree(workdir, log)


def ensure_tarball(repo_root: Path, log: Log = log_to_stderr, variant: str = "base") -> Path:
    """Build the cached root filesystem tarball of the current tag if it is not cached yet.

    Needs no Docker engine, so setup runs it while the engine is still being installed and
    started; `ensure_image` then only imports the tarball.
    """
    tarball = cached_tarball(image_ref(repo_root, variant))
    if tarball.is_file():
        return tarball
    with _build_lock(log):
        if not tarball.is_file():  # built by whoever held the lock before us
            started = time.monotonic()
            log(f"images: building {tarball.name} (a few minutes: downloads and installs the packages)")
            build_tarball(repo_root, tarball, log, variant)
            log(f"images: root filesystem built in {time.monotonic() - started:.0f}s")
    return tarball


def ensure_image(repo_root: Path, log: Log = log_to_stderr, variant: str = "base") -> str:
    """Return the image's tag, building (or re-importing from the cache) only if missing."""
    ref = image_ref(repo_root, variant)
    if image_exists(ref):
        return ref
    with _build_lock(log):
        if image_exists(ref):  # built by whoever held the lock before us
            return ref
        started = time.monotonic()
        tarball = cached_tarball(ref)
        if tarball.is_file():
            log(f"images: {ref} missing from the engine; importing the cached {tarball}")
        else:
            log(f"images: building {ref} (a few minutes: downloads and installs the packages)")
            build_tarball(repo_root, tarball, log, variant)
        import_image(tarball, ref, log)
        _prune_cache(keep=tarball)
        log(f"images: {ref} ready in {time.monotonic() - started:.0f}s")
    return ref


def main(argv: list[str] | None = None) -> int:
    """`ref`: print the tag; `tarball`: build the cached root filesystem if needed (no engine
    needed), then print its path; `ensure`: build or import the image if needed, then print the
    tag. Errors: exit 1."""
    parser = argparse.ArgumentParser(
        prog="python3 -m edge.engines.images", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", choices=("ref", "tarball", "ensure"))
    parser.add_argument("--variant", choices=tuple(VARIANTS), default="base",
                        help="which image (default: base, the lab's)")
    args = parser.parse_args(argv)
    # A plain `kill` must still clean up (stop debootstrap, unmount, delete the build directory).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    repo_root = Path(__file__).resolve().parents[2]
    try:
        if args.command == "ref":
            ref = image_ref(repo_root, args.variant)
        elif args.command == "tarball":
            ref = str(ensure_tarball(repo_root, variant=args.variant))
        else:
            ref = ensure_image(repo_root, variant=args.variant)
    except ImageError as error:
        print(f"edge.engines.images: error: {error}", file=sys.stderr)
        return 1
    print(ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
