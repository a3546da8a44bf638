"""Merges into a writable mount through the real CLI and a real mount: merge --into
MOUNTPOINT, status's unmerged paths, the sides of a conflict, resolve, commit's refusal and
its two-parent commit, merge --abort; and update of a mount whose branch moved under it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.meta import db
from mlgitfs.model.ids import ObjectId, from_hex
from tests.conftest import Cli, write_tree
from tests.wmount import OLD, Mounter, mounter, snapshot
from testsupport.mounts import fuse_skip_reason

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
__all__ = ["mounter"]

RULES = '[[rule]]\npath = "labels/*.csv"\nstrategy = "rows"\nkey = ["image_id"]\n'
LABELS = "image_id,label\n" + "".join(f"img{i:03d},cat\n" for i in range(20))


def _set(text: str, key: str, label: str) -> str:
    return text.replace(f"{key},cat\n", f"{key},{label}\n")


def _commit_on(cli: Cli, tmp: Path, branch: str, edit: dict[str, bytes | None]) -> str:
    """Export the branch, apply `edit` (None deletes), import it back; the new head."""
    work = tmp / f"work-{branch}-{len(list(tmp.iterdir()))}"
    cli("export", f"ds@{branch}", str(work))
    for path, value in edit.items():
        if value is None:
            (work / path).unlink()
        else:
            write_tree(work, {path: value})
    cli("import", f"ds@{branch}", str(work), "-m", f"edit {branch}")
    return api.show(cli.home, f"ds@{branch}").id


def _moved_by_a_peer(cli: Cli, tmp: Path, edit: dict[str, bytes | None]) -> str:
    """Move ds@main under its dirty mount as a pull from a peer does: the peer's commit is
    made on a branch of its own (an import onto main waits for the mount's work, exit 22),
    then main's ref moves to it; the new head."""
    peer = f"peer{len(list(tmp.iterdir()))}"
    cli("branch", f"ds@{peer}", "ds@main")
    new = _commit_on(cli, tmp, peer, edit)
    store = api.open_store(cli.home)
    with store.env.write() as txn:
        old = db.get_ref(txn, "ds", "heads/main")
        db.set_ref(txn, "ds", "heads/main", ObjectId(from_hex(new)), old, f"pull from {peer}")
    return new


def _make(cli: Cli, tmp_path: Path) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    files: dict[str, bytes | str] = {f"images/{i}.jpg": f"image {i}\n" * 100 for i in range(5)}
    files |= {".mlgitfs/merge.toml": RULES, "labels/train.csv": LABELS, "notes.txt": "notes\n"}
    cli("import", "ds@main", str(write_tree(tmp_path / "src", files, OLD)), "-m", "b")
    cli("branch", "ds@b", "ds@main")


def _status(cli: Cli, mp: Path) -> dict[str, object]:
    out = json.loads(cli("status", str(mp), "--json").stdout)
    assert isinstance(out, dict)
    return out


def test_merge_into_mount_resolve_abort_commit(cli: Cli, tmp_path: Path, mounter: Mounter) -> None:
    _make(cli, tmp_path)
    theirs_csv = _set(_set(LABELS, "img003", "dog"), "img007", "yak") + "img999,emu\n"
    theirs = _commit_on(
        cli, tmp_path, "b",
        {"images/1.jpg": b"theirs 1\n", "labels/train.csv": theirs_csv.encode(),
         "new.txt": b"new\n", "notes.txt": b"theirs notes\n", "images/4.jpg": None},
    )  # fmt: skip
    base = api.show(cli.home, "ds@main").id
    mp = mounter("ds@main")
    ours_csv = _set(_set(LABELS, "img010", "cow"), "img007", "elk")
    (mp / "labels" / "train.csv").write_text(ours_csv)
    (mp / "images" / "2.jpg").write_bytes(b"ours 2\n")
    (mp / "mine.txt").write_bytes(b"mine\n")
    (mp / "notes.txt").write_bytes(b"our notes\n")
    before = snapshot(mp)
    status_before = _status(cli, mp)["changes"]

    r = cli("merge", "ds@b", "--into", str(mp), code=27)
    assert "U  labels/train.csv  (rows)" in r.stdout and "U  notes.txt" in r.stdout
    assert "key img007, column 'label': base 'cat', ours 'elk', theirs 'yak' (cell)" in r.stdout
    # the clean part is in the mount, read through the kernel
    assert (mp / "images" / "1.jpg").read_bytes() == b"theirs 1\n"
    assert (mp / "images" / "2.jpg").read_bytes() == b"ours 2\n"
    assert not (mp / "images" / "4.jpg").exists()
    assert (mp / "new.txt").read_bytes() == b"new\n" and (mp / "mine.txt").exists()
    merged_csv = _set(_set(_set(LABELS, "img003", "dog"), "img010", "cow"), "img007", "elk")
    merged_csv += "img999,emu\n"
    assert (mp / "labels" / "train.csv").read_text() == merged_csv  # ours in the conflict
    assert (mp / "notes.txt").read_bytes() == b"our notes\n"
    st = _status(cli, mp)
    merging = st["merging"]
    assert isinstance(merging, dict) and merging["theirs"] == theirs and merging["kind"] == "merge"
    by_path = {c["path"]: c for c in merging["conflicts"]}
    assert set(by_path) == {"labels/train.csv", "notes.txt"}
    assert by_path["labels/train.csv"]["cells"] == [
        {"key": "img007", "column": "label", "base": "cat", "ours": "elk", "theirs": "yak",
         "kind": "cell"}
    ]  # fmt: skip
    assert by_path["notes.txt"]["kind"] == "modify/modify"
    # the three sides of a conflicted file
    side = {
        s: cli("conflicts", str(mp / "notes.txt"), "--side", s).stdout
        for s in ("base", "ours", "theirs")
    }
    assert side == {"base": "notes\n", "ours": "our notes\n", "theirs": "theirs notes\n"}
    csv_theirs = cli("conflicts", str(mp / "labels/train.csv"), "--side", "theirs")
    assert csv_theirs.stdout == theirs_csv
    cli("conflicts", str(mp / "labels/train.csv"), "--cells", str(tmp_path / "cells.csv"))
    assert (tmp_path / "cells.csv").read_bytes() == (
        b"\xef\xbb\xbfkey,column,base,ours,theirs,conflict\r\nimg007,label,cat,elk,yak,cell\r\n"
    )
    cli("conflicts", str(mp / "notes.txt"), "--cells", str(tmp_path / "x.csv"), code=2)
    # commit refuses while conflicts remain
    r = cli("commit", str(mp), "-m", "too early", code=27)
    assert "notes.txt" in r.stderr
    assert api.show(cli.home, "ds@main").id == base

    # abort: exactly as before
    cli("merge", "--abort", str(mp))
    assert snapshot(mp) == before
    st = _status(cli, mp)
    assert st["changes"] == status_before and st["merging"] is None

    # again, then resolve: notes by a side, the table by editing the cell
    cli("merge", "ds@b", "--into", str(mp), code=27)
    cli("resolve", str(mp / "notes.txt"), "--theirs")
    assert (mp / "notes.txt").read_bytes() == b"theirs notes\n"
    (mp / "labels" / "train.csv").write_text(merged_csv.replace("img007,elk", "img007,elk-yak"))
    r = cli("resolve", str(mp / "mine.txt"), code=2)
    assert "not a conflicted path" in r.stderr
    cli("resolve", str(mp / "labels" / "train.csv"))
    assert _status(cli, mp)["merging"]["conflicts"] == []  # type: ignore[index]
    cli("commit", str(mp), "-m", "merged b")
    head = api.log(cli.home, "ds@main", limit=1)[0]
    assert head.parents == (base, theirs)
    assert _status(cli, mp)["merging"] is None and _status(cli, mp)["changes"] == []
    cat = cli("cat", "ds@main:labels/train.csv").stdout
    assert cat == merged_csv.replace("img007,elk", "img007,elk-yak")
    assert cli("cat", "ds@main:images/1.jpg").stdout == "theirs 1\n"
    assert cli("cat", "ds@main:mine.txt").stdout == "mine\n"


def test_update_carries_changes_over_a_moved_branch(
    cli: Cli, tmp_path: Path, mounter: Mounter
) -> None:
    _make(cli, tmp_path)
    mp = mounter("ds@main")
    (mp / "images" / "0.jpg").write_bytes(b"ours 0\n")
    (mp / "notes.txt").write_bytes(b"our notes\n")
    old = api.show(cli.home, "ds@main").id
    # the branch moves under the mount (a pull from a peer)
    new = _moved_by_a_peer(cli, tmp_path, {"images/3.jpg": b"moved 3\n",
                                           "notes.txt": b"their notes\n"})  # fmt: skip
    st = _status(cli, mp)
    assert st["behind"] is True and st["head"] == new and st["base"] == old
    assert "behind" in cli("status", str(mp)).stderr
    r = cli("commit", str(mp), "-m", "stale", code=14)
    assert "mlgitfs update" in r.stderr
    r = cli("update", str(mp), code=27)
    assert "U  notes.txt" in r.stdout
    assert (mp / "images" / "3.jpg").read_bytes() == b"moved 3\n"
    assert (mp / "images" / "0.jpg").read_bytes() == b"ours 0\n"
    st = _status(cli, mp)
    assert st["behind"] is False and st["base"] == new
    changed = {c["path"] for c in st["changes"]}  # type: ignore[union-attr]
    assert changed == {"images/0.jpg", "notes.txt"}
    cli("resolve", str(mp / "notes.txt"), "--ours")
    cli("commit", str(mp), "-m", "on top")
    head = api.log(cli.home, "ds@main", limit=1)[0]
    assert head.parents == (new,)
    assert cli("cat", "ds@main:notes.txt").stdout == "our notes\n"
    assert cli("cat", "ds@main:images/3.jpg").stdout == "moved 3\n"
    # a clean update of an unchanged mount, and up to date
    newer = _moved_by_a_peer(cli, tmp_path, {"images/2.jpg": b"again\n"})
    cli("update", str(mp))
    assert (mp / "images" / "2.jpg").read_bytes() == b"again\n"
    st = _status(cli, mp)
    assert st["base"] == newer and st["changes"] == [] and st["merging"] is None
    assert json.loads(cli("update", str(mp), "--json").stdout)["status"] == "up to date"
