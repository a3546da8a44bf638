"""The store's trust policy (model/access.py), one record edited by `mlgitfs access`.

Key b"local": the policy this store's `access grant`/`revoke` edit and `access export`
turns into S3 policy documents. A record that does not decode is an error, never an empty
policy: an unreadable policy must not read as "nobody holds a role".
"""

from __future__ import annotations

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import ACCESS
from mlgitfs.model.access import Policy

LOCAL = b"local"


def get(txn: ReadTxn) -> Policy:
    raw = txn.get(ACCESS, LOCAL)
    return Policy() if raw is None else Policy.decode(raw, "the store's access policy")


def put(txn: WriteTxn, policy: Policy) -> None:
    txn.put(ACCESS, LOCAL, policy.encode())
