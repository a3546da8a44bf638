"""What the store knows about its remotes, kept in LMDB: their records and their packs' contents.

- "remotes": name → url, endpoint, whether it enforces conditional writes, repo name map.
- "remote_packs": remote NUL kind NUL pack id → number of entries, for every index already
  read, so a second push or fetch reads only indexes it has not seen.
- "remote_locs": kind letter + id + remote name → the pack range holding that chunk or
  object. The id comes first so a reader finds every remote holding an id with one scan.
  Letter "s": a tree or manifest id → its chunk locator section (store/packs.py), from the
  meta packs' `.lidx`, so the chunks of one directory are located with one ranged GET.

These are caches of the remote's own indexes: losing them costs a re-read, never data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mlgitfs.errors import AlreadyExists, CorruptObject, UnknownRemote
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import REMOTE_LOCS, REMOTE_PACKS, REMOTES
from mlgitfs.model import codec
from mlgitfs.store.packs import CHUNKS, META, PackIndex, PackLocation, Section

_KIND_LETTER = {CHUNKS: b"c", META: b"m"}
_SECTION = b"s"
LOCATORS = "loc"  # "remote_packs" kind of a meta pack whose .lidx was read (or is absent)


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    name: str
    url: str
    endpoint_url: str | None
    conditional_writes: bool
    repos: tuple[tuple[str, str], ...] = ()  # (local repo, repo name on the remote), sorted

    def remote_repo(self, local: str) -> str:
        return dict(self.repos).get(local, local)

    def encode(self) -> bytes:
        return codec.pack(
            [
                1,
                self.url,
                self.endpoint_url or "",
                self.conditional_writes,
                [[a, b] for a, b in self.repos],
            ]
        )

    @classmethod
    def decode(cls, name: str, data: bytes) -> RemoteRecord:
        v = codec.unpack(data, f"remote record {name}")
        try:
            _, url, endpoint, cond, repos = v
            return cls(
                name, str(url), str(endpoint) or None, bool(cond), tuple((a, b) for a, b in repos)
            )
        except (ValueError, TypeError) as exc:
            raise CorruptObject(f"remote record {name}", "malformed") from exc


def get_remote(txn: ReadTxn, name: str) -> RemoteRecord:
    data = txn.get(REMOTES, name.encode())
    if data is None:
        raise UnknownRemote(f"no remote named {name!r} (see 'mlgitfs remote list')")
    return RemoteRecord.decode(name, data)


def list_remotes(txn: ReadTxn) -> list[RemoteRecord]:
    return [RemoteRecord.decode(k.decode(), v) for k, v in txn.scan(REMOTES)]


def add_remote(txn: WriteTxn, rec: RemoteRecord) -> None:
    if not txn.put_new(REMOTES, rec.name.encode(), rec.encode()):
        raise AlreadyExists(f"remote {rec.name!r} already exists")


def put_remote(txn: WriteTxn, rec: RemoteRecord) -> None:
    txn.put(REMOTES, rec.name.encode(), rec.encode())


def remove_remote(txn: WriteTxn, name: str) -> None:
    """Forget the remote and everything cached about it (the remote itself is untouched)."""
    get_remote(txn, name)
    txn.delete(REMOTES, name.encode())
    prefix = name.encode() + b"\0"
    for key, _ in list(txn.scan(REMOTE_PACKS, prefix)):
        txn.delete(REMOTE_PACKS, key)
    suffix = name.encode()
    for key, _ in list(txn.scan(REMOTE_LOCS)):
        if key[33:] == suffix:
            txn.delete(REMOTE_LOCS, key)


# --- pack indexes -----------------------------------------------------------------------------


def _pack_key(remote: str, kind: str, pack: bytes) -> bytes:
    return remote.encode() + b"\0" + kind.encode() + b"\0" + pack


def known_packs(txn: ReadTxn, remote: str, kind: str) -> set[bytes]:
    prefix = remote.encode() + b"\0" + kind.encode() + b"\0"
    return {key[len(prefix) :] for key, _ in txn.scan(REMOTE_PACKS, prefix)}


def record_index(txn: WriteTxn, remote: str, index: PackIndex) -> None:
    """Remember every entry of a verified index (idempotent)."""
    letter = _KIND_LETTER[index.kind]
    name = remote.encode()
    for e in index.entries:
        txn.put(REMOTE_LOCS, letter + e.id + name, index.location(e).pack_bytes())
    txn.put(REMOTE_PACKS, _pack_key(remote, index.kind, index.pack), b"%d" % len(index.entries))


def locate(txn: ReadTxn, kind: str, oid: bytes) -> list[tuple[str, PackLocation]]:
    """(remote name, location) of every known copy of a chunk or object."""
    prefix = _KIND_LETTER[kind] + oid
    return [
        (key[len(prefix) :].decode(), PackLocation.unpack(kind, value))
        for key, value in txn.scan(REMOTE_LOCS, prefix)
    ]


def forget_location(txn: WriteTxn, remote: str, kind: str, oid: bytes, pack: bytes) -> None:
    """Drop what a failed read came from: the id's location on that remote, and the record
    that the pack's index was read, so the next refresh reads it again (a repaired remote
    then works at once; an index is believed only while what it says checks out)."""
    txn.delete(REMOTE_LOCS, _KIND_LETTER[kind] + oid + remote.encode())
    txn.delete(REMOTE_PACKS, _pack_key(remote, kind, pack))


def remote_has(txn: ReadTxn, remote: str, kind: str, oid: bytes) -> bool:
    return txn.has(REMOTE_LOCS, _KIND_LETTER[kind] + oid + remote.encode())


def record_locator_index(
    txn: WriteTxn, remote: str, pack: bytes, sections: dict[bytes, Section]
) -> None:
    name = remote.encode()
    for oid, sec in sections.items():
        txn.put(REMOTE_LOCS, _SECTION + oid + name, sec.pack_bytes())
    txn.put(REMOTE_PACKS, _pack_key(remote, LOCATORS, pack), b"%d" % len(sections))


def sections(txn: ReadTxn, oid: bytes) -> list[tuple[str, Section]]:
    """(remote name, locator section) of a tree or manifest, on every remote that has one."""
    prefix = _SECTION + oid
    return [
        (key[len(prefix) :].decode(), Section.unpack(value))
        for key, value in txn.scan(REMOTE_LOCS, prefix)
    ]


def record_chunk_locations(
    txn: WriteTxn, remote: str, items: Iterable[tuple[bytes, PackLocation]]
) -> None:
    name = remote.encode()
    for cid, loc in items:
        txn.put(REMOTE_LOCS, _KIND_LETTER[CHUNKS] + cid + name, loc.pack_bytes())


def on_any_remote(txn: ReadTxn, kind: str, oid: bytes) -> bool:
    for _ in txn.scan(REMOTE_LOCS, _KIND_LETTER[kind] + oid):
        return True
    return False


def all_remote_names(txn: ReadTxn) -> Iterable[str]:
    return [k.decode() for k, _ in txn.scan(REMOTES)]


def has_remote(txn: ReadTxn, name: str) -> bool:
    return txn.has(REMOTES, name.encode())


def find_remote(txn: ReadTxn, name: str) -> RemoteRecord | None:
    """The remote's record, or None when there is none of that name."""
    data = txn.get(REMOTES, name.encode())
    return None if data is None else RemoteRecord.decode(name, data)
