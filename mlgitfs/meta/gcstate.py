"""The gc epoch: a counter in `config` that each gc's sweep transaction raises.

A writer reads it before its first "does the store have this?" lookup and its commit
transaction reads it again: when it moved, a sweep ran in between and may have removed
something the writer chose to reuse rather than write, so the commit checks that what it
names is present (repo/commits.py; the ordering rules are in docs/design.md, gc).
"""

from __future__ import annotations

from mlgitfs.meta import db
from mlgitfs.meta.env import ReadTxn, WriteTxn

_EPOCH = "gc.epoch"


def epoch(txn: ReadTxn) -> int:
    value = db.get_config(txn, _EPOCH)
    return value if isinstance(value, int) else 0


def bump_epoch(txn: WriteTxn) -> int:
    """In the sweep's transaction: the new epoch."""
    n = epoch(txn) + 1
    db.set_config(txn, _EPOCH, n)
    return n
