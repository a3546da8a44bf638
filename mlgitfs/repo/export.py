"""Export: materialize a version, or a path of it, into a plain directory (hosts without FUSE)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.errors import SourceError, UsageError
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.store import Store
from mlgitfs.repo.trees import DirView, file_chunks


@dataclass
class ExportStats:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0


def write_file(store: Store, entry: TreeEntry, dest: Path) -> int:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        for ref in file_chunks(store, entry):
            data = store.read_chunk(ref.id)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.chmod(dest, entry.mode)
    os.utime(dest, ns=(entry.mtime_ns, entry.mtime_ns))
    return entry.size


def export_entry(
    store: Store,
    entry: TreeEntry | None,
    root: ObjectId,
    dest: Path,
    progress: Callable[[int, int], None] | None = None,
) -> ExportStats:
    """Write the entry (None: the root tree `root`) at `dest`: absent or an empty directory."""
    stats = ExportStats()
    if dest.exists() or dest.is_symlink():
        if entry is not None and not entry.is_dir and dest.is_dir():
            dest = dest / entry.name.decode("utf-8", "surrogateescape")
        elif not dest.is_dir() or any(dest.iterdir()):
            raise UsageError(f"{dest} exists and is not an empty directory; nothing was written")
    try:
        if entry is None or entry.is_dir:
            dest.mkdir(exist_ok=True)
            ref = root if entry is None else ObjectId(entry.ref)
            _export_dir(store, ref, dest, stats, progress)
            if entry is not None:
                os.chmod(dest, entry.mode)
                os.utime(dest, ns=(entry.mtime_ns, entry.mtime_ns))
        else:
            _export_one(store, entry, dest, stats, progress)
    except OSError as exc:
        raise SourceError(f"cannot write {exc.filename or dest}: {exc.strerror}") from exc
    return stats


def _export_one(
    store: Store,
    e: TreeEntry,
    path: Path,
    stats: ExportStats,
    progress: Callable[[int, int], None] | None,
) -> None:
    if e.kind is EntryKind.SYMLINK:
        os.symlink(e.ref, path)
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
        stats.symlinks += 1
    else:
        stats.bytes += write_file(store, e, path)
        stats.files += 1
        if progress:
            progress(stats.files, stats.bytes)


def _export_dir(
    store: Store,
    ref: ObjectId,
    dest: Path,
    stats: ExportStats,
    progress: Callable[[int, int], None] | None,
) -> None:
    for e in DirView(store, ref).entries():
        path = dest / os.fsdecode(e.name)
        if e.is_dir:
            path.mkdir()
            _export_dir(store, ObjectId(e.ref), path, stats, progress)
            # Mode and mtime last: writing children changes the mtime and may need write access.
            os.chmod(path, e.mode)
            os.utime(path, ns=(e.mtime_ns, e.mtime_ns))
            stats.dirs += 1
        else:
            _export_one(store, e, path, stats, progress)
