"""The retention rules of each repo and the expiry records of commits whose contents went.

Rules are one value per repo (all its patterns), so a `retention set` replaces them in one
put; they travel with the repo on push and fetch (repo/push.py, repo/sync.py). An expiry record is
written by gc when it drops an expired commit's contents, so a later read can say which
rule let them go even after the rules changed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import EXPIRED, RETENTION
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.retention import ExpiryRecord, Rule, RuleSet


def get_ruleset(txn: ReadTxn, repo: str) -> RuleSet | None:
    data = txn.get(RETENTION, repo.encode())
    return None if data is None else RuleSet.decode(data, f"retention of {repo}")


def get_rules(txn: ReadTxn, repo: str) -> tuple[Rule, ...]:
    found = get_ruleset(txn, repo)
    return () if found is None else found.rules


def put_ruleset(txn: WriteTxn, repo: str, ruleset: RuleSet) -> None:
    txn.put(RETENTION, repo.encode(), ruleset.encode())


def set_rules(
    txn: WriteTxn, repo: str, rules: tuple[Rule, ...], who: str = "", now_ns: int | None = None
) -> RuleSet:
    """Replace the repo's rules (sorted by pattern), stamped now."""
    stamp = time.time_ns() if now_ns is None else now_ns
    ruleset = RuleSet(tuple(sorted(rules, key=lambda r: r.pattern)), stamp, who)
    put_ruleset(txn, repo, ruleset)
    return ruleset


def record_expired(txn: WriteTxn, oid: ObjectId, record: ExpiryRecord) -> None:
    txn.put(EXPIRED, bytes(oid), record.encode())


def get_expired(txn: ReadTxn, oid: ObjectId) -> ExpiryRecord | None:
    data = txn.get(EXPIRED, bytes(oid))
    return None if data is None else ExpiryRecord.decode(data, "expiry record")


def list_expired(txn: ReadTxn) -> Iterator[tuple[ObjectId, ExpiryRecord]]:
    for key, value in txn.scan(EXPIRED):
        yield ObjectId(key), ExpiryRecord.decode(value, "expiry record")


def drop_repo(txn: WriteTxn, repo: str) -> None:
    txn.delete(RETENTION, repo.encode())
