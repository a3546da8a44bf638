"""One inode space per daemon (vfs/inodes.py): views that share it never hand out the same
number, in memory (a checkout beside a multi-version view) and through real mounts read and
written by real programs."""

from __future__ import annotations

import errno
import os
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import FsError
from mlgitfs.model.ids import InodeNo
from mlgitfs.vfs.factory import mixed_view, open_checkout_view
from mlgitfs.vfs.inodes import RANGE_BITS, InodeSpace
from mlgitfs.vfs.multi import Source, VersionsView
from mlgitfs.vfs.types import ROOT_INODE, Kind, ViewContext
from tests.conftest import write_tree
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter"]  # a fixture

FILES: dict[str, bytes | str] = {
    "a/x.txt": "x",
    "a/b/y.bin": os.urandom(3000),
    "c.txt": "c",
    "d/e/f.txt": "f",
}


@pytest.fixture
def repo(home: Path, tmp_path: Path) -> None:
    api.init(home, "ds", "dataset", "mutable")
    api.import_dir(home, "ds", write_tree(tmp_path / "s1", FILES), "v1")
    api.tag_create(home, "ds@v1")
    api.import_dir(home, "ds", write_tree(tmp_path / "s2", FILES | {"g.txt": "g"}), "v2")
    api.branch_create(home, "ds@dev", "@v1")


def test_ranges_are_given_once_and_run_out() -> None:
    space = InodeSpace(bits=61)  # four ranges of 2^61
    ranges = [space.take() for _ in range(4)]
    assert [r.index for r in ranges] == [0, 1, 2, 3]
    assert ranges[1].outer(5) == (1 << 61) | 5 and ranges[1].inner(ranges[1].outer(5)) == 5
    assert ranges[2].holds(ranges[2].outer(ROOT_INODE)) and not ranges[2].holds(ROOT_INODE)
    with pytest.raises(FsError) as info:
        space.take()
    assert info.value.errno == errno.ENOSPC


async def test_a_checkout_and_versions_share_one_space(home: Path, repo: None) -> None:
    store = api.open_store(home)
    context = ViewContext(inodes=InodeSpace())
    wview = open_checkout_view(store, "ds", "main", 1 << 20, context=context)
    versions = VersionsView(store, [Source(b"", "ds")], inodes=context.inodes)
    try:
        assert context.checkouts == {"ds@main": wview}
        seen: dict[int, str] = {}

        def note(ino: int, what: str) -> None:
            assert ino not in seen, f"{what} and {seen[ino]} share inode {ino}"
            seen[ino] = what

        # The checkout: every node, and new ones made through its own counter.
        await wview.mkdir(ROOT_INODE, b"new", 0o755)
        todo = [ROOT_INODE]
        while todo:
            fh = wview.opendir(InodeNo(todo.pop()))
            for name, attr, _ in wview.readdir(fh, 0):
                note(attr.ino, f"checkout {name!r}")
                if attr.kind is Kind.DIR:
                    todo.append(InodeNo(attr.ino))
            wview.releasedir(fh)
        note(ROOT_INODE, "checkout root")
        # Every version of the multi-version view, in ranges after the checkout's.
        assert versions.root == (1 << RANGE_BITS) | ROOT_INODE  # not the mount's root here
        vtodo = [InodeNo(versions.lookup(versions.root, name).ino)
                 for name in (b"@v1", b"@dev", b"@main")]  # fmt: skip
        for top in vtodo:
            note(top, "a version's root")
        while vtodo:
            for name, attr, _ in versions.readdir(vtodo.pop(), 0):
                note(attr.ino, f"version entry {name!r}")
                if attr.kind is Kind.DIR:
                    vtodo.append(InodeNo(attr.ino))
        ranges = {ino >> RANGE_BITS for ino in seen}
        assert ranges == {0, 2, 3, 4}  # checkout, (versions' own dirs: 1), three versions
        assert len(seen) > 20
    finally:
        versions.close()
        wview.close()


async def test_a_checkout_beside_versions_in_one_view(home: Path, repo: None) -> None:
    """The view of `mount ds MNT --write dev` (vfs/mixed.py), without a kernel: @dev is the
    checkout in the range after the mount's own, each version opened takes the next, and
    every change outside @dev is EROFS."""
    context = ViewContext(inodes=InodeSpace())
    source = {"name": "", "repo": "ds", "commit": None, "path": ""}
    arg = {"home": str(home), "sources": [source], "write": [{"repo": "ds", "branch": "dev"}]}
    view = mixed_view(arg, context)
    try:
        assert set(context.checkouts) == {"ds@dev"}
        dev = view.lookup(ROOT_INODE, b"@dev")
        assert dev.ino == (1 << RANGE_BITS) | ROOT_INODE
        v1 = view.lookup(ROOT_INODE, b"@v1")
        assert v1.ino >> RANGE_BITS == 2
        made = await view.mkdir(InodeNo(dev.ino), b"new", 0o755)
        assert made.ino >> RANGE_BITS == 1 and view.getattr(InodeNo(made.ino)) == made
        fh, created = await view.create(InodeNo(made.ino), b"f.txt", 0o644, os.O_WRONLY)
        assert await view.write(fh, 0, b"abc") == 3
        view.release(fh)
        assert view.lookup(InodeNo(made.ino), b"f.txt").size == 3
        fh = view.opendir(InodeNo(dev.ino))
        listed = {name: attr.ino for name, attr, _ in view.readdir(fh, 0)}
        view.releasedir(fh)
        assert listed[b"new"] == made.ino and all(i >> RANGE_BITS == 1 for i in listed.values())
        refusals = [
            view.mkdir(InodeNo(v1.ino), b"x", 0o755),
            view.mkdir(ROOT_INODE, b"x", 0o755),
            view.unlink(InodeNo(v1.ino), b"c.txt"),
            view.rename(InodeNo(dev.ino), b"c.txt", InodeNo(v1.ino), b"c.txt", 0),
            view.open(InodeNo(view.lookup(InodeNo(v1.ino), b"c.txt").ino), os.O_RDWR),
        ]
        for call in refusals:
            with pytest.raises(FsError) as info:
                await call
            assert info.value.errno == errno.EROFS
        fh = await view.open(InodeNo(view.lookup(InodeNo(v1.ino), b"c.txt").ino), os.O_RDONLY)
        assert bytes(await view.read(fh, 0, 10)) == b"c"
        view.release(fh)
    finally:
        view.close()
    # Closed with the view (its lock released), the checkout keeps the work for the next
    # mount of the branch, here alone, in its own numbers.
    again = open_checkout_view(api.open_store(home), "ds", "dev", 1 << 20)
    try:
        new = again.lookup(ROOT_INODE, b"new")
        assert new.ino == made.ino & ((1 << RANGE_BITS) - 1)
        assert again.lookup(InodeNo(new.ino), b"f.txt").size == 3
    finally:
        again.close()


def _find(root: Path) -> dict[str, int]:
    """path → st_ino of everything under root, as find(1) sees it."""
    out = subprocess.run(["find", str(root), "-mindepth", "1", "-printf", "%i %P\n"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    pairs = (line.split(" ", 1) for line in out.stdout.splitlines())
    return {path: int(ino) for ino, path in pairs}


@pytest.mark.fuse
@pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason()))
def test_no_inode_collides_in_a_writable_and_a_multi_version_mount(
    home: Path, repo: None, tmp_path: Path, mounter: Mounter
) -> None:
    wmp = mounter("ds@main", "w")
    subprocess.run(["cp", str(wmp / "c.txt"), str(wmp / "copy.txt")], check=True)
    subprocess.run(["mv", str(wmp / "copy.txt"), str(wmp / "d" / "moved.txt")], check=True)
    subprocess.run(["sh", "-c", f"echo changed > {wmp / 'a' / 'x.txt'}"], check=True)
    subprocess.run(["mkdir", "-p", str(wmp / "n1" / "n2")], check=True)
    before = _find(wmp)
    assert len(set(before.values())) == len(before), before
    assert all(ino >> RANGE_BITS == 0 for ino in before.values())  # the checkout's range
    mlgitfs(home, "commit", str(wmp), "-m", "from the mount")
    after = _find(wmp)
    assert after == before  # a commit keeps every number
    subprocess.run(["sh", "-c", f"echo again > {wmp / 'n1' / 'n2' / 'new.txt'}"], check=True)
    again = _find(wmp)
    assert len(set(again.values())) == len(again)

    vmp = mounter("ds", "v")
    tops = ["@main", "@v1", "@dev"]
    seen = {top: _find(vmp / top) for top in tops}
    assert (vmp / "@main" / "d" / "moved.txt").read_text() == "c"
    every = [ino for found in seen.values() for ino in found.values()]
    every += [os.stat(vmp / top).st_ino for top in tops]
    assert len(set(every)) == len(every)
    by_range: dict[int, set[str]] = defaultdict(set)
    for top, found in seen.items():
        for ino in found.values():
            by_range[ino >> RANGE_BITS].add(top)
    assert all(len(owners) == 1 for owners in by_range.values())  # one version per range
    assert 0 not in by_range  # range 0: the mount's own directories
