"""The multi-version view without a kernel (vfs/multi.py): names, inode ranges, forgets that
close a version, reads and prefills routed to the right version, errors that leave it serving."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio

from mlgitfs import api
from mlgitfs.errors import FsError
from mlgitfs.meta import db
from mlgitfs.model.ids import InodeNo, ObjectId, from_hex
from mlgitfs.store.segfile import Buffer
from mlgitfs.vfs.multi import VERSION_SHIFT, Source, VersionsView
from mlgitfs.vfs.types import ROOT_INODE, Kind
from tests.conftest import write_tree


@pytest.fixture
def repo(home: Path, tmp_path: Path) -> dict[str, str]:
    api.init(home, "ds", "dataset", "mutable")  # v2 changes files in place
    out = {}
    for n in (1, 2):
        files: dict[str, bytes | str] = {
            "a/x.txt": f"x{n}",
            "a/b/y.bin": os.urandom(5000 + n),
            "a/z1": f"z1{n}",
            "a/z2": f"z2{n}",
            f"only{n}": str(n),
        }
        src = write_tree(tmp_path / f"s{n}", files)
        out[f"v{n}"] = api.import_dir(home, "ds", src, "m").commit.id
        api.tag_create(home, f"ds@v{n}")
    api.branch_create(home, "ds@team/fix", "@v1")
    return out


def _ls(view: VersionsView, ino: InodeNo) -> dict[bytes, int]:
    return {name: attr.ino for name, attr, _ in view.readdir(ino, 0)}


async def test_names_ranges_and_reads(home: Path, repo: dict[str, str]) -> None:
    store = api.open_store(home)
    view = VersionsView(store, [Source(b"", "ds")])
    assert sorted(_ls(view, ROOT_INODE)) == [b"@main", b"@team", b"@v1", b"@v2"]
    assert view.versions_open() == 3  # listed: opened (each entry counts a lookup)
    v1 = view.lookup(ROOT_INODE, b"@v1")
    pre = view.lookup(ROOT_INODE, b"@" + repo["v2"][:8].encode())
    assert v1.kind is Kind.DIR and v1.ino >> VERSION_SHIFT != pre.ino >> VERSION_SHIFT
    team = view.lookup(ROOT_INODE, b"@team")
    assert view.is_dynamic(InodeNo(team.ino)) and not view.is_dynamic(InodeNo(v1.ino))
    fix = view.lookup(InodeNo(team.ino), b"fix")
    x1 = view.lookup(InodeNo(v1.ino), b"a")
    f1 = view.lookup(InodeNo(x1.ino), b"x.txt")
    f2 = view.lookup(InodeNo(view.lookup(InodeNo(pre.ino), b"a").ino), b"x.txt")
    ffix = view.lookup(InodeNo(view.lookup(InodeNo(fix.ino), b"a").ino), b"x.txt")
    # The same path in three versions: three inode numbers, each in its version's range.
    assert len({f1.ino, f2.ino, ffix.ino}) == 3
    assert f1.ino >> VERSION_SHIFT == v1.ino >> VERSION_SHIFT
    assert bytes(await view.read(InodeNo(f1.ino), 0, 10)) == b"x1"
    assert bytes(await view.read(InodeNo(f2.ino), 0, 10)) == b"x2"
    for bad in (b"@nope", b"nope", b"@", b"@abc", b"\xff", b"@v1x"):
        with pytest.raises(FsError) as exc:
            view.lookup(ROOT_INODE, bad)
        assert exc.value.errno == errno.ENOENT
    with pytest.raises(FsError) as exc:
        view.lookup(InodeNo(team.ino), b"other")
    assert exc.value.errno == errno.ENOENT
    with pytest.raises(FsError) as exc:
        await view.read(ROOT_INODE, 0, 1)
    assert exc.value.errno == errno.EISDIR


async def test_forget_closes_a_version_and_prefills_are_shifted(
    home: Path, repo: dict[str, str]
) -> None:
    store = api.open_store(home)
    # Prefills from a version's view reach the kernel under the mount's numbers.
    stored: list[tuple[int, bytes]] = []

    def prefill(ino: InodeNo, data: Buffer) -> None:
        stored.append((ino, bytes(data)))

    view = VersionsView(store, [Source(b"", "ds")], prefill=prefill)
    root = view.lookup(ROOT_INODE, b"@v2")
    a = view.lookup(InodeNo(root.ino), b"a")
    x = view.lookup(InodeNo(a.ino), b"x.txt")
    assert view.versions_open() == 1
    view.forget([(InodeNo(root.ino), 1), (InodeNo(x.ino), 1), (InodeNo(a.ino), 1)])
    assert view.versions_open() == 0  # a batch listing the root first is handled too
    again = view.lookup(ROOT_INODE, b"@v2")
    assert again.ino >> VERSION_SHIFT == (root.ino >> VERSION_SHIFT) + 1
    d = view.lookup(InodeNo(again.ino), b"a")
    names = _ls(view, InodeNo(d.ino))
    async with trio.open_nursery() as nursery:
        view.attach(nursery)
        await view.read(InodeNo(names[b"x.txt"]), 0, 10)
        with trio.fail_after(10):
            while not stored:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert stored and all(ino >> VERSION_SHIFT == again.ino >> VERSION_SHIFT for ino, _ in stored)
    assert {ino for ino, _ in stored} <= set(names.values())


async def test_other_ref_spellings(home: Path, repo: dict[str, str]) -> None:
    """A remote-tracking ref nests as `@origin/main`, the qualified names under `@tags/` and
    `@heads/`, and `@main@{1}` is what main named one move ago (by its reflog)."""
    store = api.open_store(home)
    v1 = ObjectId(from_hex(repo["v1"]))
    with store.env.write() as txn:  # what a fetch records for origin's main
        db.set_ref(txn, "ds", "remotes/origin/heads/main", v1, None, "fetch")
    view = VersionsView(store, [Source(b"", "ds")])
    assert b"@origin" not in _ls(view, ROOT_INODE)  # listed: branches and tags only
    origin = view.lookup(ROOT_INODE, b"@origin")
    assert _ls(view, InodeNo(origin.ino)).keys() == {b"main"}
    tags = view.lookup(ROOT_INODE, b"@tags")
    assert _ls(view, InodeNo(tags.ino)).keys() == {b"v1", b"v2"}
    heads = view.lookup(ROOT_INODE, b"@heads")
    assert _ls(view, InodeNo(heads.ino)).keys() == {b"main", b"team"}
    for parent, name, want in (
        (InodeNo(origin.ino), b"main", b"x1"),
        (ROOT_INODE, b"@main@{1}", b"x1"),
        (ROOT_INODE, b"@main@{0}", b"x2"),
        (InodeNo(tags.ino), b"v2", b"x2"),
    ):
        top = view.lookup(parent, name)
        x = view.lookup(InodeNo(view.lookup(InodeNo(top.ino), b"a").ino), b"x.txt")
        assert bytes(await view.read(InodeNo(x.ino), 0, 10)) == want, name


async def test_sources_side_by_side(home: Path, repo: dict[str, str]) -> None:
    store = api.open_store(home)
    v1 = ObjectId(from_hex(repo["v1"]))
    gone = ObjectId(bytes(32))  # a commit the store does not hold: EIO, and the view serves on
    sources = [Source(b"one", "ds", v1, (b"a",)), Source(b"all", "ds"), Source(b"gone", "ds", gone)]
    view = VersionsView(store, sources)
    with pytest.raises(FsError) as exc:
        view.lookup(ROOT_INODE, b"gone")
    assert exc.value.errno == errno.EIO
    assert sorted(_ls(view, ROOT_INODE)) == [b"all", b"one"]  # left out of the listing
    one = view.lookup(ROOT_INODE, b"one")
    assert sorted(_ls(view, InodeNo(one.ino))) == [
        b"b",
        b"x.txt",
        b"z1",
        b"z2",
    ]  # the root is a/ of v1
    every = view.lookup(ROOT_INODE, b"all")
    assert b"@v2" in _ls(view, InodeNo(every.ino))
    with pytest.raises(FsError):
        view.lookup(ROOT_INODE, b"@v1")
