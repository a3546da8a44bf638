"""What the FUSE adapter asks of a filesystem view, with no pyfuse3 in sight.

`mlgitfs/daemon/` translates kernel requests into calls on a `FsView` and its answers back;
everything a mounted version looks like is decided behind this protocol, so tests drive it
without a kernel. Errors are `FsError(errno)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mlgitfs.meta.checkouts import Kind as Kind  # the view protocol's word too
from mlgitfs.model.ids import InodeNo
from mlgitfs.vfs.inodes import InodeSpace

if TYPE_CHECKING:
    import trio

    from mlgitfs.meta.db import Mutability
    from mlgitfs.model.ids import ObjectId
    from mlgitfs.repo.gate import HookOptions
    from mlgitfs.repo.merge import Strategy
    from mlgitfs.store.facade import Store
    from mlgitfs.vfs.checkout_ops import CommitOutcome, StatusOutcome
    from mlgitfs.vfs.inodes import InodeRange
    from mlgitfs.vfs.mountmerge import Merged
    from mlgitfs.vfs.prefill import Prefill
    from mlgitfs.vfs.restore import RestoreOutcome

ROOT_INODE = InodeNo(1)  # pyfuse3.ROOT_INODE

Origin = tuple[str, bytes, str]  # repo, commit id, path inside the commit


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
    # The mount's inode numbers (vfs/inodes.py): every view of the daemon takes its ranges
    # here, so no two of them hand out the same number.
    inodes: InodeSpace = field(default_factory=InodeSpace)
    # The checkouts the daemon serves, by ref (REPO@BRANCH): a checkout's view enters itself
    # when made; the control socket serves these (daemon/control.py).
    checkouts: dict[str, CheckoutFsView] = field(default_factory=dict)


class FsView(Protocol):
    """What the FUSE adapter serves (daemon/fuse_ops.py): a read-only view, or, through
    `writable()`, one whose files change (`WritableFsView`, daemon/fuse_write.py)."""

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

    def origin(self, ino: InodeNo) -> Origin | None:
        """(repo, commit, path in the commit) of a file whose bytes are a committed version's,
        for read-set recording (daemon/recorder.py); None for anything else."""
        ...

    def is_dynamic(self, ino: InodeNo) -> bool:
        """Whether the kernel must cache neither this directory's listing nor its missing
        names (they follow refs: a multi-version mount's own directories)."""
        ...

    def writable(self) -> WritableFsView | None:
        """The view's writable side (itself, typed for its writes); None: read-only."""
        ...


class WritableFsView(FsView, Protocol):
    """A view whose files change: what the writable FUSE adapter asks (daemon/fuse_write.py).

    Its reads and listings go by its own handles (`open`, `opendir`: pyfuse3 passes no inode
    to `read` or `readdir`); every change takes the `Caller` of its request, which reaches
    the view's policies (vfs/policy.py). One checkout's view is a `CheckoutFsView`; a mount
    of several versions with writable branches among them routes to several (vfs/mixed.py)."""

    def opendir(self, ino: InodeNo) -> int: ...

    def readdir(self, fh: int, offset: int) -> Iterator[tuple[bytes, Attr, int]]:
        """Entries of the directory open as `fh` after `offset`."""
        ...

    def releasedir(self, fh: int) -> None: ...

    async def read(self, fh: int, offset: int, size: int) -> bytes | memoryview: ...

    async def read_parts(self, fh: int, offset: int, size: int) -> list[memoryview]: ...

    async def open(self, ino: InodeNo, flags: int, caller: Caller | None = None) -> int: ...

    async def create(
        self, parent: InodeNo, name: bytes, mode: int, flags: int, caller: Caller | None = None
    ) -> tuple[int, Attr]: ...

    async def write(self, fh: int, offset: int, data: bytes) -> int: ...

    def release(self, fh: int) -> None: ...

    async def fsync(self, fh: int, datasync: bool) -> None: ...

    async def mkdir(
        self, parent: InodeNo, name: bytes, mode: int, caller: Caller | None = None
    ) -> Attr: ...

    async def symlink(
        self, parent: InodeNo, name: bytes, target: bytes, caller: Caller | None = None
    ) -> Attr: ...

    async def unlink(self, parent: InodeNo, name: bytes, caller: Caller | None = None) -> None: ...

    async def rmdir(self, parent: InodeNo, name: bytes, caller: Caller | None = None) -> None: ...

    async def rename(
        self, p_old: InodeNo, old: bytes, p_new: InodeNo, new: bytes, flags: int,
        caller: Caller | None = None,
    ) -> None: ...  # fmt: skip

    async def link(self, ino: InodeNo, parent: InodeNo, name: bytes) -> Attr: ...

    async def setattr(
        self,
        ino: InodeNo,
        *,
        mode: int | None = None,
        size: int | None = None,
        mtime_ns: int | None = None,
        atime_ns: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        caller: Caller | None = None,
    ) -> Attr: ...


class CheckoutFsView(WritableFsView, Protocol):
    """The writable view of one checkout (REPO@BRANCH): what the control socket's handlers ask
    (daemon/handlers.py) besides the FUSE operations. `ref` keys it on the socket; `inodes`
    is the range its numbers lie in (vfs/inodes.py), by which what a control op changed is
    named to the kernel. Each verb is the checkout's (vfs/checkout_ops.py, vfs/mountmerge.py)."""

    @property
    def ref(self) -> str: ...

    @property
    def repo(self) -> str: ...

    @property
    def branch(self) -> str: ...

    @property
    def store(self) -> Store: ...

    @property
    def mutability(self) -> Mutability: ...

    @property
    def inodes(self) -> InodeRange: ...

    async def commit(
        self,
        message: str,
        meta: dict[str, str],
        inputs: list[tuple[str, ObjectId]],
        dry_run: bool,
        author: str | None,
        hooks: HookOptions | None,
        caller: Caller | None,
    ) -> CommitOutcome:
        """Commit the overlay; the branch moves by compare-and-swap on the base."""
        ...

    async def status(self) -> StatusOutcome: ...

    async def restore(
        self, paths: Sequence[str], source: str, caller: Caller | None
    ) -> RestoreOutcome:
        """Put `paths` (none: all) back as `source` (a revspec; "": the base) has them."""
        ...

    async def unlock(self, paths: Sequence[str]) -> list[str]: ...

    async def merge(self, theirs: ObjectId | None, label: str, strategy: Strategy | None) -> Merged:
        """Merge `theirs` (None: the branch's head, an update) into the checkout."""
        ...

    async def resolve_conflicts(self, paths: list[bytes], side: str) -> Merged: ...

    async def abort_merge(self) -> Merged: ...

    def flush_base(self) -> None:
        """Record the inode numbers handed out to unchanged base entries."""
        ...
