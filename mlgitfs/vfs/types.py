"""What the FUSE adapter asks of a filesystem view, with no pyfuse3 in sight.

`mlgitfs/daemon/` translates kernel requests into calls on a `FsView` and its answers back;
everything a mounted version looks like is decided behind this protocol, so tests drive it
without a kernel. Errors are `FsError(errno)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mlgitfs.meta.checkouts import Kind as Kind  # the view protocol's word too
from mlgitfs.model.ids import InodeNo

if TYPE_CHECKING:
    import trio

    from mlgitfs.vfs.prefill import Prefill

ROOT_INODE = InodeNo(1)  # pyfuse3.ROOT_INODE


@dataclass(frozen=True, slots=True)
class Attr:
    ino: InodeNo
    kind: Kind
    mode: int  # st_mode with the file type bits
    size: int
    mtime_ns: int
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    atime_ns: int | None = None  # None: as mtime
    ctime_ns: int | None = None  # None: as mtime


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the process's user and group, as the kernel reports them."""

    uid: int
    gid: int
    pid: int = 0


@dataclass(frozen=True, slots=True)
class StatFs:
    block_size: int
    blocks: int
    blocks_free: int
    files: int
    files_free: int
    name_max: int = 255


@dataclass(frozen=True, slots=True)
class ViewContext:
    """What the daemon hands a view factory besides its JSON argument: the collaborators a
    view takes at construction (none is wired in afterwards)."""

    # The page-cache prefill (vfs/prefill.py), for read-only views; None: do not prefill.
    prefill: Prefill | None = None


class FsView(Protocol):
    """A read-only filesystem view (issue 3). Writable views extend it (issue 4)."""

    def getattr(self, ino: InodeNo) -> Attr: ...

    def lookup(self, parent: InodeNo, name: bytes) -> Attr:
        """The child's attributes; raises FsError(ENOENT) when absent."""
        ...

    def readdir(self, ino: InodeNo, offset: int) -> Iterator[tuple[bytes, Attr, int]]:
        """Entries after `offset` (0 = from the start), each with the offset that follows it."""
        ...

    def readlink(self, ino: InodeNo) -> bytes: ...

    def forget(self, items: Iterable[tuple[InodeNo, int]]) -> None:
        """The kernel dropped `n` lookups of each inode (every entry of a lookup reply or a
        readdirplus listing counts one)."""
        ...

    async def read(self, ino: InodeNo, offset: int, size: int) -> bytes | memoryview:
        """Up to `size` bytes at `offset`; a memoryview may share a cached chunk's memory
        (zero-copy), so the caller uses it before its next await."""
        ...

    async def read_parts(self, ino: InodeNo, offset: int, size: int) -> list[memoryview]:
        """The same bytes as `read`, as the views of the chunks they come from (no join):
        for a reply sent with one writev."""
        ...

    def statfs(self) -> StatFs: ...

    def attach(self, nursery: trio.Nursery) -> None:
        """Start the view's background work (read-ahead, fetch-ahead) in the daemon's
        nursery, once, before the first request."""
        ...

    def close(self) -> None:
        """Release what the view holds (its lock, overlay files); once, after unmount."""
        ...
