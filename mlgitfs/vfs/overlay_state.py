"""The state of a writable view: inodes, persistence and the namespace helpers.

`OverlayState` holds what a checkout is in memory and how it is recorded (checkout.py has the
LMDB layout); `overlay_base.OverlayBase` serves lookups, listings and reads over it and asks
the policies; `overlay.WritableView` adds the operations that change it. See overlay.py's
docstring for the materialization rules and docs/overlay.md for crash states.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from mlgitfs.errors import FsError, MlgitError, StoreFull
from mlgitfs.meta.checkouts import INO_BLOCK, CheckoutRecord, InodeTable, NodeRecord, put_checkout
from mlgitfs.meta.db import Mutability
from mlgitfs.meta.env import Transactions, WriteTxn
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.names import MAX_NAME
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.erasegate import ErasureGate
from mlgitfs.repo.trees import DirView
from mlgitfs.store.facade import Store
from mlgitfs.vfs.checkout import CheckoutLock
from mlgitfs.vfs.gate import WriteGate
from mlgitfs.vfs.hashcache import RefCache
from mlgitfs.vfs.inodes import InodeRange, InodeSpace
from mlgitfs.vfs.journal import Batch
from mlgitfs.vfs.nodes import KIND_OF_ENTRY, BaseReader, Node
from mlgitfs.vfs.overlay_files import OverlayFiles
from mlgitfs.vfs.overlay_load import load_checkout
from mlgitfs.vfs.policy import Policies
from mlgitfs.vfs.types import ROOT_INODE, Caller, Kind

log = logging.getLogger(__name__)

# Inode numbers of unchanged base entries are written with the next namespace transaction, at
# commit and unmount, or when this many wait: a walk of a large tree costs few transactions.
BASE_FLUSH = 65536


@dataclass(slots=True)
class Handle:
    ino: int
    write: bool
    caller: Caller | None = None  # who opened it: a write's policy check asks for them


def now_ns() -> int:
    return time.time_ns()


class OverlayState:
    """The in-memory and recorded state of one checkout (repo@branch): its nodes, their
    records and the namespace helpers every operation builds on."""

    def __init__(
        self,
        store: Store,
        repo: str,
        branch: str,
        record: CheckoutRecord,
        overlay: Path,
        *,
        mutability: Mutability,
        base_tree: ObjectId,
        base_time_ns: int,
        cache_bytes: int = 256 << 20,
        uid: int | None = None,
        gid: int | None = None,
        lock: CheckoutLock | None = None,
        files: OverlayFiles | None = None,
        meta: Transactions | None = None,
        policy: Policies,
        unlocked: set[bytes],
        inodes: InodeRange | None = None,
    ) -> None:
        """`policy`: the mount's policies (vfs/mountpolicy.py), made by the view's factory;
        `unlocked`: the set of unlocked paths the view keeps and its mutability policy reads
        (filled from the checkout's record here). `inodes`: the range of the daemon's inode
        numbers (vfs/inodes.py) the checkout's recorded numbers stay in; None: the first
        range of a space of its own."""
        self.store = store
        self.inodes = InodeSpace().take() if inodes is None else inodes
        self.lock = lock  # released by close()
        self.repo = repo
        self.branch = branch
        self.record = record
        self.table = InodeTable(record.id)
        self.overlay = overlay
        # The seams a fault test replaces: overlay file operations and record transactions.
        self.io = files if files is not None else OverlayFiles(overlay / "files")
        self.files = self.io.root
        self.meta: Transactions = meta if meta is not None else store.env
        self.mutability = mutability
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.reader = BaseReader(store, cache_bytes)
        self.erasures = ErasureGate(store.env)  # base files are judged by occurrence
        self.refs = RefCache(self.files, store.params)  # hashes of overlay files, for status
        root_entry = TreeEntry(b"", EntryKind.DIR, 0o755, 0, base_time_ns, bytes(base_tree))
        root = Node(ROOT_INODE, Kind.DIR, 0o755, base_time_ns, 0, b"", root_entry)
        root.origin = b""
        self.nodes: dict[int, Node] = {ROOT_INODE: root}
        # Paths unlocked (flexible) until the next commit: one set, which the view changes
        # (unlock, commit) and its mutability policy reads.
        self.unlocked = unlocked
        # Asked at every change and at commit, with the caller (vfs/policy.py).
        self.policy = policy
        self.refused: list[tuple[str, str, str]] = []  # since the last status
        self.refused_dropped = 0
        self._next_ino = record.ino_hwm
        self._pending_base: list[tuple[int, bytes, int]] = []
        self._handles: dict[int, Handle] = {}
        self._next_fh = 1
        self._dir_handles: dict[int, tuple[int, list[tuple[bytes, int]]]] = {}
        self.gate = WriteGate()
        self.exclusive = self.gate.exclusive  # one commit or restore at a time
        self.io_limiter = trio.CapacityLimiter(4)
        loaded = load_checkout(self.meta, repo, branch, record, self.table, self.io, self.nodes)
        self.unlocked.clear()  # in place: the view's mutability policy reads this set
        self.unlocked.update(loaded)

    @property
    def ref(self) -> str:
        """REPO@BRANCH: the view's key on the control socket."""
        return f"{self.repo}@{self.branch}"

    def base_tree(self) -> ObjectId:
        """The tree of the base commit (the root's tree until a restore changes it)."""
        return self.store.commit(self.record.base).tree

    def resolve(self, parts: list[bytes]) -> Node | None:
        node = self.nodes[ROOT_INODE]
        for part in parts:
            if node.kind is not Kind.DIR:
                return None
            found = self.find(node, part)
            if found is None:
                return None
            node = found
        return node

    def attach(self, nursery: trio.Nursery) -> None:
        self.reader.attach(nursery)

    def close(self) -> None:
        with contextlib.suppress(MlgitError):
            self.flush_base()
        for node in self.nodes.values():
            if node.fd >= 0:
                os.close(node.fd)
                node.fd = -1
        if self.lock is not None:
            self.lock.release()

    # --- the gate (gate.py) -------------------------------------------------------------------

    def mutating(self) -> AbstractAsyncContextManager[None]:
        return self.gate.mutating()

    def frozen(self) -> AbstractAsyncContextManager[None]:
        """Writes wait while the block runs; entered once the ones in flight are done."""
        return self.gate.frozen()

    # --- inode numbers and persistence --------------------------------------------------------

    def alloc(self) -> int:
        """A new inode number: the checkout's own counter (recorded), within its range."""
        if self._next_ino >= self.inodes.size:
            raise FsError(errno.ENOSPC, f"the checkout used all {self.inodes.size} inode numbers")
        if self._next_ino >= self.record.ino_hwm:
            with self.meta.write() as txn:
                self.record.ino_hwm = self._next_ino + INO_BLOCK
                put_checkout(txn, self.repo, self.branch, self.record)
        ino = self._next_ino
        self._next_ino += 1
        return ino

    def flush_base(self) -> None:
        if self._pending_base:
            with self.meta.write() as txn:
                self._write_base(txn)
            self._pending_base = []

    def _write_base(self, txn: WriteTxn) -> None:
        # Event loop only: _adopt appends to the list from there too. The caller empties the
        # list once the transaction committed (a failed one keeps them for the next).
        for parent, name, ino in self._pending_base:
            self.table.put_base_ino(txn, parent, name, ino)

    def node_record(self, n: Node) -> NodeRecord:
        return NodeRecord(
            n.ino, n.kind, n.mode, n.mtime_ns, n.parent, n.name, n.overlay, n.base, n.target,
            n.origin, n.ctime_ns, n.atime_ns,
        )  # fmt: skip

    @contextmanager
    def change(self) -> Iterator[Batch]:
        """One namespace operation: the block changes memory through the batch it gets; its
        records are then written in one transaction. If the block or the transaction fails,
        memory is rolled back and nothing on disk changed; file deletions the batch asked
        for (`after`) happen only once the records are durable. No checkpoint inside."""
        batch = Batch()
        try:
            yield batch
            if not batch.empty():
                self.apply(batch)
        except BaseException:
            batch.rollback()
            raise
        for action in batch.after:
            action()

    def apply(self, batch: Batch) -> None:
        """Write one operation's records in one transaction (after its overlay data)."""
        try:
            with self.meta.write() as txn:
                self._write_base(txn)
                for ino in batch.drop_nodes:
                    self.table.del_node(txn, ino)
                for n in batch.nodes.values():
                    if n.recorded:
                        self.table.put_node(txn, self.node_record(n))
                for parent, name in batch.undeltas:
                    self.table.del_delta(txn, parent, name)
                for (parent, name), ino in batch.deltas.items():
                    self.table.put_delta(txn, parent, name, ino)
                for write in batch.also:
                    write(txn)
            self._pending_base = []
        except MlgitError as exc:
            log.error("cannot record an overlay change: %s", exc)
            raise FsError(errno.ENOSPC if isinstance(exc, StoreFull) else errno.EIO,
                          str(exc)) from exc  # fmt: skip

    # --- namespace helpers --------------------------------------------------------------------

    def node(self, ino: int) -> Node:
        node = self.nodes.get(ino)
        if node is None:
            raise FsError(errno.ENOENT, f"inode {ino} is unknown")
        return node

    def dir(self, ino: int) -> Node:
        node = self.node(ino)
        if node.kind is not Kind.DIR:
            raise FsError(errno.ENOTDIR)
        if node.unlinked:
            raise FsError(errno.ENOENT)
        return node

    def path_of(self, node: Node) -> bytes:
        parts = []
        while node.ino != ROOT_INODE:
            if node.parent == 0:
                return b""
            parts.append(node.name)
            node = self.nodes[node.parent]
        return b"/".join(reversed(parts))

    def origin(self, ino: int) -> tuple[str, bytes, str] | None:
        """(repo, base commit, path there) of a file whose content is still the base
        commit's, for read-set recording (daemon/recorder.py); None for a file the overlay
        holds (its content is in no commit yet), a directory or an unknown inode."""
        node = self.nodes.get(ino)
        if node is None or node.kind is not Kind.FILE or node.overlay or node.base is None:
            return None
        path = self.base_path(node)
        if path is None:
            return None
        return self.repo, bytes(self.record.base), os.fsdecode(path)

    def base_path(self, node: Node) -> bytes | None:
        """The path this node had in the base commit, or None if it did not come from it."""
        names: list[bytes] = []  # up to the nearest node whose base path is known
        while node.ino != ROOT_INODE and not (node.recorded or node.parent == 0):
            names.append(node.name)
            node = self.nodes[node.parent]
        top = b"" if node.ino == ROOT_INODE else node.origin
        if top is None:
            return None
        return b"/".join([top, *reversed(names)] if top else reversed(names))

    def base_entry(self, d: Node, name: bytes) -> TreeEntry | None:
        """The entry `name` of d's base tree (whatever the delta says), or None."""
        return self._base_lookup(d, name)

    def _base_lookup(self, d: Node, name: bytes) -> TreeEntry | None:
        if d.base is None:
            return None
        try:
            return DirView(self.store, ObjectId(d.base.ref)).lookup(name)
        except MlgitError as exc:
            log.error("cannot read directory %r: %s", self.path_of(d), exc)
            raise FsError(errno.EIO, str(exc)) from exc

    def _adopt(self, d: Node, entry: TreeEntry, known: dict[bytes, int] | None = None) -> Node:
        """A node for an unchanged base entry, with its inode number from the table if any."""
        if known is not None:
            ino = known.get(entry.name)
        else:
            with self.store.env.read() as txn:
                ino = self.table.base_ino(txn, d.ino, entry.name)
        if ino is None or ino in self.nodes:
            ino = self.alloc()
            self._pending_base.append((d.ino, entry.name, ino))
            if len(self._pending_base) >= BASE_FLUSH:
                self.flush_base()
        node = Node(ino, KIND_OF_ENTRY[entry.kind], entry.mode, entry.mtime_ns, d.ino, entry.name,
                    None)  # fmt: skip
        node.set_base(entry)
        self.nodes[ino] = node
        d.children[entry.name] = ino
        return node

    def find(self, d: Node, name: bytes) -> Node | None:
        ino = d.children.get(name)
        if ino is not None:
            return self.nodes[ino]
        if len(name) > MAX_NAME:
            raise FsError(errno.ENAMETOOLONG)
        if name in d.whiteouts:
            return None
        entry = self._base_lookup(d, name)
        return None if entry is None else self._adopt(d, entry)

    def child_names(self, d: Node) -> Iterator[tuple[bytes, int]]:
        """The merged listing of a directory, in name order."""
        merged: dict[bytes, int] = {}
        if d.base is not None:
            try:
                entries = list(DirView(self.store, ObjectId(d.base.ref)).entries())
            except MlgitError as exc:
                raise FsError(errno.EIO, str(exc)) from exc
            known = None
            if len(entries) > len(d.children) + 8:
                # One scan for the numbers of this directory's entries, not one read each.
                with self.store.env.read() as txn:
                    known = self.table.base_inos(txn, d.ino)
            for e in entries:
                if e.name in d.whiteouts:
                    continue
                ino = d.children.get(e.name)
                merged[e.name] = ino if ino is not None else self._adopt(d, e, known).ino
        for name, ino in d.children.items():
            merged.setdefault(name, ino)
        # The link count comes free with a listing (stats of big directories wait for it).
        d.subdirs = sum(1 for ino in merged.values() if self.nodes[ino].kind is Kind.DIR)
        for name in sorted(merged):
            yield name, merged[name]

    def is_empty(self, d: Node) -> bool:
        if d.children:
            return False
        if d.base is None:
            return True
        try:
            entries = DirView(self.store, ObjectId(d.base.ref)).entries()
            return all(e.name in d.whiteouts for e in entries)
        except MlgitError as exc:
            raise FsError(errno.EIO, str(exc)) from exc

    def materialize(self, node: Node, batch: Batch) -> None:
        """Record the node and every ancestor not yet recorded (their parents' deltas too)."""
        batch.nodes[node.ino] = node
        while node.ino != ROOT_INODE and not node.recorded:
            batch.save(node)
            node.origin = self.base_path(node)
            node.recorded = True
            batch.nodes[node.ino] = node
            parent = self.nodes[node.parent]
            batch.add(parent.overrides, node.name)
            batch.delta(parent.ino, node.name, node.ino)
            node = parent

    def unlink_name(self, d: Node, name: bytes, batch: Batch) -> None:
        """Remove `name` from d's listing (whiteout if the base has it)."""
        self._count_subdirs(d, d.children.get(name), None, batch)
        batch.pop(d.children, name)
        batch.discard(d.overrides, name)
        if self._base_lookup(d, name) is not None:
            batch.add(d.whiteouts, name)
            batch.delta(d.ino, name, 0)
        else:
            batch.undelta(d.ino, name)

    def _count_subdirs(self, d: Node, old: int | None, new: Node | None, batch: Batch) -> None:
        """Keep d's subdirectory count when the inode at one of its names changes from `old`
        (None: not known here) to `new` (None: removed)."""
        if d.subdirs is None:
            return
        if old is None and new is None:
            d.subdirs = None  # an entry never looked up: count again when asked
            return
        if old is not None and self.nodes[old].kind is Kind.DIR:
            d.subdirs -= 1
        if new is not None and new.kind is Kind.DIR:
            d.subdirs += 1
        batch.undo(lambda: setattr(d, "subdirs", None))

    def link_name(self, d: Node, name: bytes, node: Node, batch: Batch) -> None:
        batch.save(node)
        self._count_subdirs(d, d.children.get(name), node, batch)
        node.parent, node.name = d.ino, name
        batch.put(d.children, name, node.ino)
        batch.discard(d.whiteouts, name)
        batch.add(d.overrides, name)
        node.recorded = True
        batch.nodes[node.ino] = node
        batch.delta(d.ino, name, node.ino)
        self.touch_dir(d, batch)

    def touch_dir(self, d: Node, batch: Batch) -> None:
        batch.save(d)
        d.mtime_ns = d.ctime_ns = now_ns()
        self.materialize(d, batch)

    def orphan(self, node: Node, batch: Batch) -> None:
        """The node left the namespace: its record goes; open handles keep its data (deleted
        once the records are durable, or at the last release)."""
        batch.save(node)
        node.parent = 0
        node.ctime_ns = now_ns()  # its link count changed
        if node.recorded:
            node.recorded = False
            batch.drop_nodes.add(node.ino)
            batch.nodes.pop(node.ino, None)
        for name in node.whiteouts | node.overrides:
            batch.undelta(node.ino, name)
        if node.handles == 0:
            batch.after.append(lambda: self.drop_data(node))

    def drop_data(self, node: Node) -> None:
        """Delete an unlinked node's overlay file (its records are already gone)."""
        if node.fd >= 0:
            os.close(node.fd)
            node.fd = -1
        if node.overlay and node.unlinked and node.handles == 0:
            node.overlay = False
            self.io.discard(node.ino)  # an error is logged: the next mount deletes it
