"""The store's LMDB environment: named databases and short transactions; the only importer of lmdb.

Rules that keep LMDB safe here (design §8): one environment object per process and path
(opening the same path twice in one process corrupts lock state), reopened after a fork,
short synchronous transactions, never shared between threads. lmdb's exceptions become
`StoreError`/`StoreFull` here, and a failed write transaction changes nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import lmdb

from mlgitfs.errors import StoreError, StoreFull
from mlgitfs.meta.schema import DATABASES

# Address space only: the file grows as data is written. 64 GiB holds the metadata of
# hundreds of millions of files while leaving room for many stores in one process (a
# process has 128 TiB of address space; tests open hundreds of stores).
DEFAULT_MAP_SIZE = 64 << 30


class ReadTxn:
    def __init__(
        self, txn: lmdb.Transaction, dbs: dict[str, lmdb._Database], store_home: Path
    ) -> None:
        self._txn = txn
        self._dbs = dbs
        self.store_home = store_home  # for messages that name the store

    def get(self, db: str, key: bytes) -> bytes | None:
        value = self._txn.get(key, db=self._dbs[db])
        return None if value is None else bytes(value)

    def has(self, db: str, key: bytes) -> bool:
        return self._txn.get(key, db=self._dbs[db]) is not None

    def scan(self, db: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        with self._txn.cursor(db=self._dbs[db]) as cur:
            if not cur.set_range(prefix):
                return
            for key, value in cur:
                k = bytes(key)
                if not k.startswith(prefix):
                    return
                yield k, bytes(value)

    def scan_from(self, db: str, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every record whose key sorts at or after `start`, in key order."""
        with self._txn.cursor(db=self._dbs[db]) as cur:
            if not cur.set_range(start):
                return
            for key, value in cur:
                yield bytes(key), bytes(value)

    def count(self, db: str) -> int:
        return int(self._txn.stat(self._dbs[db])["entries"])


class WriteTxn(ReadTxn):
    def put(self, db: str, key: bytes, value: bytes) -> None:
        self._txn.put(key, value, db=self._dbs[db])

    def put_new(self, db: str, key: bytes, value: bytes) -> bool:
        """Write only if absent; False when the key existed (content-addressed puts)."""
        return bool(self._txn.put(key, value, db=self._dbs[db], overwrite=False))

    def delete(self, db: str, key: bytes) -> bool:
        return bool(self._txn.delete(key, db=self._dbs[db]))

    def clear(self, db: str) -> None:
        """Delete every key of `db` (the database itself stays)."""
        self._txn.drop(self._dbs[db], delete=False)


class Transactions(Protocol):
    """What a user of short transactions needs of an environment: the seam a fault test
    replaces with a double whose write transactions fail (and so abort)."""

    def read(self) -> AbstractContextManager[ReadTxn]: ...

    def write(self) -> AbstractContextManager[WriteTxn]: ...


class MetaEnv:
    """One LMDB environment with the named databases of `DATABASES`."""

    def __init__(self, path: Path, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=len(DATABASES) + 4,
                max_readers=512,
                subdir=True,
                readahead=False,  # random access pattern: let the page cache decide
                metasync=True,
                sync=True,
            )
            with self._env.begin(write=True) as txn:
                self._dbs = {name: self._env.open_db(name.encode(), txn=txn) for name in DATABASES}
        except lmdb.MapFullError as exc:
            raise StoreFull(_full_message(path)) from exc
        except lmdb.Error as exc:
            raise StoreError(f"cannot open the store's database at {path}: {exc}") from exc
        self._pid = os.getpid()

    @contextmanager
    def read(self) -> Iterator[ReadTxn]:
        try:
            with self._env.begin(write=False, buffers=False) as txn:
                rt = ReadTxn(txn, self._dbs, self.path.parent)
                try:
                    yield rt
                finally:
                    # lmdb keeps a reader slot while its Transaction object lives, even
                    # after the block ends: a caller's `txn` variable left in a frame of a
                    # recursive walk held one slot per level (MDB_READERS_FULL at 512).
                    del rt._txn
        except lmdb.Error as exc:
            raise StoreError(f"store database error: {exc}") from exc

    @contextmanager
    def write(self) -> Iterator[WriteTxn]:
        """A write transaction: committed when the block ends, aborted on any exception."""
        try:
            with self._env.begin(write=True) as txn:
                yield WriteTxn(txn, self._dbs, self.path.parent)
        except lmdb.MapFullError as exc:
            raise StoreFull(_full_message(self.path)) from exc
        except lmdb.Error as exc:
            raise StoreError(f"store database error: {exc}") from exc

    def sync(self) -> None:
        self._env.sync(True)

    def close(self) -> None:
        self._env.close()


def _full_message(path: Path) -> str:
    return (
        f"the store's database at {path} is full; nothing was changed. Free disk space or "
        "raise MLGITFS_MAP_SIZE (bytes) and run the command again"
    )


def check_readable(path: Path) -> None:
    """Read every record of every database in a forked child first (for fsck). LMDB has no
    checksums: a damaged page header can send it to memory past the end of its file, and
    that kills the process with SIGBUS, which no Python code can catch. The child dies
    instead, and this raises `StoreError` saying so; other errors are left to the caller's
    own reads, which report them."""
    if not (path / "data.mdb").exists():
        return
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's result is its exit status
        code = 0
        try:
            env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(DATABASES) + 4)
            with env.begin() as txn:
                dbs = [env.open_db(name.encode(), txn=txn, create=False) for name in DATABASES]
                for db in [None, *dbs]:
                    for key, value in txn.cursor(db=db):
                        code |= 0 if len(key) + len(value) >= 0 else 1
        except BaseException:  # not a crash: the caller's reads will say what is wrong
            code = 0
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise StoreError(
            f"the store's database at {path} is damaged: reading it kills a process ({name}); "
            "nothing was changed. Restore it from a backup, or clone the repos again"
        )


_envs: dict[str, MetaEnv] = {}
_lock = threading.Lock()


def open_env(path: Path) -> MetaEnv:
    """The process's one environment for `path` (a fresh one in a forked child)."""
    key = str(path.resolve())
    map_size = int(os.environ.get("MLGITFS_MAP_SIZE", DEFAULT_MAP_SIZE))
    with _lock:
        env = _envs.get(key)
        if env is None or env._pid != os.getpid():
            env = MetaEnv(path, map_size)
            _envs[key] = env
        return env


def close_env(path: Path) -> None:
    with _lock:
        env = _envs.pop(str(path.resolve()), None)
    if env is not None and env._pid == os.getpid():
        env.close()
