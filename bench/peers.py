"""The programs the benchmarks compare with (peers), installed when missing.

``tool(ctx, "rclone")`` is the path of a peer program. When it is not on PATH, the runner
installs its Debian package with ``apt-get`` (as root; ``apt-get update`` once per run), unless
``--no-install`` was given. When that is impossible or fails, `Skipped` is raised with the
reason, so the rows that need the peer say "skip" and why, instead of ERROR. The answer is
remembered for the run. DVC comes from PyPI into its own virtualenv (bench/dvc.py, through
``bench.cases.fixtures.dvc_exe``), with the same rule.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from bench.context import Context
from bench.harness import Skipped
from bench.proc import CommandFailed, run

# program -> Debian package that provides it
DEBIAN = {"rclone": "rclone", "s3fs": "s3fs", "git": "git"}


def tool(ctx: Context, name: str) -> str:
    """The path of peer program ``name``, installed first if needed; raises `Skipped`."""
    found: str | Skipped = ctx.once(f"peer:{name}", lambda: _find_or_install(ctx, name))
    if isinstance(found, Skipped):
        raise found
    return found


def available(ctx: Context, name: str) -> tuple[str | None, str]:
    """(path, "") when the peer is there or was installed, else (None, the reason)."""
    try:
        return tool(ctx, name), ""
    except Skipped as e:
        return None, str(e)


def version(argv: list[str]) -> str:
    """The first line a program prints for ``--version`` or ``version``."""
    try:
        ran = run(argv, capture=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    lines = (ran.stdout or ran.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _find_or_install(ctx: Context, name: str) -> str | Skipped:
    path = shutil.which(name)
    if path:
        return path
    package = DEBIAN.get(name)
    why = _cannot_install(ctx, package)
    if why:
        return Skipped(f"{name} is not installed and {why}")
    assert package is not None
    ctx.log(f"installing the Debian package {package} (for the {name} baseline)")
    log = ctx.path("logs", "peers-install.log")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    try:
        if not ctx.once("peers:apt-update", lambda: _apt_update(ctx)):
            return Skipped(f"{name} is not installed and apt-get update failed (see {log})")
        run(["apt-get", "install", "-y", "-qq", package], log=log, env=env, timeout=900)
    except (CommandFailed, OSError, subprocess.TimeoutExpired) as e:
        return Skipped(f"{name} is not installed and apt-get install {package} failed: {e}")
    path = shutil.which(name)
    if not path:
        return Skipped(f"{name}: the package {package} installed no {name} on PATH")
    ctx.meta.setdefault("peers_installed", []).append(package)
    return path


def _cannot_install(ctx: Context, package: str | None) -> str:
    if package is None:
        return "no package is known for it"
    if not ctx.install_peers:
        return f"--no-install was given (apt-get install {package})"
    if os.geteuid() != 0:
        return f"installing it needs root (apt-get install {package})"
    if shutil.which("apt-get") is None:
        return f"there is no apt-get here to install the package {package}"
    return ""


def _apt_update(ctx: Context) -> bool:
    log = ctx.path("logs", "peers-install.log")
    try:
        run(["apt-get", "update", "-qq"], log=log, timeout=600)
    except (CommandFailed, OSError, subprocess.TimeoutExpired):
        return False
    return True
