"""The checkouts' records and inode tables in LMDB, behind typed accessors (their one home).

A checkout is one writable mount's state of one branch (design §2): the base commit, the
overlay (materialized files under `<home>/overlays/<id>/files/`) and the inode table. What is
kept where (docs/overlay.md has the full picture):

- `checkouts` DB, key `REPO NUL BRANCH`: `[1, id, base commit, inode high-water mark]`;
- `inodes` DB, keys prefixed by the checkout id (8 bytes big-endian) and a letter:
  - `n` + ino: the node record of a materialized inode (kind, mode, mtime, parent, name,
    whether its content is an overlay file, its base tree entry, symlink target, origin path);
  - `d` + parent ino + name: the delta of a directory against its base tree: a child inode
    (override) or b"" (whiteout: the base entry is removed);
  - `b` + parent ino + name: the inode number given to an unchanged base entry (written in
    batches; lost allocations after a crash only mean new numbers for inodes the kernel
    forgot anyway);
  - `p` + path: a path unlocked for changes (flexible mutability) until the next commit
    (`u` + ino, the inode-keyed form of an older version, is only cleared).

Inode numbers come from the high-water mark, reserved in blocks, so no number is ever
handed out twice within a checkout, even across a crash.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from mlgitfs.errors import CorruptObject
from mlgitfs.meta import db, mergestate
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import CHECKOUTS, INODES
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, ObjectId
from mlgitfs.model.objects import EntryKind, TreeEntry


class Kind(enum.IntEnum):
    """An inode's kind, as a view reports it and a node record stores it."""

    FILE = 1
    DIR = 2
    SYMLINK = 3


FORMAT = 1
INO_BLOCK = 4096
_U64 = struct.Struct(">Q")


def checkout_key(repo: str, branch: str) -> bytes:
    return repo.encode() + b"\0" + branch.encode()


def u64(n: int) -> bytes:
    return _U64.pack(n)


@dataclass(slots=True)
class CheckoutRecord:
    id: int
    base: ObjectId
    ino_hwm: int  # every inode number below this may have been handed out

    def encode(self) -> bytes:
        return codec.pack([FORMAT, self.id, bytes(self.base), self.ino_hwm])

    @classmethod
    def decode(cls, data: bytes) -> CheckoutRecord:
        v = codec.unpack(data, "checkout record")
        try:
            fmt, cid, base, hwm = v
            if fmt != FORMAT or not isinstance(base, bytes) or len(base) != ID_LEN:
                raise ValueError("bad checkout record")
            return cls(int(cid), ObjectId(base), int(hwm))
        except (ValueError, TypeError) as exc:
            raise CorruptObject("checkout record", "malformed") from exc


def get_checkout(txn: ReadTxn, repo: str, branch: str) -> CheckoutRecord | None:
    data = txn.get(CHECKOUTS, checkout_key(repo, branch))
    return None if data is None else CheckoutRecord.decode(data)


def put_checkout(txn: WriteTxn, repo: str, branch: str, rec: CheckoutRecord) -> None:
    txn.put(CHECKOUTS, checkout_key(repo, branch), rec.encode())


def list_checkouts(txn: ReadTxn) -> list[tuple[str, str, CheckoutRecord]]:
    out = []
    for key, value in txn.scan(CHECKOUTS):
        repo, _, branch = key.partition(b"\0")
        out.append((repo.decode(), branch.decode(), CheckoutRecord.decode(value)))
    return out


def new_checkout(txn: WriteTxn, repo: str, branch: str, base: ObjectId) -> CheckoutRecord:
    rec = CheckoutRecord(db.next_counter(txn, "checkout"), base, 2)
    put_checkout(txn, repo, branch, rec)
    return rec


# --- node records -----------------------------------------------------------------------------


@dataclass(slots=True)
class NodeRecord:
    """What a materialized inode needs to be rebuilt after a remount or a crash."""

    ino: int
    kind: Kind
    mode: int
    mtime_ns: int
    parent: int
    name: bytes
    overlay: bool  # file content is the overlay file `files/<ino>`
    base: TreeEntry | None  # content (file), tree (dir) in the store; None when new
    target: bytes  # symlink target
    origin: bytes | None  # its path in the base commit, when it came from there
    ctime_ns: int = 0  # 0: as mtime (records of older versions have neither time)
    atime_ns: int = 0

    def encode(self) -> bytes:
        return codec.pack(
            [
                FORMAT,
                int(self.kind),
                self.mode,
                self.mtime_ns,
                self.parent,
                self.name,
                self.overlay,
                None if self.base is None else self.base.to_wire(),
                self.target,
                self.origin,
                self.ctime_ns,
                self.atime_ns,
            ]
        )

    @classmethod
    def decode(cls, ino: int, data: bytes) -> NodeRecord:
        v = codec.unpack(data, f"inode record {ino}")
        try:
            fmt, kind, mode, mtime, parent, name, overlay, base, target, origin = v[:10]
            ctime, atime = v[10:12] if len(v) >= 12 else (0, 0)
            if fmt != FORMAT:
                raise ValueError("format")
            entry = None
            if base is not None:
                bname, bkind, bmode, bsize, bmtime, bref = base
                entry = TreeEntry(bname, EntryKind(bkind), bmode, bsize, bmtime, bref)
            return cls(
                ino, Kind(kind), int(mode), int(mtime), int(parent), bytes(name), bool(overlay),
                entry, bytes(target), None if origin is None else bytes(origin), int(ctime),
                int(atime),
            )  # fmt: skip
        except (ValueError, TypeError) as exc:
            raise CorruptObject(f"inode record {ino}", "malformed") from exc


class InodeTable:
    """Typed access to one checkout's keys in the `inodes` DB (the caller owns the txn)."""

    def __init__(self, checkout_id: int) -> None:
        self.prefix = u64(checkout_id)

    def _k(self, letter: bytes, *parts: bytes) -> bytes:
        return self.prefix + letter + b"".join(parts)

    # node records
    def put_node(self, txn: WriteTxn, rec: NodeRecord) -> None:
        txn.put(INODES, self._k(b"n", u64(rec.ino)), rec.encode())

    def del_node(self, txn: WriteTxn, ino: int) -> None:
        txn.delete(INODES, self._k(b"n", u64(ino)))

    def nodes(self, txn: ReadTxn) -> list[NodeRecord]:
        p = self._k(b"n")
        return [NodeRecord.decode(_U64.unpack(k[len(p) :])[0], v) for k, v in txn.scan(INODES, p)]

    # directory deltas: ino > 0 is an override, 0 a whiteout
    def put_delta(self, txn: WriteTxn, parent: int, name: bytes, ino: int) -> None:
        txn.put(INODES, self._k(b"d", u64(parent), name), u64(ino) if ino else b"")

    def del_delta(self, txn: WriteTxn, parent: int, name: bytes) -> None:
        txn.delete(INODES, self._k(b"d", u64(parent), name))

    def deltas(self, txn: ReadTxn) -> list[tuple[int, bytes, int]]:
        p = self._k(b"d")
        out = []
        for k, v in txn.scan(INODES, p):
            parent = _U64.unpack(k[len(p) : len(p) + 8])[0]
            out.append((parent, k[len(p) + 8 :], _U64.unpack(v)[0] if v else 0))
        return out

    # inode numbers of unchanged base entries
    def put_base_ino(self, txn: WriteTxn, parent: int, name: bytes, ino: int) -> None:
        txn.put(INODES, self._k(b"b", u64(parent), name), u64(ino))

    def del_base_ino(self, txn: WriteTxn, parent: int, name: bytes) -> None:
        txn.delete(INODES, self._k(b"b", u64(parent), name))

    def base_ino(self, txn: ReadTxn, parent: int, name: bytes) -> int | None:
        v = txn.get(INODES, self._k(b"b", u64(parent), name))
        return None if v is None else int(_U64.unpack(v)[0])

    def base_inos(self, txn: ReadTxn, parent: int) -> dict[bytes, int]:
        p = self._k(b"b", u64(parent))
        return {k[len(p) :]: int(_U64.unpack(v)[0]) for k, v in txn.scan(INODES, p)}

    # unlocked paths
    def put_unlocked(self, txn: WriteTxn, path: bytes) -> None:
        txn.put(INODES, self._k(b"p", path), b"")

    def unlocked(self, txn: ReadTxn) -> set[bytes]:
        p = self._k(b"p")
        return {k[len(p) :] for k, _ in txn.scan(INODES, p)}

    def clear(self, txn: WriteTxn, letters: bytes) -> int:
        """Delete every key of the given kinds (letters), e.g. b"dnup" after a commit."""
        n = 0
        for letter in letters:
            p = self._k(bytes([letter]))
            keys = [k for k, _ in txn.scan(INODES, p)]
            for k in keys:
                txn.delete(INODES, k)
            n += len(keys)
        return n


def has_changes(txn: ReadTxn, checkout_id: int) -> bool:
    prefix = u64(checkout_id)
    return any(True for _ in txn.scan(INODES, prefix + b"d")) or any(
        True for _ in txn.scan(INODES, prefix + b"n")
    )


def drop_checkout(txn: WriteTxn, repo: str, branch: str) -> CheckoutRecord | None:
    """Delete a checkout's record and every key of its inode table (a deleted branch's state
    goes with it); the caller removes its overlay directory after the transaction commits."""
    rec = get_checkout(txn, repo, branch)
    if rec is None:
        return None
    InodeTable(rec.id).clear(txn, b"nbdu")
    mergestate.clear(txn, rec.id)
    txn.delete(CHECKOUTS, checkout_key(repo, branch))
    return rec


def dirty_checkouts(txn: ReadTxn, repo: str, branch: str) -> list[CheckoutRecord]:
    """The checkouts of `repo`'s `branch` that hold uncommitted changes (empty when it has
    none, or no checkout). A branch has at most one checkout per store today."""
    rec = get_checkout(txn, repo, branch)
    return [rec] if rec is not None and has_changes(txn, rec.id) else []
