"""DVC in its own throwaway virtualenv (bench/.work/dvc-venv, reused when present)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bench.proc import run

DVC_ENV = {"DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATER": "1", "NO_COLOR": "1"}


def ensure_dvc(venv: Path, log: Path) -> Path:
    """The ``dvc`` executable, installing DVC into ``venv`` first when it is missing."""
    dvc = venv / "bin" / "dvc"
    if dvc.exists() and run([dvc, "--version"], env=DVC_ENV, check=False).returncode == 0:
        return dvc
    if venv.exists():
        shutil.rmtree(venv)
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", venv], log=log)
    run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "dvc",
        ],
        log=log,
        timeout=900,
    )
    return dvc


class Dvc:
    """A DVC repository (``dvc init --no-scm``) rooted at ``root``."""

    def __init__(self, exe: Path, root: Path, log: Path) -> None:
        self.exe = exe
        self.root = root
        self.log = log

    def version(self) -> str:
        return run([self.exe, "--version"], capture=True, env=DVC_ENV, check=False).stdout.strip()

    def fresh(self) -> None:
        """Forget earlier runs: remove .dvc, *.dvc and .dvcignore, then ``dvc init``."""
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.root / ".dvc", ignore_errors=True)
        for p in self.root.glob("*.dvc"):
            p.unlink()
        (self.root / ".dvcignore").unlink(missing_ok=True)
        self.run("init", "--no-scm", "--quiet")
        self.run("config", "core.analytics", "false")
        site = self.root / ".dvc" / "site-cache"
        self.run("config", "--local", "core.site_cache_dir", str(site))

    def run(self, *args: str) -> float:
        return run([self.exe, *args], log=self.log, cwd=self.root, env=DVC_ENV).seconds

    def add(self, *targets: str) -> float:
        return self.run("add", "--quiet", *targets)

    @property
    def cache(self) -> Path:
        return self.root / ".dvc" / "cache"


def copy_tree(src: Path, dst: Path) -> None:
    """``cp -a`` (a real copy: DVC may relink or rewrite the files it adds)."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    run(["cp", "-a", src, dst], capture=True)
