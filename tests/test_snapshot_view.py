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


def test_forgotten_nodes_are_dropped_and_come_back_with_their_numbers(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    tree = {f"d{d}/f{i}.bin": f"{d}-{i}".encode() for d in range(3) for i in range(50)}
    write_tree(tmp_path / "src", tree)
    cli("init", "ds", "--kind", "dataset", "--mutability", "strict")
    cli("import", "ds", str(tmp_path / "src"), "-m", "v1")
    store = api.open_store(home)
    commit = resolve(store, "ds@main").commit
    view = SnapshotView(store, commit.tree, time_ns=commit.time_ns)

    def held() -> int:
        return view.statfs().files

    d0 = view.lookup(ROOT_INODE, b"d0").ino
    listed = {name: attr.ino for name, attr, _ in view.readdir(InodeNo(d0), 0)}
    assert len(listed) == 50 and held() == 1 + 1 + 50  # root, d0, its files
    again = view.lookup(InodeNo(d0), b"f7.bin")  # a second lookup of a listed file
    assert again.ino == listed[b"f7.bin"]

    # Each file's lookups given back: all go but f7.bin, which was given out twice.
    view.forget([(InodeNo(ino), 1) for ino in listed.values()])
    assert held() == 1 + 1 + 1
    assert view.getattr(InodeNo(listed[b"f7.bin"])).size == len(b"0-7")
    # A parent forgotten before its last child stays until the child goes, then both go.
    view.forget([(InodeNo(d0), 1)])
    assert held() == 3
    view.forget([(InodeNo(listed[b"f7.bin"]), 1)])
    assert held() == 1
    # Made again: the same numbers, the same bytes.
    d0_again = view.lookup(ROOT_INODE, b"d0").ino
    assert d0_again == d0
    f3 = view.lookup(InodeNo(d0), b"f3.bin")
    assert f3.ino == listed[b"f3.bin"]
    assert trio.run(view.read, InodeNo(f3.ino), 0, 100) == b"0-3"
    # Forgets of unknown inodes, of the root, or more than were given change nothing else.
    view.forget([(InodeNo(123456789), 5), (ROOT_INODE, 1)])
    assert held() == 3
    # Every number is distinct across the whole tree.
    numbers = {ROOT_INODE}
    for d in range(3):
        dino = view.lookup(ROOT_INODE, f"d{d}".encode()).ino
        numbers.add(dino)
        numbers.update(attr.ino for _, attr, _ in view.readdir(InodeNo(dino), 0))
    assert len(numbers) == 1 + 3 + 150
