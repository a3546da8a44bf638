"""Export: materialize a version, or a path of it, into a plain directory (hosts without FUSE).

Bytes come through the same checks as a mount's and `cat`'s (trees.file_chunks and
trees.chunk_bytes): a file whose manifest or chunks disagree with its size stops the export
with CorruptObject, and the partly written file is removed. The walk is iterative
(trees.walk), so a deep tree exports as long as its paths fit the OS's limit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.errors import DestinationError, UsageError
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.progress import Totals, announce
from mlgitfs.repo.trees import chunk_bytes, file_chunks, walk
from mlgitfs.store.facade import Store

# Judges a file before it is read, by its path in the version and its id (raises FileErased
# for an erased occurrence: repo/erasegate.py); with one, reads are `judged`.
Gate = Callable[[bytes, bytes], None]


@dataclass(frozen=True, slots=True)
class _Where:
    gate: Gate | None
    at: bytes  # the exported entry's path in the version


@dataclass
class ExportStats:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0


def write_file(store: Store, entry: TreeEntry, dest: Path, judged: bool = False) -> int:
    refs = file_chunks(store, entry)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        for ref in refs:
            view = memoryview(chunk_bytes(store, ref, judged))
            while view:
                view = view[os.write(fd, view) :]
    except BaseException:
        os.close(fd)
        dest.unlink(missing_ok=True)  # no partial file left behind
        raise
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
    gate: Gate | None = None,
    at: bytes = b"",
) -> ExportStats:
    """Write the entry (None: the root tree `root`) at `dest`: absent or an empty directory.
    `gate` judges each file before it is read (`at`: the entry's path in the version).

    Missing parents of `dest` are created (as `mkdir -p`). A failure or an interrupt removes
    what the export made (the directories it created, or what it wrote into an empty `dest`),
    so nothing half-made is left behind."""
    stats = ExportStats()
    if dest.exists() or dest.is_symlink():
        if entry is not None and not entry.is_dir and dest.is_dir():
            dest = dest / entry.name.decode("utf-8", "surrogateescape")
        elif not dest.is_dir() or any(dest.iterdir()):
            raise UsageError(f"{dest} exists and is not an empty directory; nothing was written")
    made = _first_missing(dest)  # what to remove on failure; None: dest is an empty directory
    if isinstance(progress, Totals):  # a bar wants the totals: the trees say them
        announce(progress, *_totals(store, entry, root))
    try:
        _export(store, entry, root, dest, stats, progress, _Where(gate, at))
    except BaseException:
        _undo(dest, made)
        raise
    return stats


def _totals(store: Store, entry: TreeEntry | None, root: ObjectId) -> tuple[int, int]:
    """(files, bytes) an export of `entry` writes: a walk of trees, no file content."""
    if entry is not None and not entry.is_dir:
        return (0, 0) if entry.kind is EntryKind.SYMLINK else (1, entry.size)
    files = nbytes = 0
    for _, e in walk(store, root if entry is None else ObjectId(entry.ref)):
        if not e.is_dir and e.kind is not EntryKind.SYMLINK:
            files += 1
            nbytes += e.size
    return files, nbytes


def _first_missing(dest: Path) -> Path | None:
    """The topmost of `dest` and its parents that does not exist yet (None: dest exists)."""
    path = dest.absolute()
    if path.exists() or path.is_symlink():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


def _undo(dest: Path, made: Path | None) -> None:
    if made is not None:
        remove_tree(made)
        with contextlib.suppress(OSError):
            made.unlink()  # a single exported file or symlink
        return
    for child in list(dest.iterdir()) if dest.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            remove_tree(child)
        else:
            with contextlib.suppress(OSError):
                child.unlink()


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: Path) -> None:
    """`rm -rf` of a directory this export made, best effort, without recursion and without
    paths: a hostile deep tree leaves ~2,000 nested directories before its paths outgrow
    PATH_MAX, which shutil.rmtree can neither recurse through nor name. One directory fd is
    open at a time; the walk climbs back through "..", which is safe on a tree we made."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return
    names: list[str] = []  # the directories entered below `path`
    try:
        while True:
            sub = _clear_files(fd)
            if sub is not None:
                try:
                    child = os.open(sub, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    return
                os.close(fd)
                fd = child
                names.append(sub)
                continue
            if not names:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            try:
                os.rmdir(names.pop(), dir_fd=fd)
            except OSError:
                return  # it would be entered again forever: leave it
    except OSError:
        return
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _clear_files(fd: int) -> str | None:
    """Unlink every non-directory of the directory `fd`; the name of one subdirectory left."""
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o700)  # a mode set before the failure may forbid listing it
    sub = None
    with os.scandir(fd) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                sub = sub or e.name
            else:
                with contextlib.suppress(OSError):
                    os.unlink(e.name, dir_fd=fd)
    return sub


def _export(
    store: Store,
    entry: TreeEntry | None,
    root: ObjectId,
    dest: Path,
    stats: ExportStats,
    progress: Callable[[int, int], None] | None,
    where: _Where,
) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if entry is None or entry.is_dir:
            dest.mkdir(exist_ok=True)
            ref = root if entry is None else ObjectId(entry.ref)
            _export_dir(store, ref, dest, stats, progress, where)
            if entry is not None:
                os.chmod(dest, entry.mode)
                os.utime(dest, ns=(entry.mtime_ns, entry.mtime_ns))
        else:
            _export_one(store, entry, dest, stats, progress, where, where.at)
    except OSError as exc:
        raise DestinationError(
            f"cannot write {exc.filename or dest}: {exc.strerror}; nothing was left behind"
        ) from exc


def _export_one(
    store: Store,
    e: TreeEntry,
    path: Path,
    stats: ExportStats,
    progress: Callable[[int, int], None] | None,
    where: _Where,
    at: bytes,
) -> None:
    if e.kind is EntryKind.SYMLINK:
        os.symlink(e.ref, path)
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
        stats.symlinks += 1
    else:
        if where.gate is not None:
            where.gate(at, bytes(e.ref))
        stats.bytes += write_file(store, e, path, where.gate is not None)
        stats.files += 1
        if progress:
            progress(stats.files, stats.bytes)


def _export_dir(
    store: Store,
    ref: ObjectId,
    dest: Path,
    stats: ExportStats,
    progress: Callable[[int, int], None] | None,
    where: _Where,
) -> None:
    dirs: list[tuple[Path, TreeEntry]] = []
    prefix = where.at + b"/" if where.at else b""
    for sub, e in walk(store, ref):
        path = dest / os.fsdecode(sub)
        if e.is_dir:
            path.mkdir()
            dirs.append((path, e))
            stats.dirs += 1
        else:
            _export_one(store, e, path, stats, progress, where, prefix + sub)
    # Modes and mtimes last, deepest first: writing children changes a directory's mtime
    # and may need write access to it.
    for path, e in reversed(dirs):
        os.chmod(path, e.mode)
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns))
