"""What this machine gives mlgitfs's mounts: the pyfuse3 build (patched or stock, and what
is lost without each patch), the FUSE device and ``fusermount3``."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass

from mlgitfs.daemon import pyfuse3_build

log = logging.getLogger(__name__)

BUILD_HINT = "bash packaging/pyfuse3/build.sh {python}  (in a checkout of mlgitfs)"


@dataclass(frozen=True, slots=True)
class PatchStatus:
    name: str
    present: bool
    gives: str
    without: str  # what a mount loses without it


@dataclass(frozen=True, slots=True)
class DoctorResult:
    pyfuse3_version: str | None  # None: pyfuse3 is not installed
    pyfuse3_required: str | None  # the version mlgitfs pins, the one its patches are for
    patched: bool  # every patch present
    patches: tuple[PatchStatus, ...]
    fuse_device: bool  # /dev/fuse exists
    fusermount: str | None  # the fusermount3 on PATH
    advice: tuple[str, ...]  # what to do, empty when nothing


def doctor() -> DoctorResult:
    """Report the pyfuse3 build and the FUSE prerequisites (reads metadata; mounts nothing)."""
    version = pyfuse3_build.installed_version()
    required = pyfuse3_build.required_version()
    have = pyfuse3_build.features(version or "")
    patches = tuple(
        PatchStatus(p.name, p.name in have, p.gives, p.without) for p in pyfuse3_build.PATCHES
    )
    fuse_device = os.path.exists("/dev/fuse")
    fusermount = shutil.which("fusermount3")
    advice: list[str] = []
    if version is None:
        advice.append("install mlgitfs with its dependencies: pyfuse3 is missing")
    elif required and version.partition("+")[0] != required:
        advice.append(
            f"pyfuse3 {version} is not the {required} mlgitfs pins: "
            f"pip install pyfuse3=={required}, then build the patched one"
        )
    if version is not None and not all(p.present for p in patches):
        advice.append("build the patched pyfuse3: " + BUILD_HINT.format(python=sys.executable))
    if not fuse_device:
        advice.append("/dev/fuse is missing: load the fuse module or give the container the device")
    if fusermount is None:
        advice.append("install fusermount3 (Debian package fuse3)")
    return DoctorResult(
        version,
        required,
        version is not None and all(p.present for p in patches),
        patches,
        fuse_device,
        fusermount,
        tuple(advice),
    )


def warn_if_stock() -> None:
    """Log a warning (shown on stderr by the CLI) when pyfuse3 lacks some of the patches."""
    version = pyfuse3_build.installed_version()
    if version is None:
        return
    lost = pyfuse3_build.missing(version)
    if lost:
        log.warning(
            "pyfuse3 %s lacks mlgitfs's patches (%s): the mount works, slower; "
            "`mlgitfs doctor` tells what is lost and how to build the patched one",
            version,
            ", ".join(p.name for p in lost),
        )
