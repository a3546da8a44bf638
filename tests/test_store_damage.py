"""A store whose LMDB pages are damaged (LMDB has no checksums): fsck ends with a clear error
or a report, never killed by a signal (a damaged page header sent LMDB past the end of its
file: SIGBUS, exit 135, in one seed of six; issue 12, item 6)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mlgitfs import api
from tests.conftest import write_tree

MLGITFS = str(Path(sys.executable).parent / "mlgitfs")
PAGE = 4096


@pytest.mark.parametrize("seed", range(3))
def test_fsck_of_damaged_page_headers_never_crashes(tmp_path: Path, seed: int) -> None:
    home = tmp_path / "damaged"  # not the fixture's home: this store ends damaged on purpose
    api.init(home, "ds", "dataset", "mutable")
    files = {f"d{i % 7}/f{i:03}.txt": b"x" * (i * 37) for i in range(300)}
    api.import_dir(home, "ds", write_tree(tmp_path / "src", files), "v1")
    api.close_store(home)
    data = home / "meta" / "data.mdb"
    pages = data.stat().st_size // PAGE
    rnd = random.Random(seed)
    with open(data, "r+b") as f:
        for page in rnd.sample(range(2, pages), min(4, pages - 2)):  # 0, 1: the meta pages
            f.seek(page * PAGE)
            f.write(rnd.randbytes(16))  # page number, flags, free bounds
    proc = subprocess.run(
        [MLGITFS, "--home", str(home), "fsck"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode >= 0, f"fsck was killed by signal {-proc.returncode}"
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode not in (0, 1):  # a clean store, or damage reported
        assert proc.stderr.startswith("mlgitfs: "), proc.stderr


def test_fsck_of_a_truncated_database_is_an_error(tmp_path: Path) -> None:
    """Pages the database names lie past the end of its file (a torn copy): reading them
    kills a process with SIGBUS; fsck says the database is damaged instead."""
    home = tmp_path / "damaged"
    api.init(home, "ds", "dataset", "mutable")
    files = {f"d{i % 7}/f{i:03}.txt": os.urandom(200) for i in range(2000)}
    api.import_dir(home, "ds", write_tree(tmp_path / "src", files), "v1")
    api.close_store(home)
    data = home / "meta" / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    proc = subprocess.run(
        [MLGITFS, "--home", str(home), "fsck"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode >= 0, f"fsck was killed by signal {-proc.returncode}"
    assert "database" in proc.stderr and "damaged" in proc.stderr, proc.stderr
