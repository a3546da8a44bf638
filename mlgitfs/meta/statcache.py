"""The import's stat cache: each source file's stat at the last import and the object it
became, so that a re-import reads only the files whose stat changed (git's index, in LMDB).

Keys are `directory NUL name`. NUL appears in no path, so the files of one directory form
one contiguous key range in name order: a directory's lookups are one cursor pass merged
with its sorted listing, not one B-tree descent per file, and the keys of files that are
gone show up in the same pass to be deleted. A path too long for an LMDB key is not cached
(the file is read on every import). Stores written before this layout kept one key per
path; they are dropped once, on the first write (`FORMAT`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator

from mlgitfs.meta import db
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import STATCACHE
from mlgitfs.model.objects import EntryKind

FORMAT = 2
_KEY_LIMIT = 511  # LMDB's default maximum key size
# Value: size, mtime_ns, inode, ctime_ns; then one byte of entry kind; then the ref.
_STAT = struct.Struct("<QqQq")

Hit = tuple[EntryKind, bytes]  # (FILE or CHUNKED, manifest or chunk reference)


def stat_key(st: os.stat_result) -> bytes:
    # Times are clamped to what "q" holds (tmpfs takes times past 2262): a file at an end
    # of the range is told apart by its size, inode and ctime, and at worst read again.
    return _STAT.pack(st.st_size, _q(st.st_mtime_ns), st.st_ino, _q(st.st_ctime_ns))


def _q(t: int) -> int:
    return max(-(1 << 63), min(t, (1 << 63) - 1))


def key(directory: bytes, name: bytes) -> bytes | None:
    k = directory + b"\0" + name
    return k if len(k) <= _KEY_LIMIT else None


def value(st: os.stat_result, kind: EntryKind, ref: bytes) -> bytes:
    return stat_key(st) + bytes((int(kind),)) + ref


def lookup(
    txn: ReadTxn, directory: bytes, files: list[tuple[bytes, os.stat_result]]
) -> tuple[list[Hit | None], list[bytes]]:
    """For `files` (name, lstat) of one directory, in name order: the cached object of each
    file whose stat is unchanged, and the keys of cached files no longer listed."""
    prefix = directory + b"\0"
    skip = len(prefix)
    hits: list[Hit | None] = [None] * len(files)
    gone: list[bytes] = []
    if len(prefix) >= _KEY_LIMIT:
        return hits, gone
    size = _STAT.size
    i, n = 0, len(files)
    for k, v in txn.scan(STATCACHE, prefix):
        name = k[skip:]
        while i < n and files[i][0] < name:
            i += 1
        if i == n or files[i][0] != name:
            gone.append(k)
            continue
        if len(v) > size + 1 and v[:size] == stat_key(files[i][1]) and v[size] in (1, 2):
            hits[i] = (EntryKind(v[size]), v[size + 1 :])
        i += 1
    return hits, gone


def write(txn: WriteTxn, puts: Iterable[tuple[bytes, bytes]], deletes: Iterable[bytes]) -> None:
    if db.get_config(txn, "statcache.format") != FORMAT:
        txn.clear(STATCACHE)
        db.set_config(txn, "statcache.format", FORMAT)
    for k in deletes:
        txn.delete(STATCACHE, k)
    for k, v in puts:
        txn.put(STATCACHE, k, v)


def entries(txn: ReadTxn) -> Iterator[tuple[bytes, bytes]]:
    """(key, ref) of every cached file: gc drops those whose object or chunk it sweeps."""
    size = _STAT.size
    for k, v in txn.scan(STATCACHE):
        if len(v) > size + 1:
            yield k, v[size + 1 :]


def delete(txn: WriteTxn, keys: Iterable[bytes]) -> None:
    for k in keys:
        txn.delete(STATCACHE, k)
