"""The mlgitfs command line, driven as a subprocess (the ``mlgitfs`` script next to
``sys.executable``)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

from bench.proc import CommandFailed, run_output, run_timed

QUIET_ENV = {"NO_COLOR": "1", "TERM": "dumb", "MLGITFS_PROGRESS": "0", "MLGITFS_NO_PROGRESS": "1"}


def find_script() -> Path:
    """``$MLGITFS_BENCH_CLI`` if set, else the ``mlgitfs`` script next to ``sys.executable``."""
    override = os.environ.get("MLGITFS_BENCH_CLI")
    if override:
        return Path(override)
    script = Path(sys.executable).parent / "mlgitfs"
    if script.exists():
        return script
    found = shutil.which("mlgitfs")
    if found:
        return Path(found)
    raise FileNotFoundError(
        f"no mlgitfs console script next to {sys.executable}; "
        f"run `{sys.executable} -m pip install -e .` in the repository"
    )


class Mlgitfs:
    """One store home (MLGITFS_HOME) and the commands the benchmarks need."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home = home
        self.log = log
        self.script = find_script()

    @cached_property
    def quiet_flags(self) -> list[str]:
        """``--quiet`` (or ``-q``) before the subcommand when the CLI advertises it."""
        help_text = run_output([self.script, "--help"], env=QUIET_ENV).stdout
        for flag in ("--quiet", "--no-progress"):
            if flag in help_text:
                return [flag]
        return []

    def _argv(self, *args: str | Path) -> list[str | Path]:
        return [self.script, "--home", self.home, *self.quiet_flags, *args]

    def run(self, *args: str | Path, timeout: float | None = None) -> float:
        return run_timed(self._argv(*args), log=self.log, env=QUIET_ENV, timeout=timeout)

    def init(self, name: str) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.run("init", name, "--kind", "dataset", "--mutability", "mutable")

    def import_dir(self, name: str, directory: Path, message: str) -> float:
        return self.run("import", name, directory, "-m", message)

    def fsck(self, name: str) -> bool:
        try:
            self.run("fsck", name)
        except CommandFailed:
            return False
        return True

    def log_json(self, name: str) -> Any:
        proc = run_output(self._argv("log", name, "--json"), env=QUIET_ENV)
        if proc.returncode != 0:
            raise CommandFailed(
                f"mlgitfs log {name} --json exited {proc.returncode}: {proc.stderr}"
            )
        return json.loads(proc.stdout)


def commit_count(log: Any) -> int | None:
    """Number of commits in ``log --json`` output (a list, or an object holding one)."""
    if isinstance(log, list):
        return len(log)
    if isinstance(log, dict):
        for key in ("commits", "log", "entries"):
            if isinstance(log.get(key), list):
                return len(log[key])
    return None
