"""Property: `status`, `commit --dry-run` and the commit agree, always (issue 13).

Random sequences of writes (some writing back the committed bytes), creates, unlinks and
creates again under the same name, renames over committed files, directory renames, chmods,
restores (from the base and from another version) and commits run on a writable view; at
every commit the status lines (a rename counted as a removal and an addition) must be the
diff, directories included, between the base and the commit it produced, the dry run must
show the same lines, and an empty status must mean "nothing to commit". CI-sized;
MLGITFS_STATUS_EXAMPLES raises the number of examples.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.errors import FsError, PathNotFound, PolicyError
from mlgitfs.model.ids import InodeNo, ObjectId
from mlgitfs.repo.diff import diff_trees, with_renames
from mlgitfs.vfs import changes, checkout_ops
from mlgitfs.vfs.factory import open_checkout_view
from mlgitfs.vfs.overlay import WritableView
from mlgitfs.vfs.types import ROOT_INODE, Kind
from tests.conftest import write_tree

OLD = 1_650_000_000_000_000_000
A, B, C = b"alpha\n", b"bravo\n" * 50, b"charlie\n"
BASE = {"a/f0": A, "a/f1": B, "b/f0": A, "top": C, "d/e/f2": B, "s": "->top"}
OTHER = {"a/f0": C, "a/f1": B, "b/g": A, "d/e/f2": A, "top": C}
PATHS = ["a/f0", "a/f1", "b/f0", "b/g", "top", "a", "b", "d", "d/e", "d/e/f2", "n", "a/n"]
DATA = [A, B, C, b"", b"new bytes"]

ops = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(PATHS), st.sampled_from(DATA)),
    st.tuples(st.just("create"), st.sampled_from(PATHS), st.sampled_from(DATA)),
    st.tuples(st.just("unlink"), st.sampled_from(PATHS), st.just(b"")),
    st.tuples(st.just("rename"), st.sampled_from(PATHS), st.sampled_from(PATHS)),
    st.tuples(st.just("exchange"), st.sampled_from(PATHS), st.sampled_from(PATHS)),
    st.tuples(st.just("chmod"), st.sampled_from(PATHS), st.sampled_from([0o600, 0o644, 0o755])),
    st.tuples(st.just("mkdir"), st.sampled_from(PATHS), st.just(b"")),
    st.tuples(st.just("rmdir"), st.sampled_from(PATHS), st.just(b"")),
    st.tuples(st.just("restore"), st.sampled_from(PATHS + [""]), st.sampled_from(["", "other"])),
    st.tuples(st.just("commit"), st.just(""), st.just(b"")),
)


def split(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


def ino_of(v: WritableView, path: str) -> InodeNo | None:
    node = v.resolve([p.encode() for p in path.split("/") if p])
    return None if node is None else InodeNo(node.ino)


async def apply(v: WritableView, op: str, path: str, arg: object) -> None:
    parent, name = split(path)
    pino = ino_of(v, parent)
    here = ino_of(v, path)
    if op == "write" and here is not None:
        fh = await v.open(here, os.O_WRONLY | os.O_TRUNC)
        try:
            assert isinstance(arg, bytes)
            await v.write(fh, 0, arg)
        finally:
            v.release(fh)
    elif op == "create" and pino is not None:
        fh, _ = await v.create(pino, name.encode(), 0o644, os.O_WRONLY)
        try:
            assert isinstance(arg, bytes)
            await v.write(fh, 0, arg)
        finally:
            v.release(fh)
    elif op == "unlink" and pino is not None:
        await v.unlink(pino, name.encode())
    elif op in ("rename", "exchange") and pino is not None:
        assert isinstance(arg, str)
        p2, n2 = split(arg)
        ino2 = ino_of(v, p2)
        if ino2 is not None:
            await v.rename(pino, name.encode(), ino2, n2.encode(), 2 if op == "exchange" else 0)
    elif op == "chmod" and here is not None:
        assert isinstance(arg, int)
        await v.setattr(here, mode=arg)
    elif op == "mkdir" and pino is not None:
        await v.mkdir(pino, name.encode(), 0o755)
    elif op == "rmdir" and pino is not None:
        await v.rmdir(pino, name.encode())
    elif op == "restore":
        await checkout_ops.restore_paths(v, [path] if path else [], "ds@other" if arg else "")


def diff_lines(v: WritableView, old_tree: bytes, new_tree: bytes) -> list[tuple[str, str, str]]:
    diff = list(diff_trees(v.store, ObjectId(old_tree), ObjectId(new_tree), dirs=True))
    if v.mutability.value != "mutable":
        replaced = [
            d.path
            for d in diff
            if d.old is not None and d.new is not None and d.old.is_file and not d.new.is_dir
            and (d.old.kind, d.old.ref) != (d.new.kind, d.new.ref)
        ]  # fmt: skip
        assert not replaced, f"{v.mutability.value} commit changed committed files {replaced}"
    return sorted((d.change.value, d.path, d.old_path) for d in with_renames(diff))


def check_link_counts(v: WritableView, ino: InodeNo) -> None:
    """Every directory's link count is 2 + its subdirectories (kept across the changes)."""
    before = v.getattr(ino).nlink
    fh = v.opendir(ino)
    subdirs = [a.ino for _, a, _ in v.readdir(fh, 0) if a.kind is Kind.DIR]
    v.releasedir(fh)
    assert before == v.getattr(ino).nlink == 2 + len(subdirs)
    for sub in subdirs:
        check_link_counts(v, sub)


async def check_commit(v: WritableView) -> None:
    check_link_counts(v, ROOT_INODE)
    status = await changes.status(v)
    dry = await checkout_ops.commit_checkout(v, "dry", dry_run=True)
    assert dry.changes == status
    old_tree = v.base_tree()
    reply = await checkout_ops.commit_checkout(v, "step")
    new_tree = v.base_tree()
    want = diff_lines(v, bytes(old_tree), bytes(new_tree))
    got = sorted((c.change.value, c.path, c.old_path) for c in status)
    assert got == want, (status, want)
    assert (reply.commit is None) == (not status)
    assert await changes.status(v) == []


def run_example(steps: list[tuple[str, str, object]], mutability: str = "mutable") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "store"
        api.init(home, "ds", "dataset", mutability)
        api.import_dir(home, "ds@main", write_tree(Path(tmp) / "b", BASE, mtime_ns=OLD), "base")
        # ds@other: a root commit of its own first import (strict/flexible would refuse an
        # import over main's committed files), the source restores take other bytes from
        api.import_dir(home, "ds@other", write_tree(Path(tmp) / "o", OTHER, mtime_ns=OLD), "o")

        async def main() -> None:
            v = open_checkout_view(api.open_store(home), "ds", "main", 1 << 20)
            try:
                for op, path, arg in steps:
                    try:
                        if op == "commit":
                            await check_commit(v)
                        else:
                            await apply(v, op, path, arg)
                    except FsError as exc:
                        assert exc.errno != errno.EIO, (op, path, arg, exc.message)
                    except PolicyError:
                        assert mutability != "mutable"
                    except PathNotFound:
                        assert op == "restore"  # a path in neither the source nor the mount
                await check_commit(v)
            finally:
                v.close()

        trio.run(main)
        report = api.fsck(home)
        api.close_store(home)
        assert report.clean, report.damage


EXAMPLES = int(os.environ.get("MLGITFS_STATUS_EXAMPLES", "60"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(ops, max_size=12))
def test_status_is_the_commits_diff(steps: list[tuple[str, str, object]]) -> None:
    run_example(steps)


@settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(ops, max_size=12), st.sampled_from(["strict", "flexible"]))
def test_policies_hold_whatever_the_calls(
    steps: list[tuple[str, str, object]], mutability: str
) -> None:
    """Under strict and flexible (nothing unlocked) no commit changes a committed file's
    bytes, whatever sequence of calls ran: check_commit's diff has no such line."""
    run_example(steps + [("commit", "", b"")], mutability)


def test_examples_from_the_issue() -> None:
    """The cases issue 13 names, always run: `mv new old` with the same and other bytes,
    unlink and create, sed -i's rename over, and restore of a directory from a version."""
    run_example(
        [
            ("create", "n", A),
            ("rename", "n", "a/f0"),  # same bytes as committed: no change at all
            ("commit", "", b""),
            ("create", "n", b"other"),
            ("rename", "n", "top"),  # modified, never added
            ("unlink", "a/f1", b""),
            ("create", "a/f1", B),  # unlink and create with the same bytes: unchanged
            ("commit", "", b""),
            ("restore", "d", "other"),  # a restored directory shows what it changed
            ("commit", "", b""),
            ("restore", "", "other"),
            ("commit", "", b""),
        ]
    )
