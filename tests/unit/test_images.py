"""Fast tests of the pure parts of edge.engines.images: the tag and the choice of the Debian mirror.

No network and no Docker: the build itself is exercised by running `python3 -m edge.engines.images ensure`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.engines import images
from edge.engines.images import (
    AptSource,
    ImageError,
    host_codename,
    image_ref,
    parse_deb822_sources,
    parse_legacy_sources,
    pick_debian_mirror,
    read_apt_sources,
    read_packages,
)

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
Enabled: no
"""

LEGACY = """\
# a comment
deb [arch=amd64 signed-by=/etc/apt/keyrings/vendor.gpg] https://vendor.example/debian bookworm main
deb http://mirror.example/debian/ bookworm main contrib non-free-firmware  # trailing comment
deb-src http://mirror.example/debian/ bookworm main
deb http://security.example/debian-security bookworm-security main
"""


def make_repo(root: Path, packages: str = "python3\ntini\n") -> Path:
    """A minimal images/base/ tree: packages.txt and a rootfs/ overlay with one executable."""
    base = root / "images" / "base"
    init = base / "rootfs" / "usr" / "local" / "sbin" / "edge-init"
    init.parent.mkdir(parents=True)
    init.write_text("#!/bin/sh\nexec /usr/bin/tini -- /usr/bin/supervisord -n\n")
    init.chmod(0o755)
    (base / "packages.txt").write_text(packages)
    return root


def test_ref_is_stable_and_well_formed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    first = image_ref(repo)
    assert first == image_ref(repo)
    repository, tag = first.split(":")
    assert repository == "edge-testbed/base"
    assert len(tag) == 12 and all(c in "0123456789abcdef" for c in tag)


def test_ref_ignores_modification_times(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    before = image_ref(repo)
    os.utime(repo / "images" / "base" / "packages.txt", (1, 1))
    assert image_ref(repo) == before


def test_same_inputs_in_another_checkout_give_the_same_ref(tmp_path: Path) -> None:
    assert image_ref(make_repo(tmp_path / "a")) == image_ref(make_repo(tmp_path / "b"))


def test_ref_changes_with_packages(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    before = image_ref(repo)
    (repo / "images" / "base" / "packages.txt").write_text("python3\ntini\nhaproxy\n")
    assert image_ref(repo) != before


def test_ref_changes_with_rootfs_content_mode_and_new_files(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    init = repo / "images" / "base" / "rootfs" / "usr" / "local" / "sbin" / "edge-init"
    seen = {image_ref(repo)}
    init.write_text("#!/bin/sh\nexec true\n")
    seen.add(image_ref(repo))
    init.chmod(0o644)
    seen.add(image_ref(repo))
    (init.parent.parent / "etc").mkdir()
    seen.add(image_ref(repo))
    (init.parent.parent / "etc" / "motd").write_text("lab\n")
    seen.add(image_ref(repo))
    assert len(seen) == 5


def test_ref_needs_packages_txt(tmp_path: Path) -> None:
    with pytest.raises(ImageError):
        image_ref(tmp_path)


def test_read_packages_strips_comments_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "packages.txt"
    path.write_text("# header\n\npython3  # for Ansible\ntini\npython3\n  frr-pythontools\n")
    assert read_packages(path) == ["python3", "tini", "frr-pythontools"]


def test_read_packages_rejects_bad_names(tmp_path: Path) -> None:
    path = tmp_path / "packages.txt"
    path.write_text("python3\nfrr,bind9\n")
    with pytest.raises(ImageError, match=":2:"):
        read_packages(path)


def test_parse_deb822_expands_and_skips_disabled() -> None:
    sources = parse_deb822_sources(DEB822)
    assert [(s.uri, s.suite) for s in sources] == [
        ("http://mirror.example/debian", "bookworm"),
        ("http://mirror.example/debian", "bookworm-updates"),
        ("http://mirror.example/debian-security", "bookworm-security"),
    ]
    assert all(s.kind == "deb" and s.components == ("main",) for s in sources)
    assert sources[0].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_parse_deb822_joins_inline_key_continuation_lines() -> None:
    text = (
        "Types: deb\nURIs: http://m/debian\nSuites: bookworm\nComponents: main\n"
        "Signed-By:\n -----BEGIN PGP\n .\n END\n"
    )
    [source] = parse_deb822_sources(text)
    assert source.signed_by is not None and "BEGIN PGP" in source.signed_by


def test_parse_legacy_lines() -> None:
    sources = parse_legacy_sources(LEGACY)
    assert sources == [
        AptSource(
            "deb",
            "https://vendor.example/debian",
            "bookworm",
            ("main",),
            "/etc/apt/keyrings/vendor.gpg",
        ),
        AptSource(
            "deb",
            "http://mirror.example/debian/",
            "bookworm",
            ("main", "contrib", "non-free-firmware"),
        ),
        AptSource("deb-src", "http://mirror.example/debian/", "bookworm", ("main",)),
        AptSource("deb", "http://security.example/debian-security", "bookworm-security", ("main",)),
    ]


def write_etc_apt(root: Path) -> Path:
    """An /etc/apt lookalike with both formats."""
    parts = root / "sources.list.d"
    parts.mkdir(parents=True)
    (root / "sources.list").write_text(LEGACY)
    (parts / "debian.sources").write_text(DEB822)
    (parts / "ignored.save").write_text("deb http://nope.example/debian bookworm main\n")
    return root


def test_read_apt_sources_reads_both_formats(tmp_path: Path) -> None:
    uris = {s.uri for s in read_apt_sources(write_etc_apt(tmp_path / "apt"))}
    assert "http://mirror.example/debian" in uris  # deb822
    assert "https://vendor.example/debian" in uris  # legacy
    assert "http://nope.example/debian" not in uris  # neither .list nor .sources


def test_pick_prefers_debian_keyring_over_vendor_and_skips_security(tmp_path: Path) -> None:
    sources = read_apt_sources(write_etc_apt(tmp_path / "apt"))
    chosen = pick_debian_mirror(sources, "bookworm", lists_dir=tmp_path / "no-lists")
    assert (chosen.uri, chosen.suite) == ("http://mirror.example/debian", "bookworm")


def test_pick_trusts_the_downloaded_release_origin(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "vendor.example_debian_dists_bookworm_InRelease").write_text(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Vendor\nSuite: bookworm\n"
    )
    (lists / "mirror.example_debian_dists_bookworm_Release").write_text("Origin: Debian\n")
    sources = parse_legacy_sources(
        "deb https://vendor.example/debian bookworm main\n"
        "deb http://mirror.example/debian bookworm main\n"
    )
    assert (
        pick_debian_mirror(sources, "bookworm", lists_dir=lists).uri
        == "http://mirror.example/debian"
    )


def test_pick_fails_clearly_without_a_debian_entry(tmp_path: Path) -> None:
    sources = parse_legacy_sources(
        "deb http://security.example/debian-security bookworm-security main\n"
    )
    with pytest.raises(ImageError, match="no Debian archive entry"):
        pick_debian_mirror(sources, "bookworm", lists_dir=tmp_path)


def test_host_codename(tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n'
    )
    assert host_codename(os_release) == "bookworm"
    assert host_codename(tmp_path / "missing") is None


def test_the_image_carries_no_rndc_key_nor_this_machine_s_dns(tmp_path: Path) -> None:
    """bind9's installation generates /etc/bind/rndc.key: a key every stack would share."""
    for name in images.DROPPED + ("etc/bind/named.conf", "var/cache/apt/archives/x.deb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    images._slim(tmp_path)
    assert not any((tmp_path / name).exists() for name in images.DROPPED)
    assert (tmp_path / "etc/bind/named.conf").exists()
    assert not (tmp_path / "var/cache/apt/archives/x.deb").exists()
