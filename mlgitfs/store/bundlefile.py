"""The bundle file format: one file of length-prefixed records, checked by a trailing digest.

    header   MAGIC (16 bytes), version (u32 big-endian)
    record   kind (1 byte), key length (u32), key, data length (u64), data
    trailer  a record of kind END, empty key, data = BLAKE3-256 of every byte before the data

The trailer is the last bytes of the file. A reader checks the whole file against it before
it yields a single record (`verify`), so a truncated or altered bundle is refused before
anything is restored. The writer writes a temporary file beside the target, locked with
flock, and renames it into place after fsync: a writer killed at any instant leaves the
previous file (or none) at the target, and a rerun reuses and truncates the temporary one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mlgitfs.errors import BundleDamaged, ConflictError, DestinationError, NotFound
from mlgitfs.model.ids import ID_LEN, Hasher
from mlgitfs.store.durable import fsync_dir

MAGIC = b"mlgitfs bundle\n\x00"
VERSION = 2  # 2 adds the records of contents let go; a bundle without them is written as 1
SIGNED = 3  # 3 adds signed statements; a bundle without any is written as 1 or 2
READS = (1, 2, 3)
_HEAD = struct.Struct(">16sI")
_REC = struct.Struct(">cI")
_LEN = struct.Struct(">Q")

REPO = b"R"  # key: repo name; data: the repo record (store/packs.render_repo)
CHUNK = b"C"  # key: chunk id; data: codec (u8), raw length (u64), stored bytes
OBJECT = b"O"  # key: object id; data: its encoded bytes
RULES = b"S"  # key: empty; data: the retention rule set
REF = b"F"  # key: ref name ("heads/main"); data: commit id
EXPIRED = b"X"  # key: commit id; data: its expiry record (contents gc let go)  (version 2)
ERASURE = b"Z"  # key: empty; data: an erasure record of the repo  (version 2)
ERASED = b"D"  # key: chunk id only erased files held; data: empty  (version 2)
STATEMENT = b"T"  # key: statement id; data: a signed statement (model/statement.py)  (version 3)
END = b"E"
KINDS = frozenset((REPO, CHUNK, OBJECT, RULES, REF, EXPIRED, ERASURE, ERASED, STATEMENT, END))
MAX_KEY = 4096
_CHUNK_HEAD = struct.Struct(">BQ")
_BUF = 1 << 20


def encode_chunk(codec: int, raw_len: int, stored: bytes) -> bytes:
    return _CHUNK_HEAD.pack(codec, raw_len) + stored


def decode_chunk(data: bytes, path: str) -> tuple[int, int, bytes]:
    if len(data) < _CHUNK_HEAD.size:
        raise BundleDamaged(path, "a chunk record too short")
    codec, raw_len = _CHUNK_HEAD.unpack_from(data)
    return codec, raw_len, data[_CHUNK_HEAD.size :]


class BundleWriter:
    """Writes records to `<dir>/.<name>.partial`, then `commit` renames it to `path`."""

    def __init__(self, path: Path, version: int = VERSION) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.partial")
        try:
            fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DestinationError(f"cannot write {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConflictError(f"another bundle is being written to {path}") from None
        os.ftruncate(fd, 0)  # what a killed writer left
        self._f: BinaryIO = os.fdopen(fd, "wb", buffering=_BUF)
        self._hash = Hasher()
        self.size = 0
        self._write(_HEAD.pack(MAGIC, version))

    def _write(self, data: bytes) -> None:
        try:
            self._f.write(data)
        except OSError as exc:
            raise DestinationError(f"cannot write {self.path}: {exc.strerror}") from exc
        self._hash.update(data)
        self.size += len(data)

    def record(self, kind: bytes, key: bytes, data: bytes) -> None:
        assert kind in KINDS and kind != END and len(key) <= MAX_KEY
        self._write(_REC.pack(kind, len(key)) + key + _LEN.pack(len(data)))
        self._write(data)

    def commit(self) -> None:
        """The trailer, fsync, rename into place, fsync of the directory."""
        end = _REC.pack(END, 0) + _LEN.pack(ID_LEN)
        self._hash.update(end)
        end += self._hash.digest()
        try:
            self._f.write(end)
            self._f.flush()
            os.fsync(self._f.fileno())
            os.replace(self.tmp, self.path)  # still locked: no rerun truncates it meanwhile
            fsync_dir(self.path.parent)
        except OSError as exc:
            raise DestinationError(f"cannot write {self.path}: {exc.strerror}") from exc
        self.size += len(end)
        self._f.close()

    def abort(self) -> None:
        """A failed bundle: remove the temporary file (a killed one is reused by a rerun)."""
        with contextlib.suppress(OSError):
            self.tmp.unlink()
        with contextlib.suppress(OSError):
            self._f.close()


def _read_exact(f: BinaryIO, n: int, path: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise BundleDamaged(path, "it ends in the middle of a record (truncated)")
    return data


def verify(path: Path) -> None:
    """Refuse (BundleDamaged) a file that is not a whole, unaltered bundle of a known version."""
    name = str(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise NotFound(f"no bundle file {name}") from None
    except OSError as exc:
        raise BundleDamaged(name, f"cannot read it ({exc.strerror})") from exc
    with f:
        size = os.fstat(f.fileno()).st_size
        _check_head(f.read(_HEAD.size), name)
        tail = _REC.size + _LEN.size + ID_LEN
        if size < _HEAD.size + tail:
            raise BundleDamaged(name, "too short to hold a trailer (truncated)")
        h = Hasher()
        f.seek(0)
        left = size - ID_LEN
        while left:
            buf = f.read(min(_BUF, left))
            if not buf:
                raise BundleDamaged(name, "it shrank while being read")
            h.update(buf)
            left -= len(buf)
        f.seek(size - tail)
        end = f.read(tail)
        kind, klen = _REC.unpack_from(end)
        (dlen,) = _LEN.unpack_from(end, _REC.size)
        if kind != END or klen != 0 or dlen != ID_LEN:
            raise BundleDamaged(name, "no trailer at its end (truncated)")
        if h.digest() != end[-ID_LEN:]:
            raise BundleDamaged(name, "its checksum does not match its contents (altered)")


def _check_head(head: bytes, name: str) -> None:
    if len(head) < _HEAD.size or head[:16] != MAGIC:
        raise BundleDamaged(name, "not an mlgitfs bundle (no magic)")
    (_, version) = _HEAD.unpack(head)
    if version not in READS:
        raise BundleDamaged(name, f"bundle version {version}; this mlgitfs reads {READS}")


def records(path: Path) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(kind, key, data) of every record before the trailer; `verify` the file first."""
    name = str(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        _check_head(f.read(_HEAD.size), name)
        while True:
            kind, klen = _REC.unpack(_read_exact(f, _REC.size, name))
            if kind not in KINDS or klen > MAX_KEY:
                raise BundleDamaged(name, f"an unknown record at byte {f.tell() - _REC.size}")
            key = _read_exact(f, klen, name)
            (dlen,) = _LEN.unpack(_read_exact(f, _LEN.size, name))
            if dlen > size - f.tell():
                raise BundleDamaged(name, "a record longer than the file (truncated)")
            data = _read_exact(f, dlen, name)
            if kind == END:
                if f.tell() != size:
                    raise BundleDamaged(name, "bytes after its trailer")
                return
            yield kind, key, data
