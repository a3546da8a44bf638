"""What the store knows about its remotes: their records, and which packs hold what.

- "remotes": name → url, endpoint, whether it enforces conditional writes, repo name map.
- "remote_packs": remote NUL kind NUL pack id → number of entries, for every index already
  read, so a second push or fetch reads only indexes it has not seen.
- "remote_locs": a letter (`CHUNK`, `OBJECT`, `SECTION`, `COMMIT`) + id + remote name → a
  location on that remote (for `COMMIT`: what its commit lists say the commit names). The
  id comes first so a reader finds every remote holding an id with one scan.

A location's bytes are store/packs.py's own format (store/remotedb.py gives them their
types); this module only keeps them. These are caches of the remote's own indexes: losing
them costs a re-read, never data.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgitfs.errors import AlreadyExists, CorruptObject, UnknownRemote
from mlgitfs.meta import statements
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import REMOTE_LOCS, REMOTE_PACKS, REMOTES
from mlgitfs.model import codec

CHUNK = b"c"  # a chunk id → its range in a chunk pack
OBJECT = b"m"  # an object id → its range in a meta pack
SECTION = b"s"  # a tree or manifest id → its chunk locator section (a meta pack's .lidx)
COMMIT = b"g"  # a commit id → its tree, parents and inputs (a meta pack's .cidx)
_ID_LEN = 32  # every id in "remote_locs" is a 32-byte hash


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    name: str
    url: str
    endpoint_url: str | None
    conditional_writes: bool | None  # None: not proven (these credentials could not write)
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
                name,
                str(url),
                str(endpoint) or None,
                None if cond is None else bool(cond),
                tuple((a, b) for a, b in repos),
            )
        except (ValueError, TypeError) as exc:
            raise CorruptObject(f"remote record {name}", "malformed") from exc


# --- records ----------------------------------------------------------------------------------


def get_remote(txn: ReadTxn, name: str) -> RemoteRecord:
    data = txn.get(REMOTES, name.encode())
    if data is None:
        raise UnknownRemote(f"no remote named {name!r} (see 'mlgitfs remote list')")
    return RemoteRecord.decode(name, data)


def find_remote(txn: ReadTxn, name: str) -> RemoteRecord | None:
    """The remote's record, or None when there is none of that name."""
    data = txn.get(REMOTES, name.encode())
    return None if data is None else RemoteRecord.decode(name, data)


def has_remote(txn: ReadTxn, name: str) -> bool:
    return txn.has(REMOTES, name.encode())


def list_remotes(txn: ReadTxn) -> list[RemoteRecord]:
    return [RemoteRecord.decode(k.decode(), v) for k, v in txn.scan(REMOTES)]


def all_remote_names(txn: ReadTxn) -> list[str]:
    return [k.decode() for k, _ in txn.scan(REMOTES)]


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
        if key[1 + _ID_LEN :] == suffix:
            txn.delete(REMOTE_LOCS, key)
    statements.forget_remote(txn, name)


# --- packs whose index was read ---------------------------------------------------------------


def _pack_key(remote: str, kind: str, pack: bytes) -> bytes:
    return remote.encode() + b"\0" + kind.encode() + b"\0" + pack


def known_packs(txn: ReadTxn, remote: str, kind: str) -> set[bytes]:
    prefix = remote.encode() + b"\0" + kind.encode() + b"\0"
    return {key[len(prefix) :] for key, _ in txn.scan(REMOTE_PACKS, prefix)}


def put_pack(txn: WriteTxn, remote: str, kind: str, pack: bytes, entries: int) -> None:
    txn.put(REMOTE_PACKS, _pack_key(remote, kind, pack), b"%d" % entries)


def forget_pack(txn: WriteTxn, remote: str, kind: str, pack: bytes) -> None:
    txn.delete(REMOTE_PACKS, _pack_key(remote, kind, pack))


# --- locations --------------------------------------------------------------------------------


def put_location(txn: WriteTxn, letter: bytes, oid: bytes, remote: str, value: bytes) -> None:
    txn.put(REMOTE_LOCS, letter + oid + remote.encode(), value)


def locations(txn: ReadTxn, letter: bytes, oid: bytes) -> list[tuple[str, bytes]]:
    """(remote name, location bytes) on every remote known to hold the id."""
    prefix = letter + oid
    return [(key[len(prefix) :].decode(), value) for key, value in txn.scan(REMOTE_LOCS, prefix)]


def has_location(txn: ReadTxn, letter: bytes, oid: bytes, remote: str) -> bool:
    return txn.has(REMOTE_LOCS, letter + oid + remote.encode())


def on_any_remote(txn: ReadTxn, letter: bytes, oid: bytes) -> bool:
    for _ in txn.scan(REMOTE_LOCS, letter + oid):
        return True
    return False


def forget_location(txn: WriteTxn, letter: bytes, oid: bytes, remote: str) -> None:
    txn.delete(REMOTE_LOCS, letter + oid + remote.encode())


def forget_kind(txn: WriteTxn, remote: str, letters: bytes, kinds: tuple[str, ...]) -> int:
    """Forget every location of `remote` under `letters` and every pack of `kinds` read
    from it (a remote gc deleted packs: everything is read afresh); how many locations."""
    suffix = remote.encode()
    gone = [
        key
        for key, _ in txn.scan(REMOTE_LOCS)
        if key[:1] in letters and key[1 + _ID_LEN :] == suffix
    ]
    for key in gone:
        txn.delete(REMOTE_LOCS, key)
    for kind in kinds:
        prefix = remote.encode() + b"\0" + kind.encode() + b"\0"
        for key, _ in list(txn.scan(REMOTE_PACKS, prefix)):
            txn.delete(REMOTE_PACKS, key)
    return len(gone)
