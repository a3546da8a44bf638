"""fsspec access for code that cannot mount: list, stat and ranged reads of a version."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from mlgitfs import api
from mlgitfs.errors import UsageError
from tests.conftest import write_tree


def test_fsspec_reads_versions(tmp_path: Path, home: Path) -> None:
    big = os.urandom(3 << 20)
    src = write_tree(tmp_path / "src", {"a/b.txt": "hello", "big.bin": big, "l": "->a/b.txt"})
    api.init(home, "ds", "dataset", "strict")
    api.import_dir(home, "ds", src, "v1")
    api.tag_create(home, "ds@v1")
    fs = fsspec.filesystem("mlgitfs", home=str(home))
    assert sorted(fs.ls("ds@v1", detail=False)) == ["ds@v1/a", "ds@v1/big.bin", "ds@v1/l"]
    assert fs.info("mlgitfs://ds@v1/big.bin")["size"] == len(big)
    assert fs.info("ds@v1/a")["type"] == "directory"
    assert fs.cat("ds@v1/a/b.txt") == b"hello"
    with fs.open("ds@v1/big.bin") as f:
        f.seek(1_000_000)
        assert f.read(2_000_000) == big[1_000_000:3_000_000]
    with fsspec.open("mlgitfs://ds@v1/big.bin", home=str(home)) as f:
        assert f.read() == big
    with pytest.raises(FileNotFoundError):
        fs.info("ds@v1/nope")
    with pytest.raises(UsageError, match="is a tag: tags never move"):
        fs.open("ds@v1/a/b.txt", "wb")
