"""Promotions: which required checks a commit passed when it moved a protected branch.

Key: repo NUL commit id (32 bytes) + branch name. Value: JSON {"branch", "via" (promote,
merge), "base" (the head it replaced, hex or null), "checks": [{"name", "kind", "status",
"cached"}], "time" (seconds since the epoch)}. A push of a protected branch is allowed only
for a commit with a record for that branch (docs/governance.md); `mlgitfs checks` lists them.
"""

from __future__ import annotations

import json
from typing import Any

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import PROMOTIONS
from mlgitfs.model.ids import ObjectId


def _prefix(repo: str, commit: ObjectId) -> bytes:
    return repo.encode() + b"\0" + bytes(commit)


def put(txn: WriteTxn, repo: str, commit: ObjectId, branch: str, doc: dict[str, Any]) -> None:
    txn.put(PROMOTIONS, _prefix(repo, commit) + branch.encode(), json.dumps(doc).encode())


def get(txn: ReadTxn, repo: str, commit: ObjectId, branch: str) -> dict[str, Any] | None:
    raw = txn.get(PROMOTIONS, _prefix(repo, commit) + branch.encode())
    return _load(raw) if raw is not None else None


def of_commit(txn: ReadTxn, repo: str, commit: ObjectId) -> list[dict[str, Any]]:
    """Every record of `commit` (one per branch it was promoted to), by branch name."""
    out = []
    for _, raw in txn.scan(PROMOTIONS, _prefix(repo, commit)):
        doc = _load(raw)
        if doc is not None:
            out.append(doc)
    return out


def _load(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
