"""fsspec access to versions, for code that cannot mount; the only importer of fsspec.

    import fsspec
    fs = fsspec.filesystem("mlgitfs", home="/path/to/store")
    fs.ls("imagenet@v3/train")
    with fs.open("imagenet@v3/train/cat/0001.jpg") as f: ...
    with fs.open("imagenet@main/labels.csv", "wb") as f: ...   # one commit on main at close

Paths are revspecs, `REPO@REF:PATH` (`mlgitfs://imagenet@v3:train/cat/0001.jpg`), or
`REPO@REF/PATH` with the revspec's `:` written as `/`. In the slash form the longest leading
part that names a ref is the ref, so branches with `/` in their names and remote-tracking refs
work (`pets@bob/relabel/labels.csv`, `pets@origin/main/labels.csv`); a path whose first part
would extend a ref's name needs the `:` form. `ls` answers in the form it was asked in.
The store is found as by the CLI (`home`, else $MLGITFS_HOME, else the XDG data dir) and is
never created: a missing store is StoreNotFound, a missing path FileNotFoundError with the
reason. Reads fetch only the chunks that cover the requested range, verified like every other
read.

Writes go to branches only (a tag, a commit or a remote's ref is refused). A file opened for
writing is buffered (spilled to a temporary file past SPILL bytes) and becomes one commit on
its branch when it is closed, by compare-and-swap from the head read at open()
(`api.write_paths`, repo/pathcommit.py). `rm`, `mv`, `copy`, `put` and `pipe` of several
paths make one commit per branch. Inside `with fs.transaction:` everything written, removed
or moved is committed together when the block ends, one commit per branch, and discarded if
it raises; a file whose own `with` block raises is discarded too. Directories exist through
their files: `mkdir` changes nothing.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem
from fsspec.transaction import Transaction

from mlgitfs import api
from mlgitfs.errors import AmbiguousRef, InvalidRevspec, MlgitError, NotFound, PathNotFound
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.model.revspec import parse_revspec
from mlgitfs.repo.erasegate import ErasureGate
from mlgitfs.repo.refs import Resolved, resolve, resolve_ref
from mlgitfs.repo.trees import file_chunks
from mlgitfs.store.facade import Store

SPILL = 4 << 20  # bytes of a file being written held in memory; past this, a temporary file
Op = tuple[api.WriteTarget, api.PathEdit]


def _split(store: Store, path: str) -> tuple[str, str, bool]:
    """(REPO@REF, PATH, colon form) of an fsspec path; see the module docstring."""
    text = path.strip("/")
    if ":" in text:
        head, _, rest = text.partition(":")
        return head, rest.strip("/"), True
    parts = text.split("/")
    if "@" not in parts[0]:
        return parts[0], "/".join(parts[1:]), False
    for i in range(len(parts), 1, -1):  # the longest prefix that names a ref
        head = "/".join(parts[:i])
        try:
            spec = parse_revspec(head)
            resolve_ref(store, spec.repo, spec.ref)
        except (NotFound, InvalidRevspec, AmbiguousRef):
            continue
        return head, "/".join(parts[i:]), False
    return parts[0], "/".join(parts[1:]), False


def _not_found(path: str, exc: MlgitError) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, exc.message, path)


class MlgitFileSystem(AbstractFileSystem):  # type: ignore[misc]
    protocol = "mlgitfs"
    root_marker = ""

    def __init__(
        self,
        home: str | None = None,
        author: str | None = None,
        message: str | None = None,
        **kwargs: Any,
    ) -> None:
        """`author` and `message` are those of the commits writes make (None: the default
        author, and a message naming what was written and removed)."""
        super().__init__(**kwargs)
        self.home = Path(home) if home else None
        self.author = author
        self.message = message
        self.last_writes: list[api.WriteResult] = []  # what the last commit(s) made

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if path.startswith("mlgitfs://"):
            path = path[len("mlgitfs://") :]
        return path.strip("/")

    def _info(self, path: str, entry: TreeEntry | None) -> dict[str, Any]:
        if entry is None or entry.is_dir:
            return {"name": path, "size": 0, "type": "directory"}
        kind = "link" if entry.kind is EntryKind.SYMLINK else "file"
        return {"name": path, "size": entry.size, "type": kind, "mtime": entry.mtime_ns / 1e9}

    def _resolve(self, path: str) -> tuple[str, str, bool, Resolved]:
        store = api.open_store(self.home)
        head, rest, colon = _split(store, path)
        try:
            return head, rest, colon, resolve(store, f"{head}:{rest}" if rest else head)
        except (NotFound, InvalidRevspec) as exc:
            raise _not_found(path, exc) from exc

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        return self._info(path, self._resolve(path)[3].entry)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        head, rest, colon, _ = self._resolve(path)
        try:
            items = list(api.ls(self.home, f"{head}:{rest}" if rest else head))
        except NotFound as exc:
            raise _not_found(path, exc) from exc
        out = []
        for e in items:
            name = f"{head}{':' if colon else '/'}{e.path}"
            kind = {"dir": "directory", "symlink": "link"}.get(e.kind, "file")
            size = 0 if e.kind == "dir" else e.size
            out.append({"name": name, "size": size, "type": kind, "mtime": e.mtime_ns / 1e9})
        return out if detail else [o["name"] for o in out]

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AbstractBufferedFile:
        path = self._strip_protocol(path)
        if mode == "rb":
            return _VersionFile(self, path, mode, block_size=block_size,
                                cache_options=cache_options, **kwargs)  # fmt: skip
        if mode not in ("wb", "xb", "ab"):
            raise ValueError(f"mode {mode!r}: mlgitfs files open with rb, wb, xb or ab")
        return _WriteFile(self, path, mode, autocommit, block_size=block_size, **kwargs)

    # --- writing ------------------------------------------------------------------------

    def _target(self, path: str) -> tuple[api.WriteTarget, str]:
        """(the branch a write to `path` goes to, the path inside it). In a transaction the
        head is read once per branch, at its first write."""
        store = api.open_store(self.home)
        head, rest, _ = _split(store, path)
        if not rest:
            raise IsADirectoryError(errno.EISDIR, "a write names a path inside a branch", path)
        target = api.write_target(self.home, head)
        if self._intrans:
            trans = self.transaction
            assert isinstance(trans, _BranchTransaction)
            target = trans.targets.setdefault((target.repo, target.branch), target)
        return target, rest

    def _apply(self, ops: list[Op], message: str | None = None) -> None:
        """Commit `ops` now, one commit per branch, or queue them in the transaction."""
        if self._intrans:
            trans = self.transaction
            assert isinstance(trans, _BranchTransaction)
            trans.ops.extend(ops)
            if message and not trans.message:
                trans.message = message
            return
        self.last_writes = _commit(self, ops, message)

    @contextlib.contextmanager
    def _one_commit(self) -> Iterator[None]:
        """Everything inside becomes one commit per branch (the caller's transaction, or one
        of its own)."""
        if self._intrans:
            yield
            return
        with self.transaction:
            yield

    def rm(
        self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None
    ) -> None:
        """Remove files (and, with `recursive`, whole directories) in one commit per branch."""
        ops = []
        for p in self.expand_path(path, recursive=False, maxdepth=maxdepth):
            if self.isdir(p) and not recursive:
                raise IsADirectoryError(
                    errno.EISDIR, "a directory: remove it with recursive=True", p
                )
            target, rest = self._target(p)
            ops.append((target, api.PathEdit(rest, None)))
        self._apply(ops)

    def rm_file(self, path: str) -> None:
        self.rm(path)

    def _rm(self, path: str) -> None:
        self.rm(path)

    def _entry_op(self, path1: str, path2: str, recursive: bool) -> Op:
        path1, path2 = self._strip_protocol(path1), self._strip_protocol(path2)
        entry = self._resolve(path1)[3].entry
        if entry is None:
            raise IsADirectoryError(errno.EISDIR, "a version's root cannot be copied", path1)
        if entry.is_dir and not recursive:
            raise IsADirectoryError(errno.EISDIR, "a directory: use recursive=True", path1)
        target, rest = self._target(path2)
        return target, api.PathEdit(rest, entry)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy within the store: the entry is placed as it is, no bytes are read."""
        self._apply([self._entry_op(path1, path2, False)])

    def copy(self, path1: Any, path2: Any, recursive: bool = False, **kwargs: Any) -> None:
        if isinstance(path1, str) and isinstance(path2, str) and self.isdir(path1) and recursive:
            self._apply([self._entry_op(path1, path2, True)])  # the directory whole
            return
        with self._one_commit():
            super().copy(path1, path2, recursive=recursive, **kwargs)

    def mv(self, path1: str, path2: str, recursive: bool = False, **kwargs: Any) -> None:
        """Move a file (or with `recursive` a directory): placed at `path2`, removed at
        `path1`; one commit when both are on one branch."""
        op = self._entry_op(path1, path2, recursive)
        source, rest = self._target(self._strip_protocol(path1))
        self._apply([op, (source, api.PathEdit(rest, None))])

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        """A local file, read when the commit is made (not buffered)."""
        if os.path.isdir(lpath):
            return
        target, rest = self._target(self._strip_protocol(rpath))
        self._apply([(target, api.PathEdit(rest, Path(lpath)))])

    def put(self, lpath: Any, rpath: Any, recursive: bool = False, **kwargs: Any) -> None:
        with self._one_commit():
            super().put(lpath, rpath, recursive=recursive, **kwargs)

    def pipe(self, path: Any, value: Any = None, **kwargs: Any) -> None:
        with self._one_commit():
            super().pipe(path, value, **kwargs)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Nothing: a directory exists through the files written into it."""

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Nothing: a directory exists through the files written into it."""


def _commit(fs: MlgitFileSystem, ops: list[Op], message: str | None) -> list[api.WriteResult]:
    """One commit per branch of `ops`, in the order the branches were first written."""
    groups: dict[tuple[str, str], tuple[api.WriteTarget, list[api.PathEdit]]] = {}
    for target, edit in ops:
        groups.setdefault((target.repo, target.branch), (target, []))[1].append(edit)
    out = []
    for target, edits in groups.values():
        try:
            out.append(api.write_paths(fs.home, target, edits, message or fs.message, fs.author))
        except PathNotFound as exc:  # a removal of a path that is not there
            raise FileNotFoundError(errno.ENOENT, exc.message, target.repo) from exc
    return out


class _BranchTransaction(Transaction):  # type: ignore[misc]
    """fsspec's transaction, committed as one commit per branch at the end of the block (the
    files' own `commit` is never called one by one)."""

    def __init__(self, fs: MlgitFileSystem, **kwargs: Any) -> None:
        super().__init__(fs, **kwargs)
        self.owner = fs  # fsspec's own `fs` is dropped at the end of a block
        self.targets: dict[tuple[str, str], api.WriteTarget] = {}
        self.ops: list[Op] = []
        self.message: str | None = None
        self.cleanups: list[Callable[[], None]] = []

    def start(self) -> None:
        super().start()
        self.targets, self.ops, self.message, self.cleanups = {}, [], None, []

    def complete(self, commit: bool = True) -> None:
        fs = self.owner
        try:
            if commit:
                for f in list(self.files):
                    if not f.closed:
                        f.close()  # queues its edit
                fs.last_writes = _commit(fs, self.ops, self.message)
        finally:
            for f in self.files:
                f.discard()
            for clean in self.cleanups:
                clean()
            self.files.clear()
            self.ops, self.targets, self.cleanups = [], {}, []
            fs._intrans = False
            fs._transaction = None
            self.fs = None


MlgitFileSystem.transaction_type = _BranchTransaction


class _WriteFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file being written: bytes held in memory, then in a temporary file past SPILL; its
    edit is committed at close (or queued in the transaction)."""

    def __init__(
        self, fs: MlgitFileSystem, path: str, mode: str, autocommit: bool, **kwargs: Any
    ) -> None:
        self.message: str | None = kwargs.pop("message", None)
        self.target, self.rel = fs._target(path)
        if mode == "xb" and fs.exists(path):
            raise FileExistsError(errno.EEXIST, "exists already", path)
        self._mem = bytearray()
        self._spill: Path | None = None
        self._fd = -1
        self._dropped = False
        super().__init__(fs, path, "wb", autocommit=autocommit, **kwargs)
        if mode == "ab" and fs.exists(path):
            self._append(fs.cat_file(path))

    def _append(self, data: bytes) -> None:
        if self._spill is None and len(self._mem) + len(data) <= SPILL:
            self._mem += data
            return
        if self._spill is None:
            self._fd, name = tempfile.mkstemp(prefix="mlgitfs-write-")
            self._spill = Path(name)
            os.write(self._fd, self._mem)
            self._mem = bytearray()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _initiate_upload(self) -> None:
        pass

    def _upload_chunk(self, final: bool = False) -> bool:
        self._append(self.buffer.getvalue())
        if final:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            content = bytes(self._mem) if self._spill is None else self._spill
            ops = [(self.target, api.PathEdit(self.rel, content))]
            if self.autocommit:
                try:
                    self.fs._apply(ops, self.message)
                finally:
                    self.discard()
            else:
                trans = self.fs.transaction
                trans.ops.extend(ops)
                trans.cleanups.append(self.discard)
                if self.message and not trans.message:
                    trans.message = self.message
        return True

    def commit(self) -> None:
        """Nothing: the edit was committed at close, or is the transaction's."""

    def discard(self) -> None:
        """Forget what was written (the temporary file goes); no commit is made."""
        self._dropped = True
        self._mem = bytearray()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._spill is not None:
            with contextlib.suppress(FileNotFoundError):
                self._spill.unlink()
            self._spill = None
        self.closed = True

    def __exit__(self, exc_type: object, *args: object) -> None:
        if exc_type is not None and not self.closed:
            self.discard()  # the block failed: nothing is committed
            return
        self.close()


class _VersionFile(AbstractBufferedFile):  # type: ignore[misc]
    def __init__(self, fs: MlgitFileSystem, path: str, mode: str, **kwargs: Any) -> None:
        store = api.open_store(fs.home)
        r = fs._resolve(path)[3]
        entry = r.entry
        if entry is None or not entry.is_file:
            raise IsADirectoryError(path)
        # judged by occurrence (repo/erasegate.py): an erased file is FileErased, at open
        ErasureGate(store.env).check(r.repo, r.commit_id, b"/".join(r.spec.path), entry.ref)
        self._store = store
        self._chunks = file_chunks(store, entry)
        self._ends: list[int] = []
        total = 0
        for c in self._chunks:
            total += c.length
            self._ends.append(total)
        super().__init__(fs, path, mode, size=entry.size, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        parts = []
        i = bisect.bisect_right(self._ends, start)
        while i < len(self._chunks) and start < end:
            begin = self._ends[i] - self._chunks[i].length
            data = self._store.read_chunk(self._chunks[i].id, judged=True)
            parts.append(data[start - begin : end - begin])
            start = self._ends[i]
            i += 1
        return b"".join(parts)
