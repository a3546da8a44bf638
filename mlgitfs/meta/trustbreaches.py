"""Breaches of a remote's trust policy that a fetch let through under `trust = warn`, per
commit: what `mount` judges a version by without verifying its history again
(repo/mounttrust.py; docs/governance.md, "Trusted history").

Key: repo NUL commit id. Value: JSON {"generation": the commit's generation (a walk looking
for breaches stops below the lowest), "history": [problems], "version": [problems]}:

- history: the commit itself breaks the policy (on a protected branch: unsigned, signed by a
  key of no identity, or by one who may not write). Every version that contains it carries
  these.
- version: a ref was moved to this commit by a key without the role (or without a
  statement). Only this version carries these: a later move by a key that holds the role
  puts the branch right, as a fresh clone would judge it.

Only breaches are kept (a clean fetch writes nothing). A record of a commit gc removed is
never reached by a walk; dropping records only makes `mount` trust what fetch warned about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import TRUST_BREACHES
from mlgitfs.model.ids import ObjectId


@dataclass(frozen=True, slots=True)
class Breach:
    commit: ObjectId
    generation: int
    history: tuple[str, ...] = ()  # carried by every version containing the commit
    version: tuple[str, ...] = ()  # carried by this version only


def _key(repo: str, commit: bytes) -> bytes:
    return repo.encode() + b"\0" + commit


def _decode(commit: bytes, raw: bytes) -> Breach:
    try:
        doc = json.loads(raw)
        return Breach(ObjectId(commit), int(doc["generation"]),
                      tuple(map(str, doc["history"])), tuple(map(str, doc["version"])))  # fmt: skip
    except (ValueError, KeyError, TypeError):  # unreadable: a breach of unknown reach
        return Breach(ObjectId(commit), 0, ("a breach recorded unreadably",))


def add(txn: WriteTxn, repo: str, b: Breach) -> None:
    """Record `b`, merged with what is recorded for its commit."""
    key = _key(repo, bytes(b.commit))
    raw = txn.get(TRUST_BREACHES, key)
    old = _decode(bytes(b.commit), raw) if raw is not None else Breach(b.commit, b.generation)
    doc = {
        "generation": b.generation,
        "history": [*old.history, *(p for p in b.history if p not in old.history)],
        "version": [*old.version, *(p for p in b.version if p not in old.version)],
    }
    txn.put(TRUST_BREACHES, key, json.dumps(doc).encode())


def of_repo(txn: ReadTxn, repo: str) -> dict[bytes, Breach]:
    """Every breach recorded for `repo`, by commit id."""
    prefix = repo.encode() + b"\0"
    return {k[len(prefix) :]: _decode(k[len(prefix) :], v)
            for k, v in txn.scan(TRUST_BREACHES, prefix)}  # fmt: skip


def drop_repo(txn: WriteTxn, repo: str) -> None:
    """Forget `repo`'s breaches (the repo is removed)."""
    prefix = repo.encode() + b"\0"
    for key in [k for k, _ in txn.scan(TRUST_BREACHES, prefix)]:
        txn.delete(TRUST_BREACHES, key)
