"""Read-only fsspec access to versions, for code that cannot mount; the only importer of fsspec.

    import fsspec
    fs = fsspec.filesystem("mlgitfs", home="/path/to/store")
    fs.ls("imagenet@v3/train")
    with fs.open("imagenet@v3/train/cat/0001.jpg") as f: ...

Paths are `REPO@REF/PATH` (the revspec's `:` written as `/`, as fsspec paths are
slash-separated); `mlgitfs://imagenet@v3/labels.csv` works too. Reads fetch only the chunks
that cover the requested range, verified like every other read.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from mlgitfs import api
from mlgitfs.errors import NotFound
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.refs import resolve
from mlgitfs.repo.trees import file_chunks


def _revspec(path: str) -> str:
    head, _, rest = path.strip("/").partition("/")
    return f"{head}:{rest}" if rest else head


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

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        try:
            r = resolve(api.open_store(self.home), _revspec(path))
        except NotFound as exc:
            raise FileNotFoundError(path) from exc
        return self._info(path, r.entry)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        try:
            items = list(api.ls(self.home, _revspec(path)))
        except NotFound as exc:
            raise FileNotFoundError(path) from exc
        repo = path.split("/", 1)[0]
        out = []
        for e in items:
            name = f"{repo}/{e.path}"
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
        try:
            entry = resolve(store, _revspec(path)).entry
        except NotFound as exc:
            raise FileNotFoundError(path) from exc
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
