"""The writable view without a kernel: overlay, policies, commit, status, restore, remount."""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from mlgitfs import api
from mlgitfs.errors import ConflictError, FsError, MountError, PolicyError, UnsafeOperation
from mlgitfs.meta import db
from mlgitfs.model.ids import InodeNo, ObjectId, from_hex
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.treeedit import update_dir
from mlgitfs.repo.trees import MAX_DEPTH, DirView, build_dir
from mlgitfs.store.facade import Store
from mlgitfs.vfs import checkout_ops
from mlgitfs.vfs.factory import open_checkout_view
from mlgitfs.vfs.overlay import WritableView
from mlgitfs.vfs.types import ROOT_INODE
from tests.conftest import write_tree

OLD = 1_650_000_000_000_000_000


def make_repo(home: Path, tmp_path: Path, mutability: str = "mutable") -> None:
    api.init(home, "ds", "dataset", mutability)
    src = write_tree(
        tmp_path / "src",
        {
            "a/one.txt": b"one\n",
            "a/two.txt": b"two\n" * 1000,
            "b/c/deep.bin": os.urandom(300_000),
            "top.txt": b"top\n",
            "link": "->a/one.txt",
        },
        mtime_ns=OLD,
    )
    api.import_dir(home, "ds@main", src, "first")


@pytest.fixture
def view(home: Path, tmp_path: Path) -> Iterator[WritableView]:
    make_repo(home, tmp_path)
    v = open_checkout_view(api.open_store(home), "ds", "main", 1 << 20)
    yield v
    v.close()


def ino(v: WritableView, path: str) -> InodeNo:
    node = v.resolve([p.encode() for p in path.split("/") if p])
    assert node is not None, path
    return InodeNo(node.ino)


async def read_all(v: WritableView, path: str) -> bytes:
    fh = await v.open(ino(v, path), os.O_RDONLY)
    try:
        out = b""
        while True:
            part = await v.read(fh, len(out), 1 << 20)
            if not part:
                return out
            out += part
    finally:
        v.release(fh)


async def write_file(v: WritableView, path: str, data: bytes, offset: int = 0) -> None:
    fh = await v.open(ino(v, path), os.O_WRONLY)
    try:
        await v.write(fh, offset, data)
    finally:
        v.release(fh)


async def create(v: WritableView, parent: str, name: str, data: bytes) -> None:
    fh, _ = await v.create(ino(v, parent), name.encode(), 0o644, os.O_WRONLY)
    await v.write(fh, 0, data)
    v.release(fh)


def head_files(home: Path, ref: str = "ds@main") -> dict[str, bytes]:
    return {
        e.path: b"".join(api.cat(home, f"{ref}:{e.path}"))
        for e in api.ls(home, ref, recursive=True)
        if e.kind == "file"
    }


async def test_write_create_commit(view: WritableView, home: Path) -> None:
    await write_file(view, "a/one.txt", b"ONE")
    await create(view, "a", "new.txt", b"fresh")
    await view.mkdir(ino(view, ""), b"emptydir", 0o750)
    assert await read_all(view, "a/one.txt") == b"ONE\n"
    st = {(c.change, c.path) for c in (await checkout_ops.changes.status(view))}
    assert st == {("modified", "a/one.txt"), ("added", "a/new.txt"), ("added", "emptydir")}
    before = api.show(home, "ds@main")
    untouched = DirView(view.store, view.base_tree()).lookup(b"b")
    reply = await checkout_ops.commit_checkout(view, "edit")
    assert reply.files_hashed == 2
    after = api.show(home, "ds@main")
    assert after.parents == (before.id,)
    files = head_files(home)
    assert files["a/one.txt"] == b"ONE\n"
    assert files["a/new.txt"] == b"fresh"
    assert DirView(view.store, view.base_tree()).lookup(b"b") == untouched
    assert (await checkout_ops.changes.status(view)) == []
    assert list((view.files).iterdir()) == []
    # inode numbers are kept and content is now served from the store
    assert await read_all(view, "a/new.txt") == b"fresh"
    await write_file(view, "a/new.txt", b"F")
    assert await read_all(view, "a/new.txt") == b"Fresh"


async def test_unlink_open_file_keeps_data_until_release(view: WritableView) -> None:
    await create(view, "", "tmp.bin", b"x" * 5000)
    fh = await view.open(ino(view, "tmp.bin"), os.O_RDWR)
    await view.unlink(ROOT_INODE, b"tmp.bin")
    assert view.resolve([b"tmp.bin"]) is None
    assert await view.read(fh, 0, 10) == b"x" * 10
    await view.write(fh, 0, b"yy")
    node_ino = view._handles[fh].ino
    assert (view.files / str(node_ino)).exists()
    view.release(fh)
    assert not (view.files / str(node_ino)).exists()
    assert (await checkout_ops.changes.status(view)) == []


async def test_rename_dir_and_over_file(view: WritableView, home: Path) -> None:
    await view.rename(ROOT_INODE, b"a", ROOT_INODE, b"z", 0)
    await view.rename(ino(view, "z"), b"one.txt", ROOT_INODE, b"top.txt", 0)
    st = {(c.change, c.path, c.old_path) for c in (await checkout_ops.changes.status(view))}
    # top.txt was replaced by a rename over it: compared by content with the base, it is
    # modified (as the commit's diff says), and a/one.txt is gone (issue 13).
    assert st == {
        ("added", "z", ""),  # directories have lines of their own, never paired
        ("deleted", "a", ""),
        ("renamed", "z/two.txt", "a/two.txt"),
        ("modified", "top.txt", ""),
        ("deleted", "a/one.txt", ""),
    }
    with pytest.raises(FsError) as e:
        await view.rename(ROOT_INODE, b"z", ino(view, "z"), b"inside", 0)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(FsError) as e:
        await view.rename(ROOT_INODE, b"z", ROOT_INODE, b"b", 0)
    assert e.value.errno == errno.ENOTEMPTY
    await checkout_ops.commit_checkout(view, "moves")
    files = head_files(home)
    assert set(files) == {"z/two.txt", "b/c/deep.bin", "top.txt"}
    assert files["top.txt"] == b"one\n"


async def test_remount_keeps_overlay_and_inodes(home: Path, tmp_path: Path) -> None:
    make_repo(home, tmp_path)
    store = api.open_store(home)
    v = open_checkout_view(store, "ds", "main", 1 << 20)
    await write_file(v, "a/two.txt", b"Z", 10)
    await create(v, "b/c", "n.txt", b"new")
    await v.symlink(ROOT_INODE, b"sl", b"target")
    await v.setattr(ino(v, "top.txt"), mode=0o600)
    numbers = {p: ino(v, p) for p in ("a/two.txt", "b/c/n.txt", "b/c/deep.bin", "sl", "a")}
    with pytest.raises(MountError, match="already mounted writable"):
        open_checkout_view(store, "ds", "main", 1 << 20)
    status = await checkout_ops.changes.status(v)
    v.close()
    v = open_checkout_view(store, "ds", "main", 1 << 20)
    try:
        assert {p: ino(v, p) for p in numbers} == numbers
        assert (await checkout_ops.changes.status(v)) == status
        assert (await read_all(v, "a/two.txt"))[8:12] == b"twZ\n"
        assert v.readlink(ino(v, "sl")) == b"target"
        assert v.getattr(ino(v, "top.txt")).mode & 0o777 == 0o600
        fresh = await v.mkdir(ROOT_INODE, b"later", 0o755)
        assert fresh.ino > max(numbers.values())
    finally:
        v.close()


async def test_conflict_keeps_overlay(view: WritableView, home: Path, tmp_path: Path) -> None:
    await create(view, "", "mine.txt", b"mine")
    other = write_tree(tmp_path / "other", {"x": b"x"}, mtime_ns=OLD)
    with pytest.raises(UnsafeOperation):  # an import waits for the checkout's work
        api.import_dir(home, "ds@main", other, "moved elsewhere")
    side = api.import_dir(home, "ds@side", other, "moved elsewhere").commit.id
    store = api.open_store(home)
    with store.env.write() as txn:  # a peer moves the branch anyway
        head = db.get_ref(txn, "ds", "heads/main")
        db.set_ref(txn, "ds", "heads/main", ObjectId(from_hex(side)), head, "moved elsewhere")
    with pytest.raises(ConflictError, match="moved"):
        await checkout_ops.commit_checkout(view, "late")
    assert [c.path for c in (await checkout_ops.changes.status(view))] == ["mine.txt"]
    assert await read_all(view, "mine.txt") == b"mine"


async def test_dry_run_changes_nothing(view: WritableView, home: Path) -> None:
    await create(view, "", "d.txt", b"dry")
    head = api.show(home, "ds@main").id
    reply = await checkout_ops.commit_checkout(view, "m", dry_run=True)
    assert reply.commit is None
    assert [c.path for c in reply.changes] == ["d.txt"]
    assert api.show(home, "ds@main").id == head


async def test_restore(view: WritableView, home: Path) -> None:
    first = api.show(home, "ds@main").id
    await write_file(view, "a/one.txt", b"XXX")
    await view.unlink(ino(view, "b/c"), b"deep.bin")
    await checkout_ops.restore_paths(view, ["a/one.txt", "b"])
    assert (await checkout_ops.changes.status(view)) == []
    assert await read_all(view, "a/one.txt") == b"one\n"
    await write_file(view, "top.txt", b"TOP")
    await checkout_ops.commit_checkout(view, "second")
    await checkout_ops.restore_paths(view, [], f"ds@{first[:12]}")
    assert [(c.change, c.path) for c in (await checkout_ops.changes.status(view))] == [
        ("modified", "top.txt")
    ]
    assert await read_all(view, "top.txt") == b"top\n"


@pytest.mark.parametrize("policy", ["strict", "flexible"])
async def test_policies(home: Path, tmp_path: Path, policy: str) -> None:
    make_repo(home, tmp_path, policy)
    v = open_checkout_view(api.open_store(home), "ds", "main", 1 << 20)
    try:
        with pytest.raises(FsError) as e:
            await v.open(ino(v, "a/one.txt"), os.O_WRONLY)
        assert e.value.errno == errno.EPERM
        assert policy in e.value.message
        with pytest.raises(FsError):
            await v.setattr(ino(v, "top.txt"), size=0)
        await create(v, "", "added.txt", b"ok")  # adding works
        await write_file(v, "added.txt", b"OK")  # and changing what is not committed
        await v.unlink(ino(v, "a"), b"two.txt")  # removing works
        if policy == "strict":
            with pytest.raises(PolicyError):
                await checkout_ops.unlock(v, ["a/one.txt"])
        else:
            await checkout_ops.unlock(v, ["a/one.txt"])
            await write_file(v, "a/one.txt", b"ONE")
            await checkout_ops.commit_checkout(v, "edit")
            assert head_files(home)["a/one.txt"] == b"ONE\n"
            with pytest.raises(FsError):  # locked again after the commit
                await v.open(ino(v, "a/one.txt"), os.O_WRONLY)
    finally:
        v.close()


async def test_writes_during_commit_land_in_a_commit(view: WritableView, home: Path) -> None:
    await create(view, "", "log.txt", b"")
    fh = await view.open(ino(view, "log.txt"), os.O_WRONLY)
    written = []

    async def writer() -> None:
        for i in range(200):
            line = f"{i}\n".encode()
            await view.write(fh, sum(len(x) for x in written), line)
            written.append(line)
            await trio.sleep(0)

    async with trio.open_nursery() as n:
        n.start_soon(writer)
        for _ in range(3):
            await trio.sleep(0.001)
            await checkout_ops.commit_checkout(view, "tick")
    view.release(fh)
    await checkout_ops.commit_checkout(view, "last")
    assert head_files(home)["log.txt"] == b"".join(written)


def test_update_dir_matches_build_dir(home: Path) -> None:
    store = Store.open(home)
    rnd = random.Random(7)
    names = sorted({f"f{rnd.randrange(10**6):07d}".encode() for _ in range(9000)})

    def entry(name: bytes, size: int = 1) -> TreeEntry:
        return TreeEntry(name, EntryKind.FILE, 0o644, size, 0, bytes(32))

    for _round in range(4):
        entries = [entry(n) for n in names]
        objs: list[tuple[ObjectId, bytes]] = []
        old = build_dir(entries, objs)
        with store.env.write() as txn:
            store.put_objects(txn, objs)
        changes: dict[bytes, TreeEntry | None] = {}
        for _ in range(rnd.choice([1, 5, 50, 3000])):
            n = rnd.choice(names) if rnd.random() < 0.6 else f"g{rnd.randrange(10**6)}".encode()
            changes[n] = None if rnd.random() < 0.4 else entry(n, 2)
        merged = {e.name: e for e in entries}
        for n, e in changes.items():
            if e is None:
                merged.pop(n, None)
            else:
                merged[n] = e
        expect = build_dir([merged[n] for n in sorted(merged)], [])
        got, count = update_dir(store, old, changes, [])
        assert got == expect and count == len(merged)
        names = sorted(merged)


async def test_directory_link_counts(home: Path, tmp_path: Path) -> None:
    """2 + subdirectories, as ext4; a big directory not listed yet says 1 ("not counted")
    rather than having its listing read for a stat."""
    api.init(home, "ds", "dataset", "mutable")
    files: dict[str, bytes | str] = {f"big/f{i:04}": b"x" for i in range(1_001)}
    files.update({"big/s1/": b"", "big/s2/": b"", "small/a/": b"", "small/f": b"f"})
    api.import_dir(home, "ds@main", write_tree(tmp_path / "src", files, mtime_ns=OLD), "first")
    v = open_checkout_view(api.open_store(home), "ds", "main", 1 << 20)
    try:
        assert v.getattr(ino(v, "small")).nlink == 3
        assert v.getattr(ROOT_INODE).nlink == 4
        big = ino(v, "big")
        assert v.getattr(big).nlink == 1
        fh = v.opendir(big)
        assert len(list(v.readdir(fh, 0))) == 1_003
        v.releasedir(fh)
        assert v.getattr(big).nlink == 4
        await v.rmdir(big, b"s1")
        assert v.getattr(big).nlink == 3
    finally:
        v.close()


async def test_commit_of_a_deep_new_directory(view: WritableView, home: Path) -> None:
    """A change 2,000 levels deep commits, reads back and fscks clean (the commit's walks
    recursed once per level: RecursionError past about 990)."""
    parent = ROOT_INODE
    for _ in range(2_000):
        parent = InodeNo((await view.mkdir(parent, b"d", 0o755)).ino)
    fh, _ = await view.create(parent, b"leaf.txt", 0o644, os.O_WRONLY)
    view.release(fh)
    st = await checkout_ops.changes.status(view)
    assert ("added", "/".join(["d"] * 2_000) + "/leaf.txt") in {(c.change, c.path) for c in st}
    await checkout_ops.commit_checkout(view, "deep")
    assert (await checkout_ops.changes.status(view)) == []
    files = head_files(home)
    assert files["/".join(["d"] * 2_000) + "/leaf.txt"] == b""


async def test_a_directory_deeper_than_the_format_is_refused(
    view: WritableView, home: Path
) -> None:
    """mkdir and rename refuse a directory readers would refuse (trees.MAX_DEPTH); one level
    less is made, committed and read back."""
    parent = ROOT_INODE
    for _ in range(MAX_DEPTH - 1):
        parent = InodeNo((await view.mkdir(parent, b"d", 0o755)).ino)
    with pytest.raises(FsError) as exc:
        await view.mkdir(parent, b"d", 0o755)
    assert exc.value.errno == errno.ENAMETOOLONG
    await view.mkdir(ROOT_INODE, b"m", 0o755)
    with pytest.raises(FsError) as exc:
        await view.rename(ROOT_INODE, b"m", parent, b"m", 0)
    assert exc.value.errno == errno.ENAMETOOLONG
    fh, _ = await view.create(parent, b"leaf", 0o644, os.O_WRONLY)
    view.release(fh)
    await checkout_ops.commit_checkout(view, "deepest")
    assert head_files(home)["/".join(["d"] * (MAX_DEPTH - 1)) + "/leaf"] == b""
