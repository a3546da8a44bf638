"""The retention rules of each repo and the expiry records of commits whose contents went.

Rules are one value per repo (all its patterns), so a `retention set` replaces them in one
put; they travel with the repo on push and fetch (repo/sync.py). An expiry record is
written by gc when it drops an expired commit's contents, so a later read can say which
rule let them go even after the rules changed.
"""

from __future__ import annotations

from collections.abc import Iterator

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import EXPIRED, RETENTION
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.retention import ExpiryRecord, Rule, decode_rules, encode_rules


def get_rules(txn: ReadTxn, repo: str) -> tuple[Rule, ...]:
    data = txn.get(RETENTION, repo.encode())
    return () if data is None else decode_rules(data, f"retention of {repo}")


def set_rules(txn: WriteTxn, repo: str, rules: tuple[Rule, ...]) -> None:
    if rules:
        txn.put(RETENTION, repo.encode(), encode_rules(tuple(sorted(rules, key=_order))))
    else:
        txn.delete(RETENTION, repo.encode())


def _order(rule: Rule) -> str:
    return rule.pattern


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
