"""The ``file:///DIR`` remote transport: objects as files under a local directory.

Same contract as the S3 transport (see ``mlgitfs.store.remote``), so a directory on a local or
shared filesystem can serve as a remote:

- key ``a/b/c`` is the file ``DIR/a/b/c``; ``DIR`` and parents are created on first write, and a
  missing ``DIR`` reads as an empty remote. Unlike S3, a key cannot also be a "directory" of
  other keys (``a`` and ``a/b``): such a write fails with RemoteError.
- Writes go to ``DIR/.tmp/`` then fsync + rename over the target + fsync of the directory, so a
  reader sees the old or the new object, never a torn one.
- Conditional writes compare and rename under an exclusive ``flock`` on ``DIR/.lock``, which
  serializes them across threads and processes (each call opens its own descriptor, and
  flock excludes between descriptors).
- The ETag is the hex SHA-256 of the content: it changes whenever the bytes do, whatever the
  clock resolution. ``head`` hashes the file to compute it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from mlgitfs.errors import (
    PreconditionFailed,
    RemoteDenied,
    RemoteError,
    RemoteKeyMissing,
    RemoteNotFound,
)
from mlgitfs.store.durable import fsync_dir
from mlgitfs.store.remote import ObjectInfo, check_key, check_prefix, run_probe

TMP_DIR = ".tmp"
LOCK_FILE = ".lock"


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileTransport:
    """A :class:`~mlgitfs.store.remote.RemoteTransport` over a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    def describe(self) -> str:
        return self.root.as_uri()

    def close(self) -> None:
        pass  # nothing held between calls

    # reads

    def get(self, key: str) -> bytes:
        path = self._path(key)
        with self._errors(key):
            try:
                return path.read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise self._missing(key) from exc

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError(f"bad range start={start} length={length}")
        path = self._path(key)
        with self._errors(key):
            try:
                with open(path, "rb") as f:
                    return os.pread(f.fileno(), length, start) if length else b""
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise self._missing(key) from exc

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        with self._errors(key):
            try:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    etag = hashlib.file_digest(f, "sha256").hexdigest()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        return ObjectInfo(size=size, etag=etag)

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self.get(key)
        except RemoteKeyMissing:
            return None
        return data, _etag(data)

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)  # here, not in the generator: a bad prefix fails at the call
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        # Walk only the directory the prefix pins down, then filter by the full string prefix;
        # sorting the keys (not the walk) gives S3's order ("a-b" before "a/b").
        base = prefix.rpartition("/")[0]
        start = self.root / base if base else self.root
        keys: list[str] = []
        with self._errors(prefix):
            for dirpath, dirnames, filenames in os.walk(start, onerror=_raise_walk_error):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel = os.path.relpath(dirpath, self.root)
                head = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                for name in filenames:
                    key = head + name
                    if not name.startswith(".") and key.startswith(prefix):
                        keys.append(key)
        keys.sort(key=lambda k: k.encode("utf-8", "surrogateescape"))
        yield from keys

    # writes

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with self._errors(key):
            self._write(path, data)

    def put_if_absent(self, key: str, data: bytes) -> str:
        path = self._path(key)
        with self._errors(key), self._locked():
            if path.exists():
                raise PreconditionFailed(f"{self._show(key)} exists already")
            self._write(path, data)
        return _etag(data)

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        path = self._path(key)
        with self._errors(key), self._locked():
            try:
                current = _etag(path.read_bytes())
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise PreconditionFailed(f"{self._show(key)} does not exist") from exc
            if current != etag:
                raise PreconditionFailed(f"{self._show(key)} changed since it was read")
            self._write(path, data)
        return _etag(data)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._errors(key):
            try:
                path.unlink()
            except FileNotFoundError:
                return
            fsync_dir(path.parent)

    def probe_conditional_writes(self) -> bool:
        return run_probe(self)

    # internals

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _show(self, key: str) -> str:
        return f"{self.describe()}/{key}"

    def _missing(self, key: str) -> RemoteKeyMissing:
        return RemoteKeyMissing(key, f"no object {key} in {self.describe()}")

    def _write(self, path: Path, data: bytes) -> None:
        """tmp + fsync + rename + fsync of the directory: all or nothing, durable."""
        tmp_dir = self.root / TMP_DIR
        _makedirs(tmp_dir)
        _makedirs(path.parent)
        tmp = tmp_dir / f"{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        fsync_dir(path.parent)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        _makedirs(self.root)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last descriptor releases the lock

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Translate OS errors into the remote error hierarchy (ours pass through)."""
        try:
            yield
        except RemoteError:
            raise
        except PermissionError as exc:
            raise RemoteDenied(f"permission denied on {self._show(key)}: {exc.strerror}") from exc
        except OSError as exc:
            if exc.errno == errno.ENOTDIR and not self.root.is_dir():
                raise RemoteNotFound(f"{self.describe()} is not a directory") from exc
            reason = exc.strerror or type(exc).__name__
            raise RemoteError(f"{self._show(key)}: {reason}") from exc


def _makedirs(path: Path) -> None:
    """Create ``path`` and missing parents, fsyncing each new entry's directory."""
    if path.is_dir():
        return
    missing: list[Path] = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another writer made it first
            d.mkdir()
        fsync_dir(d.parent)


def _raise_walk_error(exc: OSError) -> None:
    # a missing directory (or a file where the prefix wants one) is an empty listing;
    # anything else (EACCES...) is a real error
    if not isinstance(exc, FileNotFoundError | NotADirectoryError):
        raise exc
