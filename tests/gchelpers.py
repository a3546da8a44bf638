"""What the gc tests share: stores with a branch of garbage, byte counts of a store."""

from __future__ import annotations

import os
import random
from pathlib import Path

from mlgitfs import api
from mlgitfs.store.facade import Store


def forget_reflog(store: Store) -> None:
    """Let every reflog entry expire at once (`config reflog-expiry 0`), so a deleted
    branch's commits stop being gc roots."""
    api.config(store.home, "reflog-expiry", "0")


def segment_bytes(home: Path) -> int:
    """Bytes the chunk cache's segment files take on disk (du)."""
    total = 0
    for e in os.scandir(home / "chunks"):
        total += e.stat().st_blocks * 512
    return total


def store_files(home: Path) -> dict[str, bytes]:
    """Every file of a store that holds data (not LMDB's lock file), by relative path."""
    out = {}
    for dirpath, _, names in os.walk(home):
        for name in names:
            path = Path(dirpath) / name
            if name != "lock.mdb" and not path.is_socket():
                out[str(path.relative_to(home))] = path.read_bytes()
    return out


def random_files(root: Path, n: int, size: int, seed: int) -> dict[str, bytes]:
    rnd = random.Random(seed)
    files = {f"d{i % 7}/f{seed}_{i}.bin": rnd.randbytes(rnd.randint(1, size)) for i in range(n)}
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def import_files(home: Path, target: str, src: Path) -> None:
    api.import_dir(home, target, src, "import " + src.name)
