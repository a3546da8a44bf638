"""The blame bench (bench/blamesynth.py, bench/cases/blaming.py) at CI size: its history is
built through the library, and blame's answers, of one row and of every row, are those the
history was made with. Speed is measured in bench/, not here."""

from __future__ import annotations

import json
from pathlib import Path

from bench import blamesynth
from mlgitfs import api
from mlgitfs.meta import chunkquotes
from mlgitfs.repo.blamerows import blame_rows
from mlgitfs.repo.fsck import fsck
from mlgitfs.repo.refs import resolve


def test_the_blame_bench_history_and_its_answers(tmp_path: Path) -> None:
    home = tmp_path / "store"
    info = blamesynth.build(home, 12_000, 30)
    assert info["commits"] == 30 and info["chunks"] > 1  # content-defined chunks, not one
    truth = json.loads((home / "truth.json").read_text())
    assert len(truth["set"]) > 10
    for row in (str(info["never"]), str(info["last"]), None):
        got = blamesynth.blame(home, row)
        assert got["wrong"] == 0 and got["rows"] == (1 if row else 12_000)
    store = api.open_store(home)
    try:
        head = resolve(store, f"{blamesynth.REPO}@main").commit_id
        path = (blamesynth.PATH.encode(),)
        every = blame_rows(store, head, path, ["image_id"])
        assert every.by_chunks == 29  # each version compared from its chunk lists
        want = truth["set"]
        assert {str(r.key[0]): bytes(r.commit).hex() for r in every.rows} == {
            f"{i:07d}": want.get(f"{i:07d}", truth["root"]) for i in range(12_000)
        }
        # one row never relabelled: matched chunks answer most commits, few chunks are read
        one = blame_rows(store, head, path, ["image_id"], only=[[str(info["never"])]])
        assert one.chunks_read <= every.chunks_read
        assert one.by_runs > 0  # versions passed over from their encoded manifests alone
        with store.env.read() as txn:  # recorded as the history's chunks were stored
            assert len(chunkquotes.recorded(txn)) >= info["chunks"]
        assert fsck(store).clean
    finally:
        api.close_store(home)
    ref = blamesynth.reference(home, 3)
    assert (ref["versions"], ref["of"]) == (3, 29)
