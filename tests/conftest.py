"""Fixtures shared by the suite: a store per test (ending with a clean fsck), tree builders, CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mlgitfs import api

pytest_plugins = ["tests.conftest_s3"]


@dataclass
class Cli:
    home: Path

    def __call__(self, *args: str, code: int = 0, input: bytes | None = None) -> Result:
        from mlgitfs_cli.main import cli

        result = CliRunner().invoke(cli, ["--home", str(self.home), "-q", *args], input=input)
        assert result.exit_code == code, (
            f"mlgitfs {' '.join(args)} exited {result.exit_code}, expected {code}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
        )
        return result


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A store home; every test that changed it must leave it fsck-clean."""
    h = tmp_path / "store"
    yield h
    if (h / "meta").exists():
        report = api.fsck(h)
        api.close_store(h)
        assert report.clean, f"fsck found damage: {report.damage}"


@pytest.fixture
def cli(home: Path) -> Cli:
    return Cli(home)


def write_tree(root: Path, files: dict[str, bytes | str], mtime_ns: int | None = None) -> Path:
    """Files (bytes), symlinks (str values starting with '->') and empty dirs (names ending '/')."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("/"):
            path.mkdir(exist_ok=True)
        elif isinstance(content, str) and content.startswith("->"):
            os.symlink(content[2:], path)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if mtime_ns is not None:
        set_mtimes(root, mtime_ns)
    return root


def set_mtimes(root: Path, mtime_ns: int) -> None:
    """Old mtimes, so that the import's stat cache trusts the files (no racy window)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), ns=(mtime_ns, mtime_ns), follow_symlinks=False)
