"""Which pyfuse3 build is installed and which of mlgitfs's patches it carries.

packaging/pyfuse3/build.sh builds the version pyproject.toml pins with one patch per feature
(``NN-NAME.patch``) and marks the build with the local version ``X.Y.Z+mlgitfs.NAME.NAME...``.
This module reads that marker; it does not import pyfuse3 (the daemon passes
``pyfuse3.__version__``, `installed_version` reads the installed distribution's metadata), so
the api and ``mlgitfs doctor`` can use it without loading the FUSE library.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Patch:
    """One feature of the patched build: what it gives and what a mount loses without it."""

    name: str
    gives: str
    without: str


PATCHES = (
    Patch(
        "noopen",
        "read-only mounts let the kernel skip open and release: a file read again from the "
        "page cache costs the daemon no request",
        "read-only mounts answer an open and a release for every file opened",
    ),
    Patch(
        "spin",
        "the daemon polls 50 us for the next request before sleeping: a request that follows "
        "at once skips two wake-ups",
        "every request waits for the daemon to wake up (a cached file opened, read and closed: "
        "about 80 us instead of 45)",
    ),
    Patch(
        "iov",
        "a read spanning several chunks is answered with one writev of the cached chunks, "
        "the kernel's copy running without the GIL",
        "a read spanning several chunks is joined into a copy first (cold sequential reads "
        "about 12% slower)",
    ),
    Patch(
        "cachedir",
        "the kernel keeps the directory listings of read-only mounts: a second walk sends "
        "no readdir",
        "every walk reads every listing from the daemon again (a warm find over 100,000 "
        "files about 3x slower)",
    ),
)


def features(version: str) -> frozenset[str]:
    """The patches a pyfuse3 version string says its build carries (none for a stock build)."""
    parts = version.partition("+")[2].split(".")
    return frozenset(parts[1:]) if parts[0] == "mlgitfs" else frozenset()


def missing(version: str) -> tuple[Patch, ...]:
    have = features(version)
    return tuple(p for p in PATCHES if p.name not in have)


def installed_version() -> str | None:
    """The installed pyfuse3's version, from its metadata (None when it is not installed)."""
    try:
        return importlib.metadata.version("pyfuse3")
    except importlib.metadata.PackageNotFoundError:
        return None


def required_version() -> str | None:
    """The pyfuse3 version mlgitfs pins (``pyfuse3==X.Y.Z``): the one the patches are for."""
    try:
        requires = importlib.metadata.requires("mlgitfs") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for req in requires:
        m = re.match(r"pyfuse3\s*==\s*([0-9][0-9.]*)", req)
        if m:
            return m.group(1)
    return None
