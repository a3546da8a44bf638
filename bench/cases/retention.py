"""Retention: what deciding which versions expire costs (repo/expiry.py, run by each gc and
each `retention show`), against the history's length.

``retention_expiry``: a repo whose main branch has N commits (made through the library with
an empty tree each, so the history alone is measured: default 20,000, 2,000 with --quick),
rules `--keep-last 10 --keep-daily 7 --keep-monthly 12`, the reflog's window closed. Time of
`expiry(txn, now)` over the whole store, against the same on a tenth of the commits:
informational; the ratio near 10 says the cost follows the history linearly.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.context import Context
from bench.registry import Row, case
from mlgitfs import api
from mlgitfs.meta import reflog, retention
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.retention import Policy, Rule
from mlgitfs.repo.commits import CommitRequest, write_commit
from mlgitfs.repo.expiry import expiry
from mlgitfs.repo.trees import NewObjects, build_dir


def _history(home: Path, n: int) -> None:
    api.init(home, "r", "dataset", "mutable")
    store = api.open_store(home)
    objs: NewObjects = []
    tree = build_dir([], objs)
    head: ObjectId | None = None
    writer = store.chunks.writer()
    for i in range(n):
        req = CommitRequest("r", "main", f"c{i}", {}, [])
        head, _ = write_commit(store, req, tree, (head,) if head else (), head, writer,
                               objs if i == 0 else [])  # fmt: skip
    writer.reset()
    with store.env.write() as txn:
        retention.set_rules(txn, "r", (Rule("*", Policy(last=10, daily=7, monthly=12)),))
        reflog.set_expiry_s(txn, 0)


def _seconds(home: Path) -> tuple[float, int]:
    store = api.open_store(home)
    t0 = time.perf_counter()
    with store.env.read() as txn:
        found = expiry(txn, time.time_ns() + 10**9)
    return time.perf_counter() - t0, len(found)


@case("retention_expiry", "lifecycle")
def retention_expiry(ctx: Context) -> list[Row]:
    """Time to decide which versions expire, N commits against N/10."""
    n = 2_000 if ctx.quick else 20_000
    big, small = ctx.fresh_dir("retention", "big"), ctx.fresh_dir("retention", "small")
    _history(big, n)
    _history(small, n // 10)
    t_big, gone = _seconds(big)
    t_small, _ = _seconds(small)
    api.close_store(big)
    api.close_store(small)
    return [
        Row("retention_expiry", f"expiry over {n:,} commits", t_big, t_small,
            t_big / t_small if t_small else None, None, "max", "s", f"{n // 10:,} commits",
            f"{gone:,} expire; {t_big / n * 1e6:.1f} us per commit"),
    ]  # fmt: skip
