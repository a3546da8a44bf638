"""Read-only fsspec access to versions, for code that cannot mount; the only importer of fsspec.

    import fsspec
    fs = fsspec.filesystem("mlgitfs", home="/path/to/store")
    fs.ls("imagenet@v3/train")
    with fs.open("imagenet@v3/train/cat/0001.jpg") as f: ...

Paths are revspecs, `REPO@REF:PATH` (`mlgitfs://imagenet@v3:train/cat/0001.jpg`), or
`REPO@REF/PATH` with the revspec's `:` written as `/`. In the slash form the longest leading
part that names a ref is the ref, so branches with `/` in their names and remote-tracking refs
work (`pets@bob/relabel/labels.csv`, `pets@origin/main/labels.csv`); a path whose first part
would extend a ref's name needs the `:` form. `ls` answers in the form it was asked in.
The store is found as by the CLI (`home`, else $MLGITFS_HOME, else the XDG data dir) and is
never created: a missing store is StoreNotFound, a missing path FileNotFoundError with the
reason. Reads fetch only the chunks that cover the requested range, verified like every other
read.
"""

from __future__ import annotations

import bisect
import errno
from pathlib import Path
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from mlgitfs import api
from mlgitfs.errors import AmbiguousRef, InvalidRevspec, MlgitError, NotFound
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.model.revspec import parse_revspec
from mlgitfs.repo.refs import Resolved, resolve, resolve_ref
from mlgitfs.repo.trees import file_chunks
from mlgitfs.store.facade import Store


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

    def __init__(self, home: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.home = Path(home) if home else None

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

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> _VersionFile:
        if mode != "rb":
            raise PermissionError("mlgitfs versions are read-only: open with mode 'rb'")
        return _VersionFile(self, self._strip_protocol(path), mode, **kwargs)


class _VersionFile(AbstractBufferedFile):  # type: ignore[misc]
    def __init__(self, fs: MlgitFileSystem, path: str, mode: str, **kwargs: Any) -> None:
        store = api.open_store(fs.home)
        entry = fs._resolve(path)[3].entry
        if entry is None or not entry.is_file:
            raise IsADirectoryError(path)
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
            data = self._store.read_chunk(self._chunks[i].id)
            parts.append(data[start - begin : end - begin])
            start = self._ends[i]
            i += 1
        return b"".join(parts)
