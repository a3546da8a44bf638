"""The store's trust policies (model/access.py): the one `mlgitfs access` edits, and per
remote the version last verified there and an optional pinned admin key.

| key | value |
|---|---|
| b"local" | the policy `access grant`/`revoke` edit and `access export`/`publish` use |
| b"remote" NUL remote name | the remote's signed policy version trusted here (repo/trust.py) |
| b"pin" NUL remote name | a key id (32 bytes) some version must be signed by (`clone --trust`) |

A record that does not decode is an error, never an empty policy: an unreadable policy must
not read as "nobody holds a role".
"""

from __future__ import annotations

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import ACCESS
from mlgitfs.model.access import Policy, SignedPolicy

LOCAL = b"local"


def _remote(name: str) -> bytes:
    return b"remote\0" + name.encode()


def _pin(name: str) -> bytes:
    return b"pin\0" + name.encode()


def get(txn: ReadTxn) -> Policy:
    raw = txn.get(ACCESS, LOCAL)
    return Policy() if raw is None else Policy.decode(raw, "the store's access policy")


def put(txn: WriteTxn, policy: Policy) -> None:
    txn.put(ACCESS, LOCAL, policy.encode())


def trusted(txn: ReadTxn, remote: str) -> SignedPolicy | None:
    raw = txn.get(ACCESS, _remote(remote))
    return None if raw is None else SignedPolicy.decode(raw, f"the trusted policy of {remote}")


def set_trusted(txn: WriteTxn, remote: str, signed: SignedPolicy) -> None:
    txn.put(ACCESS, _remote(remote), signed.encode())


def pin(txn: ReadTxn, remote: str) -> bytes | None:
    return txn.get(ACCESS, _pin(remote))


def set_pin(txn: WriteTxn, remote: str, key_id: bytes) -> None:
    txn.put(ACCESS, _pin(remote), key_id)


def forget(txn: WriteTxn, remote: str) -> None:
    txn.delete(ACCESS, _remote(remote))
    txn.delete(ACCESS, _pin(remote))
