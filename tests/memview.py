"""An in-memory `FsView` for daemon tests: a dict tree of files, directories and symlinks.

Built from a dict (`MemView.from_dict`) or by loading a real directory (`MemView.from_directory`)
so tests can compare what the mount shows with the source. Faults are injected per path: reads
of `fail_eio` paths raise FsError(EIO), reads of `fail_runtime` paths raise a plain RuntimeError
(the adapter must survive both). `make_view` is the importable factory the daemon entry point
calls with a JSON argument (`--view-factory tests.memview:make_view --view-arg '{...}'`).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from mlgitfs.errors import FsError
from mlgitfs.model.ids import InodeNo
from mlgitfs.vfs.types import (
    ROOT_INODE,
    Attr,
    Kind,
    Origin,
    StatFs,
    ViewContext,
    WritableFsView,
)

BLOCK = 4096


@dataclass(frozen=True)
class File:
    data: bytes
    mode: int = 0o644
    mtime_ns: int = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class Symlink:
    target: bytes
    mtime_ns: int = 1_700_000_000_000_000_000


@dataclass
class _Node:
    attr: Attr
    path: str
    data: bytes = b""
    target: bytes = b""
    names: list[bytes] = field(default_factory=list)  # sorted, directories only
    children: dict[bytes, InodeNo] = field(default_factory=dict)


PART = 1000


class MemView:
    """A read-only FsView over an in-memory tree; inodes are numbered in sorted walk order."""

    def __init__(
        self,
        tree: Mapping[str | bytes, Any],
        *,
        fail_eio: Iterable[str] = (),
        fail_runtime: Iterable[str] = (),
        read_delay: float = 0.0,
        stall_getattr: float = 0.0,
        dir_mtime_ns: int = 1_700_000_000_000_000_000,
    ) -> None:
        self.nodes: dict[InodeNo, _Node] = {}
        self.fail_eio = set(fail_eio)
        self.fail_runtime = set(fail_runtime)
        self.read_delay = read_delay
        self.stall_getattr = stall_getattr  # a wedged view: blocks the daemon's whole loop
        self.reads = 0
        self._last = int(ROOT_INODE)
        self._add_dir(ROOT_INODE, "", tree, 0o755, dir_mtime_ns)

    @classmethod
    def from_dict(cls, tree: Mapping[str | bytes, Any], **kwargs: Any) -> MemView:
        return cls(tree, **kwargs)

    @classmethod
    def from_directory(cls, root: str | os.PathLike[str], **kwargs: Any) -> MemView:
        return cls(_load(os.fspath(root)), **kwargs)

    # -- building ---------------------------------------------------------------------------

    def _next_ino(self) -> InodeNo:
        self._last += 1
        return InodeNo(self._last)

    def _add_dir(
        self, ino: InodeNo, path: str, tree: Mapping[str | bytes, Any], mode: int, mtime: int
    ) -> None:
        entries = {(k.encode() if isinstance(k, str) else k): v for k, v in tree.items()}
        node = _Node(Attr(ino, Kind.DIR, stat.S_IFDIR | mode, BLOCK, mtime, nlink=2), path)
        self.nodes[ino] = node
        node.names = sorted(entries)
        subdirs = 0
        for name in node.names:
            value = entries[name]
            child = self._next_ino()
            child_path = f"{path}/{name.decode(errors='surrogateescape')}".lstrip("/")
            node.children[name] = child
            if isinstance(value, Mapping):
                subdirs += 1
                self._add_dir(child, child_path, value, 0o755, mtime)
            elif isinstance(value, Dir):
                subdirs += 1
                self._add_dir(child, child_path, value.entries, value.mode, value.mtime_ns)
            elif isinstance(value, Symlink):
                attr = Attr(
                    child, Kind.SYMLINK, stat.S_IFLNK | 0o777, len(value.target), value.mtime_ns
                )
                self.nodes[child] = _Node(attr, child_path, target=value.target)
            else:
                f = value if isinstance(value, File) else File(bytes(value))
                attr = Attr(child, Kind.FILE, stat.S_IFREG | f.mode, len(f.data), f.mtime_ns)
                self.nodes[child] = _Node(attr, child_path, data=f.data)
        node.attr = Attr(ino, Kind.DIR, stat.S_IFDIR | mode, BLOCK, mtime, nlink=2 + subdirs)

    # -- FsView -----------------------------------------------------------------------------

    def _node(self, ino: InodeNo) -> _Node:
        try:
            return self.nodes[ino]
        except KeyError:
            raise FsError(errno.ENOENT, f"no inode {ino}") from None

    def getattr(self, ino: InodeNo) -> Attr:
        if self.stall_getattr:
            time.sleep(self.stall_getattr)
        return self._node(ino).attr

    def lookup(self, parent: InodeNo, name: bytes) -> Attr:
        node = self._node(parent)
        if node.attr.kind != Kind.DIR:
            raise FsError(errno.ENOTDIR)
        child = node.children.get(name)
        if child is None:
            raise FsError(errno.ENOENT)
        return self.nodes[child].attr

    def readdir(self, ino: InodeNo, offset: int) -> Iterator[tuple[bytes, Attr, int]]:
        node = self._node(ino)
        if node.attr.kind != Kind.DIR:
            raise FsError(errno.ENOTDIR)
        for i in range(offset, len(node.names)):
            name = node.names[i]
            yield name, self.nodes[node.children[name]].attr, i + 1

    def readlink(self, ino: InodeNo) -> bytes:
        node = self._node(ino)
        if node.attr.kind != Kind.SYMLINK:
            raise FsError(errno.EINVAL)
        return node.target

    async def read(self, ino: InodeNo, offset: int, size: int) -> bytes:
        node = self._node(ino)
        if node.attr.kind != Kind.FILE:
            raise FsError(errno.EISDIR)
        self.reads += 1
        if self.read_delay:
            await trio.sleep(self.read_delay)
        else:
            await trio.lowlevel.checkpoint()
        if node.path in self.fail_eio:
            raise FsError(errno.EIO, f"injected EIO on {node.path}")
        if node.path in self.fail_runtime:
            raise RuntimeError(f"injected failure on {node.path}")
        return node.data[offset : offset + size]

    async def read_parts(self, ino: InodeNo, offset: int, size: int) -> list[memoryview]:
        # Uneven pieces, as chunk boundaries fall: the daemon replies with them unjoined.
        data = await self.read(ino, offset, size)
        return [memoryview(data[i : i + PART]) for i in range(0, len(data), PART)]

    def forget(self, items: Iterable[tuple[InodeNo, int]]) -> None:
        """Nothing to let go: the whole tree is built up front and kept."""

    def statfs(self) -> StatFs:
        blocks = sum((n.attr.size + BLOCK - 1) // BLOCK for n in self.nodes.values())
        return StatFs(BLOCK, blocks, 0, len(self.nodes), 0)

    def attach(self, nursery: trio.Nursery) -> None:
        """No background work."""

    def close(self) -> None:
        """Nothing held."""

    def origin(self, ino: InodeNo) -> Origin | None:
        return None  # no commit behind it

    def is_dynamic(self, ino: InodeNo) -> bool:
        return False

    def writable(self) -> WritableFsView | None:
        return None


@dataclass(frozen=True)
class Dir:
    entries: Mapping[str | bytes, Any]
    mode: int = 0o755
    mtime_ns: int = 1_700_000_000_000_000_000


def _load(root: str) -> dict[bytes, Any]:
    """A real directory as a MemView tree (files, directories, symlinks; modes and mtimes)."""
    out: dict[bytes, Any] = {}
    with os.scandir(os.fsencode(root)) as it:
        for entry in it:
            st = entry.stat(follow_symlinks=False)
            if entry.is_symlink():
                out[entry.name] = Symlink(os.readlink(entry.path), st.st_mtime_ns)
            elif entry.is_dir(follow_symlinks=False):
                out[entry.name] = Dir(
                    _load(os.fsdecode(entry.path)), stat.S_IMODE(st.st_mode), st.st_mtime_ns
                )
            elif entry.is_file(follow_symlinks=False):
                with open(entry.path, "rb") as f:
                    out[entry.name] = File(f.read(), stat.S_IMODE(st.st_mode), st.st_mtime_ns)
    return out


def make_view(arg: Any, context: ViewContext) -> MemView:
    """Factory for the daemon entry point: {"source": DIR, "fail_eio": [...], ...} or {"tree": ...}.

    "tree" maps names to a string (file content, utf-8), a dict (directory) or
    {"symlink": TARGET}.
    """
    kwargs = {
        "fail_eio": arg.get("fail_eio", ()),
        "fail_runtime": arg.get("fail_runtime", ()),
        "read_delay": float(arg.get("read_delay", 0.0)),
        "stall_getattr": float(arg.get("stall_getattr", 0.0)),
    }
    if "source" in arg:
        return MemView.from_directory(arg["source"], **kwargs)
    return MemView.from_dict(_from_json(arg.get("tree", {})), **kwargs)


def _from_json(tree: Mapping[str, Any]) -> dict[str | bytes, Any]:
    out: dict[str | bytes, Any] = {}
    for name, value in tree.items():
        if isinstance(value, str):
            out[name] = value.encode()
        elif "symlink" in value:
            out[name] = Symlink(value["symlink"].encode())
        else:
            out[name] = _from_json(value)
    return out
