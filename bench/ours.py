"""The mlgitfs command line, driven as a subprocess (the ``mlgitfs`` script next to
``sys.executable``), with the flags and JSON keys docs/commands.md and docs/remotes.md document:
``--home`` and ``-q`` before the command, ``--json`` on read commands and ``commit``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.proc import CommandFailed, Ran, run

QUIET_ENV = {"NO_COLOR": "1", "TERM": "dumb"}


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
    """One store home (``--home``) and the commands the benchmarks run; every command's output
    goes to ``log``. Timed methods return wall seconds, process start included."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home = home
        self.log = log
        self.script = find_script()

    def argv(self, *args: str | Path) -> list[str | Path]:
        return [self.script, "--home", self.home, "-q", *args]

    def run(self, *args: str | Path, timeout: float | None = None) -> float:
        return run(self.argv(*args), log=self.log, env=QUIET_ENV, timeout=timeout).seconds

    def call(self, *args: str | Path, timeout: float = 600, check: bool = True) -> Ran:
        """A command whose output the caller reads (also appended to the log)."""
        return run(
            self.argv(*args),
            log=self.log,
            capture=True,
            env=QUIET_ENV,
            timeout=timeout,
            check=check,
        )

    def json(self, *args: str | Path, timeout: float = 600) -> tuple[float, Any]:
        """``ARGS --json``: (wall seconds, the parsed output)."""
        ran = self.call(*args, "--json", timeout=timeout)
        return ran.seconds, ran.json()

    # -- repositories and versions -------------------------------------------------------------

    def init(self, name: str) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.run("init", name, "--kind", "dataset", "--mutability", "mutable")

    def import_dir(self, name: str, directory: Path, message: str) -> float:
        return self.run("import", name, directory, "-m", message)

    def tag(self, repo_tag: str) -> None:
        self.run("tag", repo_tag)

    def fsck(self, name: str) -> bool:
        """Whether ``fsck NAME`` finds the repo clean (exit 0; 1 with damage)."""
        try:
            self.run("fsck", name)
        except CommandFailed:
            return False
        return True

    def commits(self, revspec: str) -> int:
        """How many commits ``log REVSPEC --json`` lists (a list, newest first)."""
        return len(self.json("log", revspec)[1])

    # -- remotes (docs/remotes.md) -------------------------------------------------------------

    def remote_add(self, name: str, url: str, endpoint_url: str) -> None:
        self.run("remote", "add", name, url, "--endpoint-url", endpoint_url)

    def push(self, repo: str, remote: str) -> float:
        return self.run("push", repo, remote, "--all")

    def clone(self, url: str, repo: str, endpoint_url: str) -> float:
        return self.run("clone", url, repo, "--endpoint-url", endpoint_url)

    def prefetch(self, revspec: str) -> float:
        return self.run("prefetch", revspec)

    # -- mounts (bench/mounting.py mounts and unmounts) ---------------------------------------

    def mount_pid(self, mountpoint: Path) -> int | None:
        """The daemon's pid from ``mounts --json`` (fields revspec, commit, mountpoint, pid)."""
        for m in self.json("mounts", timeout=60)[1]:
            if m["mountpoint"] == str(mountpoint):
                return int(m["pid"])
        return None

    def commit(self, mountpoint: Path, message: str) -> tuple[float, Any]:
        """``commit MNT -m MSG --json``: seconds and the result (``files_hashed``, ``seconds``:
        the daemon's own time, ``commit``)."""
        return self.json("commit", mountpoint, "-m", message)

    def status(self, mountpoint: Path) -> tuple[float, Any]:
        """``status MNT --json``: seconds and the result (``changes``: ``change``, ``path``)."""
        return self.json("status", mountpoint)
