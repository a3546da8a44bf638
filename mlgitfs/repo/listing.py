"""The import's directory listings, made on a thread of their own a few directories ahead.

A cold re-import spends most of its time in the kernel: `getdents` and `lstat` of inodes
that are not cached yet (about 8 µs per file on our test VMs, nearly all system time). The
walk's own work per file (the stat cache, the tree entries) is Python. A `Lister` lists and
lstats the tree depth-first, in the walk's order, on one thread, so the two overlap on two
cores instead of taking turns.

Ordering: the lister produces listings in exactly the order `ingest` consumes them (a
directory, then each subdirectory in name order, recursively), through a bounded queue. An
error (an unreadable directory, a special file, an invalid name) is queued in place of the
listing and raised when the walk reaches it, so an import stops at the same point as
before and before any ref moves.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import threading
from dataclasses import dataclass
from typing import NamedTuple

from mlgitfs.errors import SourceError
from mlgitfs.model.names import MAX_NAME, entry_name_problem

AHEAD = 16  # listings queued ahead of the walk (memory: a few directories' stat results)


class Entry(NamedTuple):  # one per file: a tuple is 3x cheaper to make than a dataclass
    name: bytes
    path: bytes
    st: os.stat_result


@dataclass(frozen=True, slots=True)
class Listing:
    path: bytes
    entries: list[Entry]  # in name (byte) order


class _Stopped(Exception):
    """The walk went away: the lister ends quietly."""


class Lister:
    """Depth-first listings of `root` on a background thread; `next()` returns them in order."""

    def __init__(self, root: bytes, ahead: int = AHEAD) -> None:
        self._queue: queue.Queue[Listing | BaseException] = queue.Queue(ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(root,), name="mlgitfs-list", daemon=True
        )
        self._thread.start()

    def next(self, path: bytes) -> Listing:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if item.path != path:  # a bug, never a user error: the orders must agree
            raise AssertionError(f"lister at {item.path!r}, walk at {path!r}")
        return item

    def close(self) -> None:
        self._stop.set()  # a put waiting for room gives up within its timeout
        self._thread.join()

    def _put(self, item: Listing | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _run(self, root: bytes) -> None:
        try:
            self._walk(root)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the walk, raised there
            with contextlib.suppress(_Stopped):
                self._put(exc)

    def _walk(self, path: bytes) -> None:
        listing = list_dir(path)
        self._put(listing)
        for e in listing.entries:
            if stat.S_ISDIR(e.st.st_mode):
                self._walk(e.path)


def list_dir(path: bytes) -> Listing:
    """One directory's entries in byte order with their lstat; refuses what cannot be
    versioned, naming the path."""
    try:
        with os.scandir(path) as it:
            items = sorted(it, key=_name)
    except OSError as exc:
        raise SourceError(f"cannot list {os.fsdecode(path)}: {exc.strerror}") from exc
    entries = []
    for item in items:
        name = item.name
        # The kernel's names are never empty, ".", ".." or hold '/' or NUL: only the length
        # can be wrong for a tree (a file system with a larger NAME_MAX).
        if len(name) > MAX_NAME:
            problem = entry_name_problem(name)
            raise SourceError(f"cannot import {os.fsdecode(item.path)}: {problem}")
        try:
            st = item.stat(follow_symlinks=False)
        except OSError as exc:
            raise SourceError(f"cannot stat {os.fsdecode(item.path)}: {exc.strerror}") from exc
        mode = st.st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            raise SourceError(
                f"cannot import {os.fsdecode(item.path)}: it is a {_special_kind(mode)}; "
                "only files, directories and symlinks can be versioned"
            )
        entries.append(Entry(name, item.path, st))
    return Listing(path, entries)


def _name(item: os.DirEntry[bytes]) -> bytes:
    return item.name


def _special_kind(mode: int) -> str:
    if stat.S_ISSOCK(mode):
        return "socket"
    return "FIFO" if stat.S_ISFIFO(mode) else "device"
