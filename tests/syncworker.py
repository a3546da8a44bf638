"""Subprocess bodies for tests/test_sync.py: concurrent pushers (run with `python -m`)."""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from mlgitfs import api
from mlgitfs.errors import NotFastForward
from mlgitfs.meta import db
from mlgitfs.repo import remotes


def reset_to_remote(home: Path, repo: str, branch: str = "main") -> None:
    """Point the local branch at the fetched remote head (what a merge-less pull-and-retry does)."""
    store = api.open_store(home)
    rec = remotes.choose(store, None)
    with store.env.write() as txn:
        theirs = db.get_ref(txn, repo, remotes.tracking_ref(rec.name, "heads/" + branch))
        ours = db.get_ref(txn, repo, "heads/" + branch)
        if theirs is not None and theirs != ours:
            db.set_ref(txn, repo, "heads/" + branch, theirs, ours, "test: reset to remote")


def pusher(home: Path, repo: str, wid: int, rounds: int, work: Path, out: Path) -> None:
    wins: list[str] = []
    losses = 0
    src = work / f"src{wid}"
    src.mkdir(parents=True, exist_ok=True)
    for r in range(rounds):
        (src / f"w{wid}-r{r}").write_bytes(f"worker {wid} round {r}\n".encode())
        lost_in_row = 0
        while True:  # back off a little after each loss, as a real client would
            api.fetch(home, repo)
            reset_to_remote(home, repo)
            res = api.import_dir(home, repo, src, f"w{wid} r{r}")
            try:
                api.push(home, repo)
            except NotFastForward:
                losses += 1
                time.sleep(random.uniform(0, 0.05 * min(lost_in_row := lost_in_row + 1, 8)))
                continue
            wins.append(res.commit.id)
            break
    out.write_text(json.dumps({"wins": wins, "losses": losses}))


if __name__ == "__main__":
    home, repo, wid, rounds, work, out = sys.argv[1:7]
    pusher(Path(home), repo, int(wid), int(rounds), Path(work), Path(out))
