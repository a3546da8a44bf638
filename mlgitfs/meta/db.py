"""Typed records kept in the store's LMDB: repos, refs and their reflog, objects.

Each function takes an open transaction, so what must change together (objects, ref move,
checkout base) is written by the caller in one transaction. Refs move only by
compare-and-swap: `set_ref` checks the old value inside the same write transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from mlgitfs.errors import AlreadyExists, ConflictError, CorruptObject, UnknownRepo, UsageError
from mlgitfs.meta import commitgraph, reflog
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import CONFIG, GENERATIONS, OBJECTS, REFLOG, REFS, REPOS
from mlgitfs.model import codec
from mlgitfs.model.actor import default_actor
from mlgitfs.model.ids import ObjectId, short_hex


class RepoKind(enum.StrEnum):
    DATASET = "dataset"
    LABELS = "labels"
    MODEL = "model"


class Mutability(enum.StrEnum):
    STRICT = "strict"
    FLEXIBLE = "flexible"
    MUTABLE = "mutable"


@dataclass(frozen=True, slots=True)
class RepoRecord:
    name: str
    kind: RepoKind
    mutability: Mutability
    categories: tuple[str, ...]
    created_ns: int

    def encode(self) -> bytes:
        return codec.pack(
            [1, self.kind.value, self.mutability.value, list(self.categories), self.created_ns]
        )

    @classmethod
    def decode(cls, name: str, data: bytes) -> RepoRecord:
        v = codec.unpack(data, f"repo record {name}")
        try:
            _, kind, mut, cats, created = v
            return cls(name, RepoKind(kind), Mutability(mut), tuple(cats), int(created))
        except (ValueError, TypeError) as exc:
            raise CorruptObject(f"repo record {name}", "malformed") from exc


# --- repos ----------------------------------------------------------------------------------


def create_repo(txn: WriteTxn, rec: RepoRecord) -> None:
    if not txn.put_new(REPOS, rec.name.encode(), rec.encode()):
        raise AlreadyExists(f"repo {rec.name!r} already exists")


def get_repo(txn: ReadTxn, name: str) -> RepoRecord:
    data = txn.get(REPOS, name.encode())
    if data is None:
        raise UnknownRepo(
            f"no repo named {name!r} in the store at {txn.store_home} (see 'mlgitfs repos')"
        )
    return RepoRecord.decode(name, data)


def delete_repo(txn: WriteTxn, name: str) -> None:
    """Forget a repo: its record, refs and reflog (objects stay for gc; checkouts and
    retention rules are the caller's to drop in the same transaction)."""
    prefix = name.encode() + b"\0"
    for table in (REFS, REFLOG):
        for key in [k for k, _ in txn.scan(table, prefix)]:
            txn.delete(table, key)
    txn.delete(REPOS, name.encode())


def list_repos(txn: ReadTxn) -> list[RepoRecord]:
    return [RepoRecord.decode(k.decode(), v) for k, v in txn.scan(REPOS)]


# --- refs -----------------------------------------------------------------------------------


def _ref_key(repo: str, ref: str) -> bytes:
    return repo.encode() + b"\0" + ref.encode()


def get_ref(txn: ReadTxn, repo: str, ref: str) -> ObjectId | None:
    value = txn.get(REFS, _ref_key(repo, ref))
    return None if value is None else ObjectId(value)


def list_refs(txn: ReadTxn, repo: str, prefix: str = "") -> Iterator[tuple[str, ObjectId]]:
    base = repo.encode() + b"\0"
    for key, value in txn.scan(REFS, base + prefix.encode()):
        yield key[len(base) :].decode(), ObjectId(value)


def set_ref(
    txn: WriteTxn,
    repo: str,
    ref: str,
    new: ObjectId | None,
    expected: ObjectId | None,
    reason: str,
    who: str | None = None,
) -> None:
    """Move `ref` from `expected` to `new` (None = absent), or raise ConflictError; the move
    is recorded in the reflog (who: default_actor() unless given)."""
    key = _ref_key(repo, ref)
    current = txn.get(REFS, key)
    if current != (None if expected is None else bytes(expected)):
        now = short_hex(current) if current else "nothing"
        raise ConflictError(f"{repo}@{ref.split('/', 1)[-1]} moved (it is now {now}); try again")
    if new is None:
        txn.delete(REFS, key)
    else:
        txn.put(REFS, key, bytes(new))
    reflog.append(txn, repo, ref, expected, new, who or default_actor(), reason)


def reflog_commits(txn: ReadTxn, repo: str, now_ns: int | None = None) -> set[bytes]:
    """Every commit a live reflog entry of `repo` names (old and new ids; entries older
    than the store's reflog expiry no longer count)."""
    return reflog.live_commits(txn, repo, now_ns)


# --- objects --------------------------------------------------------------------------------


def put_object(txn: WriteTxn, oid: ObjectId, data: bytes) -> bool:
    return txn.put_new(OBJECTS, bytes(oid), data)


def get_object_bytes(txn: ReadTxn, oid: ObjectId) -> bytes | None:
    return txn.get(OBJECTS, bytes(oid))


def has_object(txn: ReadTxn, oid: bytes) -> bool:
    return txn.has(OBJECTS, bytes(oid))


def objects_with_prefix(txn: ReadTxn, prefix: bytes) -> Iterator[tuple[ObjectId, bytes]]:
    """(id, canonical bytes) of every object whose id starts with `prefix`, in id order."""
    for key, value in txn.scan(OBJECTS, prefix):
        yield ObjectId(key), value


def all_objects(txn: ReadTxn) -> Iterator[tuple[bytes, int]]:
    """(id, stored size) of every object, in id order (gc's sweep)."""
    for key, value in txn.scan(OBJECTS):
        yield key, len(value)


def delete_object(txn: WriteTxn, oid: bytes) -> bool:
    """Only gc deletes objects (unreachable ones), with their generation numbers and
    commit-graph records (derived data of a commit gone: nothing may read it again)."""
    txn.delete(GENERATIONS, oid)
    commitgraph.delete_record(txn, oid)
    return txn.delete(OBJECTS, oid)


def has_repo(txn: ReadTxn, name: str) -> bool:
    return txn.has(REPOS, name.encode())


# --- commit generations -----------------------------------------------------------------
# A commit's generation is 1 + the largest generation of its parents (1 for a root). It is
# derived data, kept beside the commit object (never inside it: the object format is
# unchanged), written with the commit or computed on first need for fetched commits.


def get_generation(txn: ReadTxn, oid: ObjectId) -> int | None:
    value = txn.get(GENERATIONS, bytes(oid))
    return None if value is None else int.from_bytes(value, "big")


def put_generation(txn: WriteTxn, oid: ObjectId, generation: int) -> None:
    txn.put(GENERATIONS, bytes(oid), generation.to_bytes(8, "big"))


# --- config ---------------------------------------------------------------------------------


def get_config(txn: ReadTxn, key: str) -> object | None:
    data = txn.get(CONFIG, key.encode())
    return None if data is None else codec.unpack(data, f"config {key}")


def set_config(txn: WriteTxn, key: str, value: object) -> None:
    txn.put(CONFIG, key.encode(), codec.pack(value))


def get_choice(txn: ReadTxn, key: str, choices: tuple[str, ...]) -> str:
    """A setting that is one word of `choices`; the first is its default (unset or unknown)."""
    value = get_config(txn, key)
    return value if isinstance(value, str) and value in choices else choices[0]


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UsageError(f"{key} is one of {', '.join(choices)}, not {value!r}")
    return value


def next_counter(txn: WriteTxn, name: str, count: int = 1) -> int:
    """The next number of counter `name`; with `count`, the first of that many in a row."""
    value = get_config(txn, "counter." + name)
    first = (value if isinstance(value, int) else 0) + 1
    set_config(txn, "counter." + name, first + count - 1)
    return first
