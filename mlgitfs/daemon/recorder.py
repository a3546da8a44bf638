"""Read-set recording in a mount's daemon: which files a process tree opens and how many bytes
the daemon serves them, as (repo, commit, path, bytes read).

A recording has a name and a root pid (the `mlgitfs run` process); a request belongs to it
when its caller's pid is the root or a descendant (the PPid chain in /proc, the innermost
recording's root met first wins). A pid's answer is cached for PID_TTL seconds: a DataLoader
worker opening many files pays one walk, and a pid the system reuses later is walked again.

What is exact: attribution happens at `open`, which carries the caller's pid and reaches the
daemon on every open(2), whatever the kernel caches (pages, entries, attributes). So a
read-only daemon never lets the kernel skip opens ("no-open" mode) once a recording has
started or when mounted recordable; a daemon already in no-open mode refuses to record.
Bytes are what the daemon delivered for the recorded opens: read replies, plus the bytes the
page-cache prefill handed to the kernel for a file during the recording, counted at its first
recorded open (suspending the prefill instead made recorded epochs 1.4x slower). Pages the
kernel already held before the recording are not counted. When no recording is active the
hot path costs one truthiness test of `active`. A recorded open costs the daemon about 1.1 µs
of CPU (an inode's first in the recording: its origin looked up, one entry made) or 0.65 µs
(later epochs: two dict lookups), open and release together; the read sets are keyed by
origin only at `stop`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic as _monotonic

PID_TTL = 1.0  # seconds a pid's membership stays cached
MAX_DEPTH = 256  # PPid steps walked before giving up (a cycle would be a kernel bug)
# fh numbers of recorded opens: above every inode number a view hands out (< 2^63).
RECORDED_FH = 1 << 63

Origin = tuple[str, bytes, str]  # repo, commit id, path inside the commit
OriginOf = Callable[[int], Origin | None]


def _status(pid: int) -> tuple[int, int] | None:
    """(Tgid, PPid) of a pid or thread id from /proc; None once it is gone."""
    tgid = ppid = -1
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Tgid:"):
                    tgid = int(line.split()[1])
                elif line.startswith("PPid:"):
                    ppid = int(line.split()[1])
                    break
    except (OSError, ValueError):
        return None
    return (tgid, ppid) if tgid > 0 and ppid >= 0 else None


class _File:
    """What one recording saw of one inode: the unit the hot path touches (no origin
    resolved, no tuple hashed, nothing allocated after the inode's first open)."""

    __slots__ = ("ino", "origin", "opens", "served")

    def __init__(self, ino: int, origin: Origin) -> None:
        self.ino = ino
        self.origin = origin
        self.opens = 0
        self.served = 0


@dataclass(slots=True)
class Recording:
    name: str
    root: int
    # origin -> [bytes served, opens]: made by `Recorder.stop` from `seen`.
    files: dict[Origin, list[int]] = field(default_factory=dict)
    # Every file entry, and the current one by inode. A read-only view's inode denotes one
    # path for the mount's life (snapshot.py, multi.py), so its origin is resolved once per
    # recording; a writable view's may change, and `opened_as` checks it.
    seen: list[_File] = field(default_factory=list)
    by_ino: dict[int, _File] = field(default_factory=dict)


class Recorder:
    """The recordings of one daemon; `status` reads a pid's (Tgid, PPid): a seam for tests."""

    def __init__(self, status: Callable[[int], tuple[int, int] | None] = _status) -> None:
        self.active: dict[int, Recording] = {}  # by root pid
        self._names: dict[str, Recording] = {}
        self._pids: dict[int, tuple[Recording | None, float]] = {}
        self._handles: dict[int, _File] = {}  # recorded fh -> its file entry
        self._prefilled: dict[int, int] = {}  # inode -> bytes prefilled while recording
        self._next_fh = RECORDED_FH
        self._status = status
        # Once a recording started, opens must keep reaching the daemon (see the docstring).
        self.keep_opens = False
        # Set by the FUSE adapter once it let the kernel skip opens: recording is impossible.
        self.opens_skipped = False

    def start(self, name: str, root: int) -> None:
        """Raises ValueError (a name in use, or a mount whose opens the kernel skips)."""
        if self.opens_skipped:
            raise ValueError(
                "the kernel already skips this mount's opens (no-open mode), so its reads "
                "cannot be attributed to processes: mount it again (or with --recordable) "
                "before recording"
            )
        if name in self._names:
            raise ValueError(f"a recording named {name!r} is running in this mount")
        rec = Recording(name, root)
        self._names[name] = rec
        self.active[root] = rec
        self._pids.clear()
        self.keep_opens = True

    def prefilled(self, ino: int, n: int) -> None:
        """The daemon handed a file's `n` bytes to the page cache ahead of any read (from a
        worker thread: one dict store, atomic under the GIL)."""
        self._prefilled[ino] = n

    def _file(self, rec: Recording, ino: int, origin: Origin) -> _File:
        f = rec.by_ino[ino] = _File(ino, origin)
        rec.seen.append(f)
        return f

    def _count(self, f: _File) -> None:
        f.opens += 1
        if self._prefilled:
            f.served += self._prefilled.pop(f.ino, 0)

    def stop(self, name: str) -> Recording | None:
        rec = self._names.pop(name, None)
        if rec is None:
            return None
        self.active.pop(rec.root, None)
        self._pids.clear()
        for f in rec.seen:
            counters = rec.files.setdefault(f.origin, [0, 0])
            counters[0] += f.served
            counters[1] += f.opens
        rec.seen.clear()
        rec.by_ino.clear()
        if not self.active:
            self._prefilled.clear()
        return rec

    def recording_of(self, pid: int) -> Recording | None:
        """The recording whose tree `pid` is in (innermost first), or None."""
        hit = self._pids.get(pid)
        if hit is not None and hit[1] > _monotonic():
            return hit[0]
        return self._walk(pid)

    def _walk(self, pid: int) -> Recording | None:
        found: Recording | None = None
        cur = pid
        for _ in range(MAX_DEPTH):
            rec = self.active.get(cur)
            if rec is not None:
                found = rec
                break
            st = self._status(cur)
            if st is None:
                break
            tgid, ppid = st
            if tgid != cur:  # a thread: its process decides
                cur = tgid
                continue
            if ppid <= 1:
                break
            cur = ppid
        self._pids[pid] = (found, _monotonic() + PID_TTL)
        return found

    def opened(self, pid: int, ino: int, origin_of: OriginOf) -> int | None:
        """A recorded fh for this open when `pid` is in a recording's tree and the file comes
        from a commit; None otherwise (the caller then answers with its usual fh). For a
        read-only view: an inode's origin is looked up at its first open in the recording."""
        # The hot path of a recorded epoch, once per open(2): the pid cache inlined.
        hit = self._pids.get(pid)
        rec = hit[0] if hit is not None and hit[1] > _monotonic() else self._walk(pid)
        if rec is None:
            return None
        f = rec.by_ino.get(ino)
        if f is None:
            origin = origin_of(ino)
            if origin is None:
                return None
            f = rec.by_ino[ino] = _File(ino, origin)
            rec.seen.append(f)
        f.opens += 1
        if self._prefilled:
            # Bytes prefilled for this file count once, for the first recorded open after.
            f.served += self._prefilled.pop(ino, 0)
        fh = self._next_fh
        self._next_fh = fh + 1
        self._handles[fh] = f
        return fh

    def opened_as(self, pid: int, ino: int, fh: int, origin_of: OriginOf) -> None:
        """As `opened`, for a view that chose the fh itself (a writable mount's, whose
        inode may stop being the base commit's file: its origin is looked up each open)."""
        rec = self.recording_of(pid)
        origin = None if rec is None else origin_of(ino)
        if rec is None or origin is None:
            return
        f = rec.by_ino.get(ino)
        if f is None or f.origin != origin:
            f = self._file(rec, ino, origin)
        self._count(f)
        self._handles[fh] = f

    def handles(self) -> bool:
        """Whether any recorded open is still held (a writable mount's read path asks)."""
        return bool(self._handles)

    def served_if(self, fh: int, n: int) -> None:
        """Count `n` bytes served if `fh` is a recorded open."""
        f = self._handles.get(fh)
        if f is not None:
            f.served += n

    def inode(self, fh: int) -> int:
        """The inode of a recorded fh; counts nothing."""
        return self._handles[fh].ino

    def served(self, fh: int, n: int) -> None:
        self._handles[fh].served += n

    def released(self, fh: int) -> None:
        self._handles.pop(fh, None)
