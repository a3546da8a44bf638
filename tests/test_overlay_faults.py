"""Faults never destroy data: every mutating operation of a writable view, with its record
transaction (LMDB) or its overlay file writes failing (ENOSPC, EIO, injected by doubles
passed in at construction), fails, and leaves the tree, the overlay files and the records
as they were, also after a remount (docs/overlay.md, fault states)."""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import FsError
from mlgitfs.meta.checkouts import InodeTable
from mlgitfs.model.ids import InodeNo
from mlgitfs.repo.fsck import fsck
from mlgitfs.vfs import checkout_ops
from mlgitfs.vfs.factory import open_checkout_view
from mlgitfs.vfs.overlay import WritableView
from mlgitfs.vfs.types import ROOT_INODE, Kind
from tests.faultdoubles import Faults, open_failing_view
from tests.test_overlay_vfs import ino, make_repo, write_file

ROOT = InodeNo(ROOT_INODE)
Act = Callable[[], Awaitable[object]]


async def tree(v: WritableView) -> dict[bytes, tuple[object, ...]]:
    """Every path of the view with its kind, mode, mtime, size and bytes (or target)."""
    # The root's mtime is left out: it is not recorded (a remount shows the base commit's).
    out: dict[bytes, tuple[object, ...]] = {b"": ("dir", v.getattr(ROOT).mode)}
    todo = [(ROOT_INODE, b"")]
    while todo:
        d, path = todo.pop()
        for name, child in list(v.child_names(v.dir(InodeNo(d)))):
            a = v.getattr(InodeNo(child))
            p = path + b"/" + name
            if a.kind is Kind.DIR:
                out[p] = ("dir", a.mode, a.mtime_ns)
                todo.append((child, p))
            elif a.kind is Kind.SYMLINK:
                out[p] = ("symlink", v.readlink(InodeNo(child)))
            else:
                fh = await v.open(InodeNo(child), os.O_RDONLY)
                try:
                    data = bytes(await v.read(fh, 0, a.size + 1))
                finally:
                    v.release(fh)
                out[p] = ("file", a.mode, a.mtime_ns, a.size, data)
    return out


def records(v: WritableView) -> tuple[list[bytes], list[tuple[int, bytes, int]], list[str]]:
    """The checkout's node records and deltas in LMDB, and its overlay files."""
    table = InodeTable(v.record.id)
    with v.store.env.read() as txn:
        nodes = sorted(r.encode() for r in table.nodes(txn))
        deltas = sorted(table.deltas(txn))
    return nodes, deltas, sorted(os.listdir(v.files))


async def opened(v: WritableView, handles: list[int], path: str, flags: int) -> int:
    fh = await v.open(ino(v, path), flags)
    handles.append(fh)
    return fh


# Each operation: prepare (no faults) and return the act that must fail once faults are on.
Prepare = Callable[[WritableView, list[int]], Awaitable[Act]]


async def _create(v: WritableView, h: list[int]) -> Act:
    return lambda: v.create(ROOT, b"new.txt", 0o644, os.O_WRONLY)


async def _mkdir(v: WritableView, h: list[int]) -> Act:
    return lambda: v.mkdir(ROOT, b"newdir", 0o755)


async def _symlink(v: WritableView, h: list[int]) -> Act:
    return lambda: v.symlink(ROOT, b"ln2", b"top.txt")


async def _unlink_base(v: WritableView, h: list[int]) -> Act:
    return lambda: v.unlink(ROOT, b"top.txt")


async def _unlink_changed(v: WritableView, h: list[int]) -> Act:
    # The model case: `rm` of a file with overlay data on a full disk.
    await write_file(v, "a/one.txt", b"changed and not committed\n")
    return lambda: v.unlink(ino(v, "a"), b"one.txt")


async def _rmdir_new(v: WritableView, h: list[int]) -> Act:
    await v.mkdir(ROOT, b"empty", 0o755)
    return lambda: v.rmdir(ROOT, b"empty")


async def _rmdir_base(v: WritableView, h: list[int]) -> Act:
    await v.unlink(ino(v, "b/c"), b"deep.bin")
    return lambda: v.rmdir(ino(v, "b"), b"c")


async def _rename(v: WritableView, h: list[int]) -> Act:
    return lambda: v.rename(ROOT, b"top.txt", ino(v, "a"), b"moved.txt", 0)


async def _rename_over_changed(v: WritableView, h: list[int]) -> Act:
    await write_file(v, "top.txt", b"overlay data of the target\n")
    return lambda: v.rename(ino(v, "a"), b"one.txt", ROOT, b"top.txt", 0)


async def _rename_dir(v: WritableView, h: list[int]) -> Act:
    return lambda: v.rename(ROOT, b"b", ino(v, "a"), b"b2", 0)


async def _chmod(v: WritableView, h: list[int]) -> Act:
    return lambda: v.setattr(ino(v, "top.txt"), mode=0o600)


async def _utime_base(v: WritableView, h: list[int]) -> Act:
    return lambda: v.setattr(ino(v, "top.txt"), mtime_ns=123_000_000_000)


async def _utime_changed(v: WritableView, h: list[int]) -> Act:
    await write_file(v, "top.txt", b"changed\n")
    return lambda: v.setattr(ino(v, "top.txt"), mtime_ns=123_000_000_000)


async def _truncate_base(v: WritableView, h: list[int]) -> Act:
    return lambda: v.setattr(ino(v, "a/two.txt"), size=10)


async def _truncate_changed(v: WritableView, h: list[int]) -> Act:
    await write_file(v, "a/two.txt", b"changed", 100)
    return lambda: v.setattr(ino(v, "a/two.txt"), size=1)


async def _open_trunc(v: WritableView, h: list[int]) -> Act:
    return lambda: opened(v, h, "a/two.txt", os.O_WRONLY | os.O_TRUNC)


async def _write_base(v: WritableView, h: list[int]) -> Act:
    fh = await opened(v, h, "b/c/deep.bin", os.O_WRONLY)
    return lambda: v.write(fh, 5, b"new bytes")


async def _write_changed(v: WritableView, h: list[int]) -> Act:
    await write_file(v, "top.txt", b"changed\n")
    fh = await opened(v, h, "top.txt", os.O_WRONLY)
    return lambda: v.write(fh, 8, b"appended")


async def _fsync(v: WritableView, h: list[int]) -> Act:
    fh = await opened(v, h, "top.txt", os.O_WRONLY)
    await v.write(fh, 0, b"x")
    return lambda: v.fsync(fh, False)


@dataclass(frozen=True)
class Op:
    prepare: Prepare
    meta: bool  # fails when its record transaction fails
    files: bool  # fails when overlay file writes fail


OPS = {
    "create": Op(_create, True, True),
    "mkdir": Op(_mkdir, True, False),
    "symlink": Op(_symlink, True, False),
    "unlink_base": Op(_unlink_base, True, False),
    "unlink_changed": Op(_unlink_changed, True, False),
    "rmdir_new": Op(_rmdir_new, True, False),
    "rmdir_base": Op(_rmdir_base, True, False),
    "rename": Op(_rename, True, False),
    "rename_over_changed": Op(_rename_over_changed, True, False),
    "rename_dir": Op(_rename_dir, True, False),
    "chmod": Op(_chmod, True, False),
    "utime_base": Op(_utime_base, True, False),
    "utime_changed": Op(_utime_changed, False, True),
    "truncate_base": Op(_truncate_base, True, True),
    "truncate_changed": Op(_truncate_changed, False, True),
    "open_trunc": Op(_open_trunc, True, True),
    "write_base": Op(_write_base, True, True),
    "write_changed": Op(_write_changed, False, True),
    "fsync": Op(_fsync, False, True),
}
FAULTS = {
    "meta-ENOSPC": (True, errno.ENOSPC),
    "meta-EIO": (True, errno.EIO),
    "files-ENOSPC": (False, errno.ENOSPC),
    "files-EIO": (False, errno.EIO),
}
CASES = [
    (op, fault)
    for op, spec in OPS.items()
    for fault, (meta, _) in FAULTS.items()
    if (spec.meta if meta else spec.files)
]


@pytest.mark.parametrize(("op", "fault"), CASES)
async def test_failed_operation_changes_nothing(
    home: Path, tmp_path: Path, op: str, fault: str
) -> None:
    make_repo(home, tmp_path)
    store = api.open_store(home)
    faults = Faults()
    v = open_failing_view(store, faults)
    handles: list[int] = []
    try:
        act = await OPS[op].prepare(v, handles)
        before, recs = await tree(v), records(v)
        meta, code = FAULTS[fault]
        faults.code = code
        if meta:
            faults.meta = True
        else:
            faults.files = {"create", "write", "truncate", "fsync", "utime"}
        with pytest.raises((FsError, OSError)) as failed:
            await act()
        faults.meta, faults.files = False, set()
        assert failed.value.errno == code
        assert await tree(v) == before
        assert records(v) == recs
    finally:
        for fh in handles:
            v.release(fh)
        v.close()
    again = open_checkout_view(store, "ds", "main", 1 << 20)
    try:
        assert await tree(again) == before
        assert records(again) == recs
    finally:
        again.close()
    assert fsck(store).clean


async def test_release_of_unlinked_file_when_delete_fails(home: Path, tmp_path: Path) -> None:
    """The last release deletes an unlinked file's data; if that fails the tree is unchanged
    and the next mount collects the orphan."""
    make_repo(home, tmp_path)
    store = api.open_store(home)
    faults = Faults()
    v = open_failing_view(store, faults)
    ino_of = ino(v, "top.txt")
    fh = await v.open(ino_of, os.O_WRONLY)
    await v.write(fh, 0, b"doomed")
    await v.unlink(ROOT, b"top.txt")
    before, recs = await tree(v), records(v)
    faults.files, faults.code = {"unlink"}, errno.EIO
    v.release(fh)
    faults.files = set()
    assert records(v)[2] == [str(ino_of)]  # kept: the next mount collects it
    assert await tree(v) == before
    v.close()
    again = open_checkout_view(store, "ds", "main", 1 << 20)
    try:
        assert await tree(again) == before
        assert records(again)[:2] == recs[:2]
        assert records(again)[2] == []  # the orphan is gone
    finally:
        again.close()


async def test_commit_streams_within_a_small_budget(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit whose files exceed the write budget many times over (small files handed to
    the segment writer as they are encoded, a large one in windows) stores every byte."""
    monkeypatch.setenv("MLGITFS_WRITE_MEMORY", str(8 << 20))
    make_repo(home, tmp_path)
    store = api.open_store(home)
    v = open_checkout_view(store, "ds", "main", 1 << 20)
    files = {f"n{i:02}.bin": os.urandom(3 << 20) for i in range(12)}
    files["large.bin"] = os.urandom(20 << 20) + bytes(9 << 20)
    try:
        for name, data in files.items():
            fh, _ = await v.create(ROOT, name.encode(), 0o644, os.O_WRONLY)
            try:
                await v.write(fh, 0, data)
            finally:
                v.release(fh)
        out = await checkout_ops.commit_checkout(v, "many")
        assert out.files_hashed == len(files)
    finally:
        v.close()
    for name, data in files.items():
        assert b"".join(api.cat(home, f"ds@main:{name}")) == data
