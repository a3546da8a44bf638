"""Lookups, attributes, listings, reads and the policy checks of a writable view.

`OverlayBase` serves the read side of the FUSE operations over `OverlayState` (overlay_state.py)
and asks the policies before a change; `overlay.WritableView` adds the operations that change
the checkout.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable, Iterator

import trio

from mlgitfs.errors import FileErased, FsError, MlgitError, PathNotFound
from mlgitfs.model.ids import InodeNo, ObjectId
from mlgitfs.model.names import MAX_NAME
from mlgitfs.model.objects import TreeEntry
from mlgitfs.repo.trees import DirView, resolve_path
from mlgitfs.vfs.nodes import TYPE_BITS, Node
from mlgitfs.vfs.overlay_state import Handle, OverlayState
from mlgitfs.vfs.policy import Change
from mlgitfs.vfs.reader import explained, refused
from mlgitfs.vfs.types import ROOT_INODE, Attr, Caller, Kind, StatFs

log = logging.getLogger(__name__)

# A stat of a directory with more base entries than this, not listed since the mount, reports
# link count 1 ("not counted", as ext4 does past 65,000 subdirectories) instead of scanning
# its listing: `ls -l` of 1,000 class directories would otherwise read every one of them.
COUNT_LIMIT = 1_000
MAX_REFUSED = 1000  # refusals kept for the next status; more are only counted


class OverlayBase(OverlayState):
    """The read side and the policy gate of one checkout (repo@branch)."""

    # --- attributes -------------------------------------------------------------------------

    def subdirs(self, d: Node) -> int | None:
        """How many subdirectories d lists (counted once or by a listing, then kept until d
        changes); None for a directory too large to count on a stat (COUNT_LIMIT)."""
        if d.subdirs is not None:
            return d.subdirs
        n = 0
        if d.base is not None:
            try:
                view = DirView(self.store, ObjectId(d.base.ref))
                if view.count() > COUNT_LIMIT:
                    return None
                n = sum(1 for e in view.entries() if e.is_dir and e.name not in d.whiteouts
                        and e.name not in d.overrides)  # fmt: skip
            except MlgitError as exc:
                raise FsError(errno.EIO, str(exc)) from exc
        n += sum(1 for name in d.overrides if self.nodes[d.children[name]].kind is Kind.DIR)
        d.subdirs = n
        return n

    def attr(self, node: Node) -> Attr:
        mode = TYPE_BITS[node.kind] | (0o777 if node.kind is Kind.SYMLINK else node.mode)
        if node.kind is Kind.DIR:
            # As ext4: 2 + subdirectories; 1 ("not counted", as ext4 past 65,000) when too big.
            sub = self.subdirs(node)
            size, nlink = 0, (1 if sub is None else 2 + sub)
        elif node.kind is Kind.SYMLINK:
            size, nlink = len(self.readlink(InodeNo(node.ino))), 1
        else:
            size, nlink = node.size, 1
        if node.unlinked:
            nlink = 0
        return Attr(InodeNo(node.ino), node.kind, mode, size, node.mtime_ns, nlink,
                    self.uid, self.gid, node.atime_ns or node.mtime_ns,
                    max(node.ctime_ns, node.mtime_ns))  # fmt: skip

    def getattr(self, ino: InodeNo) -> Attr:
        return self.attr(self.node(ino))

    def lookup(self, parent: InodeNo, name: bytes) -> Attr:
        d = self.dir(parent)
        if name == b".":
            return self.attr(d)
        if name == b"..":
            return self.attr(self.nodes[d.parent or ROOT_INODE])
        node = self.find(d, name)
        if node is None:
            raise FsError(errno.ENOENT)
        return self.attr(node)

    def readlink(self, ino: InodeNo) -> bytes:
        node = self.node(ino)
        if node.kind is not Kind.SYMLINK:
            raise FsError(errno.EINVAL)
        if node.target:
            return node.target
        assert node.base is not None
        return node.base.ref

    def forget(self, items: Iterable[tuple[InodeNo, int]]) -> None:
        """Kept: a writable view's nodes carry the overlay's state and the inode numbers
        recorded for the checkout; letting go of unchanged base nodes is not built yet, so a
        branch mount holds every node it has shown (about 1 KiB each)."""

    def is_dynamic(self, ino: InodeNo) -> bool:
        return False  # every change goes through this view: the kernel's caches are told

    def statfs(self) -> StatFs:
        st = os.statvfs(self.files)
        return StatFs(st.f_frsize, st.f_blocks, st.f_bavail, st.f_files, st.f_favail, MAX_NAME)

    # --- directories --------------------------------------------------------------------------

    def opendir(self, ino: InodeNo) -> int:
        self.dir(ino)
        fh = self._next_fh
        self._next_fh += 1
        self._dir_handles[fh] = (ino, [])
        return fh

    def readdir(self, fh: int, offset: int) -> Iterator[tuple[bytes, Attr, int]]:
        """Entries of an open directory; the listing is taken when the first batch is read."""
        ino, listing = self._dir_handles.get(fh) or (fh, [])
        if offset == 0 or fh not in self._dir_handles:
            listing = list(self.child_names(self.dir(ino)))
            self._dir_handles[fh] = (ino, listing)
        for i in range(offset, len(listing)):
            name, child = listing[i]
            node = self.nodes.get(child)
            # Skip what was removed or renamed since: a stale name would become a dentry.
            if node is None or node.parent != ino or node.name != name:
                continue
            yield name, self.attr(node), i + 1

    def releasedir(self, fh: int) -> None:
        self._dir_handles.pop(fh, None)

    # --- reads --------------------------------------------------------------------------------

    def handle(self, fh: int) -> tuple[Handle, Node]:
        h = self._handles.get(fh)
        if h is None:
            raise FsError(errno.EBADF)
        return h, self.nodes[h.ino]

    def fd(self, node: Node) -> int:
        if node.fd < 0:
            node.fd = self.io.open(node.ino, os.O_RDWR)
        return node.fd

    async def read(self, fh: int, offset: int, size: int) -> bytes | memoryview:
        _, node = self.handle(fh)
        if node.overlay:
            fd = self.fd(node)
            if size > 256 << 10:
                return await trio.to_thread.run_sync(os.pread, fd, size, offset)
            return os.pread(fd, size, offset)
        parts = await self.read_parts(fh, offset, size)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def read_parts(self, fh: int, offset: int, size: int) -> list[memoryview]:
        """The same bytes as `read`; base content as views of its chunks (no join)."""
        _, node = self.handle(fh)
        if node.overlay:
            return [memoryview(await self.read(fh, offset, size))]
        if node.base is None:
            return []
        base = node.base
        if node.read is None:  # judged once per file read
            self.judge(node, base)
        try:
            return await self.reader.read_parts(node, offset, size)
        except FsError as exc:  # an erased or expired file: the log says why, as read-only
            shown = self.path_of(node).decode("utf-8", "surrogateescape")
            commit = ObjectId(self.record.base)
            err = explained(exc, self.store, self.repo, commit, shown, bytes(base.ref))
            raise err from exc.__cause__

    def judge(self, node: Node, base: TreeEntry) -> None:
        """EIO, logged with the erasure, when the node's base content is an erased occurrence:
        the base commit's file at the path the node had there (erasegate.py; a path not
        known: any path with that file id), even when its bytes are here."""
        commit = bytes(self.record.base)
        try:
            self.erasures.check(self.repo, commit, self.base_path(node), bytes(base.ref))
        except FileErased as err:
            raise refused(err, os.fsdecode(self.path_of(node))) from err

    # --- policies -----------------------------------------------------------------------------

    def committed_file(self, path: bytes) -> TreeEntry | None:
        """The base commit's entry at `path` when it is a regular file there, else None."""
        if not path:
            return None
        try:
            entry = resolve_path(self.store, self.base_tree(), path.split(b"/"))
        except PathNotFound:
            return None
        except MlgitError as exc:
            raise FsError(errno.EIO, str(exc)) from exc
        return entry if entry is not None and entry.is_file else None

    def check(self, op: str, path: bytes, replaces: bool, caller: Caller | None = None) -> None:
        """Ask the policies; a refusal is recorded for `status`, logged and raised as FsError."""
        shown = path.decode("utf-8", "surrogateescape")
        refusal = self.policy.check(Change(op, shown, replaces, caller))
        if refusal is None:
            return
        log.debug("refused %s of %s: %s", op, shown, refusal.reason)
        if len(self.refused) < MAX_REFUSED:
            self.refused.append((op, shown, refusal.reason))
        else:
            self.refused_dropped += 1
        raise FsError(refusal.errno, refusal.reason)

    def check_content(self, op: str, node: Node, caller: Caller | None = None) -> None:
        """Before a change of a file's bytes (open for writing, write, truncate).

        Only a file still holding committed bytes can be a committed path's content here: an
        overlay file got its place through a create or rename that was asked already (what no
        system call showed, a directory renamed over a committed one, the commit refuses)."""
        if node.kind is not Kind.FILE or node.unlinked:
            return
        path = self.path_of(node)
        replaces = not node.overlay and self.committed_file(path) is not None
        self.check(op, path, replaces, caller)

    def take_refused(self) -> tuple[list[tuple[str, str, str]], int]:
        """The refusals since the last call (op, path, reason) and how many did not fit."""
        out, dropped = self.refused, self.refused_dropped
        self.refused, self.refused_dropped = [], 0
        return out, dropped
