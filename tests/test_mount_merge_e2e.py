"""Two people, two stores, one branch (issue 15's first "Done when"), through the CLI, with a
file:// remote and with SeaweedFS: A and B change different images, different rows of one
labels CSV and one cell differently, each in a writable mount. B pulls into the mount: the
rows merge, one conflict is left there; B resolves it, commits and pushes; A pulls (a
fast-forward) and updates its mount. Every byte is as expected; fsck is clean in both."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import MlgitError
from tests.conftest import Cli, write_tree
from tests.test_mount_merge import RULES
from tests.test_sync import Remote, remote
from tests.wmount import OLD, snapshot
from testsupport.mounts import detach, fuse_skip_reason, stop_pid

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
__all__ = ["remote"]

LABELS = "image_id,label,note\n" + "".join(f'img{i:03d},cat,"a, b"\n' for i in range(60))


def _label(text: str, key: str, label: str) -> str:
    return text.replace(f'{key},cat,"a, b"\n', f'{key},{label},"a, b"\n')


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[list[tuple[Path, Path]]]:
    """(home, mountpoint) pairs to unmount at the end, even on failure."""
    made: list[tuple[Path, Path]] = []
    yield made
    for home, mp in made:
        with contextlib.suppress(MlgitError):
            for rec in api.mounts(home):
                stop_pid(rec.pid)
        detach(mp)


def _mount(home: Path, tmp_path: Path, name: str, made: list[tuple[Path, Path]]) -> Path:
    mp = tmp_path / name
    mp.mkdir()
    api.mount(home, "ds@main", mp)
    made.append((home, mp))
    return mp


def _tree(cli: Cli, tmp_path: Path, name: str) -> dict[str, tuple[str, int, bytes]]:
    out = tmp_path / name
    cli("export", "ds@main", str(out))
    return snapshot(out)


def test_two_stores_merge_rows_resolve_in_a_mount_push_pull(
    cli: Cli, remote: Remote, tmp_path: Path, mounts: list[tuple[Path, Path]]
) -> None:
    a = cli
    b = Cli(tmp_path / "store-b")
    images = {f"images/{i}.jpg": bytes([i]) * 5000 for i in range(6)}
    base = {**images, ".mlgitfs/merge.toml": RULES.encode(), "labels/train.csv": LABELS.encode()}
    a("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    a("import", "ds@main", str(write_tree(tmp_path / "base", dict(base), OLD)), "-m", "base")
    a("remote", "add", "origin", remote.url, *remote.add_args())
    a("push", "ds")
    b("clone", remote.url, "ds", *remote.add_args())
    try:
        # A: another image, a new one, two rows; committed in its mount and pushed
        mp_a = _mount(a.home, tmp_path, "mnt-a", mounts)
        (mp_a / "images/1.jpg").write_bytes(b"A's image 1")
        (mp_a / "images/a.jpg").write_bytes(b"A's new image")
        csv_a = _label(_label(LABELS, "img003", "dog"), "img007", "elk")
        (mp_a / "labels/train.csv").write_text(csv_a)
        a("commit", str(mp_a), "-m", "A relabels")
        a("push", "ds")
        a_head = api.show(a.home, "ds@main").id

        # B: other images and rows, and the same cell; committed in its mount
        mp_b = _mount(b.home, tmp_path, "mnt-b", mounts)
        (mp_b / "images/2.jpg").write_bytes(b"B's image 2")
        (mp_b / "images/b.jpg").write_bytes(b"B's new image")
        csv_b = _label(_label(LABELS, "img010", "cow"), "img007", "yak") + 'img999,emu,""\n'
        (mp_b / "labels/train.csv").write_text(csv_b)
        b("commit", str(mp_b), "-m", "B relabels")
        b_head = api.show(b.home, "ds@main").id

        # B pulls into its mount: the rows merge, one cell is left to resolve
        r = b("pull", "ds", "--into", str(mp_b), code=27)
        assert "U  labels/train.csv  (rows)" in r.stdout
        assert "key img007, column 'label': base 'cat', ours 'yak', theirs 'elk'" in r.stdout
        assert (mp_b / "images/1.jpg").read_bytes() == b"A's image 1"
        assert (mp_b / "images/a.jpg").read_bytes() == b"A's new image"
        merged = _label(_label(_label(LABELS, "img003", "dog"), "img010", "cow"), "img007", "yak")
        merged += 'img999,emu,""\n'
        assert (mp_b / "labels/train.csv").read_text() == merged  # ours in the conflicted cell
        st = json.loads(b("status", str(mp_b), "--json").stdout)
        [conflict] = st["merging"]["conflicts"]
        assert conflict["cells"] == [
            {"key": "img007", "column": "label", "base": "cat", "ours": "yak",
             "theirs": "elk", "kind": "cell"}
        ]  # fmt: skip
        theirs = b("conflicts", str(mp_b / "labels/train.csv"), "--side", "theirs").stdout
        assert theirs == csv_a
        r = b("commit", str(mp_b), "-m", "too early", code=27)
        # B settles the cell by editing the file in the mount, and resolves it
        final = merged.replace('img007,yak,"a, b"', 'img007,elk,"a, b"')
        (mp_b / "labels/train.csv").write_text(final)
        b("resolve", str(mp_b / "labels/train.csv"))
        b("commit", str(mp_b), "-m", "merge A's labels")
        merge_commit = api.log(b.home, "ds@main", limit=1)[0]
        assert merge_commit.parents == (b_head, a_head)
        b("push", "ds")

        # A pulls: a fast-forward to B's merge; its (clean) mount is behind, then updated
        pulled = json.loads(a("pull", "ds", "--ff-only", "--json").stdout)
        assert api.show(a.home, "ds@main").id == merge_commit.id, pulled
        assert json.loads(a("status", str(mp_a), "--json").stdout)["behind"] is True
        a("update", str(mp_a))
        expect = {
            **images,
            "images/1.jpg": b"A's image 1",
            "images/2.jpg": b"B's image 2",
            "images/a.jpg": b"A's new image",
            "images/b.jpg": b"B's new image",
            ".mlgitfs/merge.toml": RULES.encode(),
            "labels/train.csv": final.encode(),
        }
        for mp in (mp_a, mp_b):
            files = {k: v[2] for k, v in snapshot(mp).items() if v[0] == "file"}
            assert files == expect
        for store in (a, b):
            files = {k: v[2] for k, v in _tree(store, tmp_path, f"out-{store.home.name}").items()
                     if v[0] == "file"}  # fmt: skip
            assert files == expect
    finally:
        for home, mp in mounts:
            with contextlib.suppress(MlgitError):
                for rec in api.mounts(home):
                    stop_pid(rec.pid)
            detach(mp)
    for store in (a.home, b.home):
        report = api.fsck(store)
        assert report.clean, f"{store}: {report.damage}"
    api.close_store(b.home)
