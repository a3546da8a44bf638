"""Signed statements attached to commits (model/statement.py), and what each remote holds.

- "statements": subject commit id (32) + statement id (32) -> the statement's encoding.
  Every kind (commit, ref, attestation) lives here; a commit's statements are one scan.
- "statement_log": sequence number (8 bytes, big-endian) -> subject + statement id, one
  record per statement the store learned, in order: a push sends what arrived since its
  remote's cursor (config ``statements.sent.REMOTE``), so it never rescans every statement.
- "statement_remotes": remote name NUL statement id -> b"": the remote holds it (pushed
  there, or read from one of its statement packs). Forgotten with the remote
  (`forget_remote`, called by meta/remotes.remove_remote), cursor included.

Statements are write-once (content-addressed); deleting a commit's statements goes with the
commit (`delete_subject`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from mlgitfs.meta import db
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import STATEMENT_LOG, STATEMENT_REMOTES, STATEMENTS
from mlgitfs.model import statement
from mlgitfs.model.ids import ID_LEN, ObjectId, hash_bytes, short_hex
from mlgitfs.model.statement import Statement

_SEQ = struct.Struct(">Q")


def put(txn: WriteTxn, st: Statement) -> bool:
    """Attach `st` to its subject; False when the store had it already."""
    return attach(txn, st.subject, st.encode())


def attach(txn: WriteTxn, subject: ObjectId, data: bytes) -> bool:
    """Attach an encoded statement to `subject` as it is (`put` attaches one to its own
    subject; the verifier catches one attached elsewhere)."""
    sid = hash_bytes(data)
    if not txn.put_new(STATEMENTS, bytes(subject) + sid, data):
        return False
    seq = db.next_counter(txn, "statements")
    txn.put(STATEMENT_LOG, _SEQ.pack(seq), bytes(subject) + sid)
    return True


def put_many(txn: WriteTxn, sts: Iterable[Statement]) -> int:
    return sum(1 for st in sts if put(txn, st))


def attach_many(txn: WriteTxn, items: Iterable[tuple[ObjectId, bytes, bytes]]) -> int:
    """Attach each (subject, statement id, encoding), the id already hashed by the caller
    (a fetch attaches thousands at once: one counter update for them all); how many were
    new. Their log records follow the order given, as `attach` one by one would write."""
    new = [(subject, sid) for subject, sid, data in items
           if txn.put_new(STATEMENTS, bytes(subject) + sid, data)]  # fmt: skip
    if not new:
        return 0
    first = db.next_counter(txn, "statements", len(new))
    for seq, (subject, sid) in enumerate(new, first):
        txn.put(STATEMENT_LOG, _SEQ.pack(seq), bytes(subject) + sid)
    return len(new)


def of_subject(txn: ReadTxn, subject: ObjectId) -> list[Statement]:
    """Every statement attached to `subject`, decoded (CorruptObject for a damaged one)."""
    out = []
    for key, data in txn.scan(STATEMENTS, bytes(subject)):
        out.append(statement.decode(data, f"statement {short_hex(key[ID_LEN:])}"))
    return out


def every(txn: ReadTxn) -> Iterator[tuple[ObjectId, bytes]]:
    """(commit it is attached to, encoding) of every statement of the store."""
    for key, data in txn.scan(STATEMENTS):
        yield ObjectId(key[:ID_LEN]), data


def count(txn: ReadTxn) -> int:
    return txn.count(STATEMENTS)


def delete_subject(txn: WriteTxn, subject: ObjectId) -> int:
    """Drop every statement of `subject` (the commit is gone); their log records stay and
    are skipped by `since`."""
    keys = [k for k, _ in txn.scan(STATEMENTS, bytes(subject))]
    for k in keys:
        txn.delete(STATEMENTS, k)
    return len(keys)


def detach(txn: WriteTxn, subject: ObjectId, sid: bytes) -> bool:
    """Drop one statement from `subject` (one found attached to the wrong commit)."""
    return txn.delete(STATEMENTS, bytes(subject) + sid)


def since(txn: ReadTxn, seq: int) -> Iterator[tuple[int, ObjectId, bytes, bytes]]:
    """(sequence, subject, statement id, encoding) of each statement learned after `seq`."""
    for key, value in txn.scan_from(STATEMENT_LOG, _SEQ.pack(seq + 1)):
        n = _SEQ.unpack(key)[0]
        data = txn.get(STATEMENTS, value)
        if data is not None:
            yield n, ObjectId(value[:ID_LEN]), value[ID_LEN:], data


def cursor(txn: ReadTxn, remote: str) -> int:
    value = db.get_config(txn, "statements.sent." + remote)
    return value if isinstance(value, int) else 0


def set_cursor(txn: WriteTxn, remote: str, seq: int) -> None:
    db.set_config(txn, "statements.sent." + remote, seq)


def _remote_key(remote: str, sid: bytes) -> bytes:
    return remote.encode() + b"\0" + sid


def on_remote(txn: ReadTxn, remote: str, sid: bytes) -> bool:
    return txn.has(STATEMENT_REMOTES, _remote_key(remote, sid))


def mark_on_remote(txn: WriteTxn, remote: str, sids: Iterable[bytes]) -> None:
    for sid in sids:
        txn.put(STATEMENT_REMOTES, _remote_key(remote, sid), b"")


def forget_remote(txn: WriteTxn, remote: str) -> None:
    """The remote is gone from the store: what it held and its cursor are forgotten (a new
    remote of the same name gets every statement its commits need)."""
    for key, _ in list(txn.scan(STATEMENT_REMOTES, remote.encode() + b"\0")):
        txn.delete(STATEMENT_REMOTES, key)
    db.set_config(txn, "statements.sent." + remote, 0)
