"""Cached verdicts of hooks and checks, keyed by (the definition's digest, the candidate's
tree id): re-running a gate on the same content with the same definition costs a lookup.

The value is JSON: {"ok": bool, "output": str, "code": int}. Nothing else refers to these
records; dropping them only costs re-running the checks.
"""

from __future__ import annotations

import json

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import HOOK_RESULTS
from mlgitfs.model.ids import ObjectId


def _key(digest: str, tree: ObjectId) -> bytes:
    return bytes.fromhex(digest) + bytes(tree)


def get(txn: ReadTxn, digest: str, tree: ObjectId) -> tuple[bool, str, int] | None:
    raw = txn.get(HOOK_RESULTS, _key(digest, tree))
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
        return bool(doc["ok"]), str(doc["output"]), int(doc["code"])
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable record is a miss: the check runs again


def put(txn: WriteTxn, digest: str, tree: ObjectId, ok: bool, output: str, code: int) -> None:
    doc = {"ok": ok, "output": output, "code": code}
    txn.put(HOOK_RESULTS, _key(digest, tree), json.dumps(doc).encode())
