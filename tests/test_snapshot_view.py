"""The read-only view without a kernel: what a sequential reader of a local file makes it
load; and the allocator policy of mlgitfs processes (mlgitfs/memory.py)."""

from __future__ import annotations

import platform
import random
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import trio

from mlgitfs import api
from mlgitfs.model.ids import ChunkId, InodeNo
from mlgitfs.repo.refs import resolve
from mlgitfs.repo.trees import file_chunks
from mlgitfs.store.cache import Location
from mlgitfs.store.segfile import Buffer
from mlgitfs.vfs.snapshot import SnapshotView
from mlgitfs.vfs.types import ROOT_INODE
from tests.conftest import Cli, write_tree


async def test_sequential_reader_loads_each_local_chunk_once(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    data = random.Random(7).randbytes(48 << 20)  # more than the local LRU holds
    write_tree(tmp_path / "src", {"big.bin": data})
    cli("init", "ds", "--kind", "dataset", "--mutability", "strict")
    cli("import", "ds", str(tmp_path / "src"), "-m", "v1")
    store = api.open_store(home)
    commit = resolve(store, "ds@main").commit
    loads: Counter[ChunkId] = Counter()
    in_runs: list[int] = []
    lock = threading.Lock()
    cache = store.chunks
    read_at, read_run = cache.read_at, cache.read_run

    # Count at the chunk cache: the reader's own loads come one by one, read-ahead in runs.
    def one(cid: ChunkId, loc: Location) -> bytes:
        with lock:
            loads[cid] += 1
        return read_at(cid, loc)

    def run(items: list[tuple[ChunkId, Location]]) -> list[tuple[ChunkId, Buffer]]:
        with lock:
            loads.update(cid for cid, _ in items)
            in_runs.append(len(items))
        return read_run(items)

    cache.read_at = one  # type: ignore[method-assign]
    cache.read_run = run  # type: ignore[method-assign]
    view = SnapshotView(store, commit.tree, time_ns=commit.time_ns)
    ino = InodeNo(view.lookup(ROOT_INODE, b"big.bin").ino)
    async with trio.open_nursery() as nursery:
        view.attach(nursery)  # read-ahead on
        got = bytearray()
        while len(got) < len(data):
            got += await view.read(ino, len(got), 128 << 10)
            await trio.sleep(0)  # let read-ahead tasks run between the reader's requests
        nursery.cancel_scope.cancel()
    assert got == data
    refs = file_chunks(store, view._node(ino).entry)  # type: ignore[arg-type]
    assert len(refs) > 20
    # every chunk loaded, none twice: read-ahead runs ahead only as far as its cache holds
    assert set(loads) == {r.id for r in refs}
    assert max(loads.values()) == 1
    assert sum(in_runs) > len(refs) // 2  # most came by read-ahead, several per thread hop
    assert max(in_runs) > 1


def test_processes_keep_freed_memory() -> None:
    # in a child: the setting is process-wide, and the library never applies it by itself
    code = "from mlgitfs import memory; print(memory.keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("True" if platform.libc_ver()[0] == "glibc" else "False")
