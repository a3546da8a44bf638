"""Loading a checkout's recorded state when a view of it opens (a mount, or a remount after
a crash): its nodes from the inode table, the deltas that place them in their parents'
listings, and the paths unlocked until the next commit.

What a crash left half done is settled here (docs/overlay.md, crash states): an overlay
file a record names but that is missing is served empty, a delta that names an unknown inode
is dropped, and an overlay file no record names is deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os

from mlgitfs.meta.checkouts import INO_BLOCK, CheckoutRecord, InodeTable, put_checkout
from mlgitfs.meta.env import Transactions
from mlgitfs.vfs.nodes import Node
from mlgitfs.vfs.overlay_files import OverlayFiles
from mlgitfs.vfs.types import ROOT_INODE

log = logging.getLogger(__name__)


def load_checkout(
    meta: Transactions,
    repo: str,
    branch: str,
    record: CheckoutRecord,
    table: InodeTable,
    io: OverlayFiles,
    nodes: dict[int, Node],
) -> set[bytes]:
    """Add the checkout's recorded nodes to `nodes` (which holds its root) and return the
    paths unlocked. First reserves a fresh block of inode numbers past `record.ino_hwm`:
    none handed out before a crash is reused."""
    with meta.write() as txn:
        record.ino_hwm += INO_BLOCK
        put_checkout(txn, repo, branch, record)
        records = table.nodes(txn)
        deltas = table.deltas(txn)
        unlocked = table.unlocked(txn)
    for rec in records:
        if rec.ino == ROOT_INODE:
            continue
        node = Node(rec.ino, rec.kind, rec.mode, rec.mtime_ns, rec.parent, rec.name, None)
        node.set_base(rec.base)
        node.overlay, node.target, node.origin, node.recorded = (
            rec.overlay, rec.target, rec.origin, True
        )  # fmt: skip
        node.ctime_ns, node.atime_ns = rec.ctime_ns, rec.atime_ns
        if node.overlay:
            try:
                st = os.stat(io.path(node.ino))
                node.size, node.mtime_ns = st.st_size, st.st_mtime_ns
                # Writes move ctime without a record: at least the last write's time.
                node.ctime_ns = max(node.ctime_ns, st.st_mtime_ns)
            except FileNotFoundError:
                log.error("overlay file of inode %d is missing: serving it empty", rec.ino)
                os.close(io.open(node.ino, os.O_WRONLY | os.O_CREAT))
        nodes[rec.ino] = node
    for parent, name, ino in deltas:
        p = nodes.get(parent)
        if p is None or (ino and ino not in nodes):
            log.error("dropping a dangling overlay entry %r of inode %d", name, parent)
            continue
        p.overrides.add(name) if ino else p.whiteouts.add(name)
        if ino:
            p.children[name] = ino
    collect_orphans(io, nodes)
    return unlocked


def collect_orphans(io: OverlayFiles, nodes: dict[int, Node]) -> None:
    """Overlay files no record names (unlinked while open, or a crash mid-way): delete."""
    for entry in os.scandir(io.root):
        ino = int(entry.name) if entry.name.isdigit() else -1
        node = nodes.get(ino)
        if node is None or not node.overlay:
            log.info("removing orphan overlay file %s", entry.name)
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
