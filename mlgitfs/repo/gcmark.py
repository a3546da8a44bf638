"""gc's mark: every object and chunk reachable from the roots, by an iterative walk.

Commits lead to their parents, inputs and tree; trees and tree indexes to their entries and
pages; a file to its chunk or manifest, a manifest to its chunks. An *expired* commit (its
contents given up by retention) keeps its history, trees and manifests (names, sizes: log,
diff and lineage still work) but not its files' chunks, unless a live commit reaches them
too. Memory is two sets of 32-byte ids (objects, chunks) plus the walk's stack; nothing is
decoded twice in the same mode (a tree met first as an expired version's, then as a live
one's, is walked again with its files). The walk reads objects through the one read
transaction it is given, so it marks one snapshot; `Marker.mark` may be called again with a
later transaction to extend the marked sets from new roots (gc's sweep does, under the
write lock), stopping wherever it meets what is marked already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mlgitfs.errors import CorruptObject
from mlgitfs.meta import checkouts, db, mergestate
from mlgitfs.meta.env import ReadTxn
from mlgitfs.meta.roots import GcRoots
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import Commit, EntryKind, Manifest, Tree, TreeEntry, TreeIndex
from mlgitfs.store import remotedb
from mlgitfs.store.packs import META


@dataclass
class Marker:
    """The marked sets, grown by each `mark` call."""

    objects: set[bytes] = field(default_factory=set)  # kept whole or as metadata
    chunks: set[bytes] = field(default_factory=set)
    _full: set[bytes] = field(default_factory=set)  # trees walked with their files
    remote_only: int = 0  # reachable objects not local but on a remote (not walked)
    # file ids of erased occurrences (meta/erasures.py): their contents are not marked from
    # the trees (as an expired version's are not); `kept` marks the ones still needed
    erased: frozenset[bytes] = frozenset()

    def mark(
        self,
        txn: ReadTxn,
        commits: Iterable[bytes],
        entries: Iterable[TreeEntry] = (),
        expired: frozenset[bytes] = frozenset(),
        trees: Iterable[bytes] = (),
        kept: Iterable[TreeEntry] = (),
    ) -> None:
        """Mark from `commits`, loose tree `entries` (a checkout's overlay records),
        `trees` (with their files: a commit no longer expired) and `kept` (files whose ids
        were erased somewhere that a file not erased still needs: repo/erase.py).
        Raises CorruptObject when a reachable object is neither local nor on a remote:
        gc must not sweep a store it cannot see whole (fsck says what is wrong)."""

        def load(oid: bytes) -> bytes | None:
            data = db.get_object_bytes(txn, ObjectId(oid))
            if data is None:
                if not remotedb.on_any_remote(txn, META, oid):
                    raise CorruptObject(
                        short_hex(oid),
                        "reachable but missing: gc changed nothing; run 'mlgitfs fsck'",
                    )
                self.remote_only += 1
            return data

        self.walk(load, commits, entries, expired, trees, kept)

    def walk(
        self,
        load: Callable[[bytes], bytes | None],
        commits: Iterable[bytes],
        entries: Iterable[TreeEntry] = (),
        expired: frozenset[bytes] = frozenset(),
        trees: Iterable[bytes] = (),
        kept: Iterable[TreeEntry] = (),
    ) -> None:
        """`mark` with objects read by `load` (remote gc reads a remote's packs): it gives
        an object's bytes, or None for one reached but not walked (only on a remote), or
        raises for one that should be there."""
        stack: list[tuple[bytes, bool]] = [(bytes(c), True) for c in commits]
        stack.extend((bytes(t), True) for t in trees)
        for e in entries:
            self._entry(e, True, stack)
        for e in kept:
            self._entry(e, True, stack, force=True)
        while stack:
            oid, full = stack.pop()
            if oid in self._full or (not full and oid in self.objects):
                continue
            data = load(oid)
            if data is None:
                self.objects.add(oid)
                self._full.add(oid)
                continue
            self.objects.add(oid)
            obj = decode(data, oid)
            if isinstance(obj, Commit):
                self._full.add(oid)  # a commit's own mode comes from `expired`, not its child
                whole = oid not in expired
                stack.append((bytes(obj.tree), whole))
                stack.extend((bytes(p), True) for p in obj.parents)
                stack.extend((bytes(i), True) for _, i in obj.inputs)
            elif isinstance(obj, Tree):
                if full:
                    self._full.add(oid)
                for e in obj.entries:
                    self._entry(e, full, stack)
            elif isinstance(obj, TreeIndex):
                if full:
                    self._full.add(oid)
                stack.extend((bytes(p.page), full) for p in obj.pages)
            elif isinstance(obj, Manifest) and full:
                self._full.add(oid)
                self.chunks.update(bytes(c.id) for c in obj.chunks)

    def partial(self) -> set[bytes]:
        """Trees, tree indexes and manifests marked for their metadata only (reached only
        from expired versions): some of their files' chunks may be gone."""
        return self.objects - self._full

    def _entry(
        self, e: TreeEntry, full: bool, stack: list[tuple[bytes, bool]], force: bool = False
    ) -> None:
        if self.erased and full and not force and e.ref in self.erased:
            full = False  # an erased file keeps its manifest, not its chunks (ids: files')
        if e.kind in (EntryKind.DIR, EntryKind.CHUNKED):
            stack.append((bytes(e.ref), full))  # an expired file keeps its manifest
        elif e.kind is EntryKind.FILE and full:
            self.chunks.add(bytes(e.ref))


def overlay_entries(txn: ReadTxn) -> list[TreeEntry]:
    """The store entries the checkouts' overlays name (a node's base entry: a file or
    directory restored from another commit, a renamed one): live while the overlay is."""
    out: list[TreeEntry] = []
    for _, _, rec in checkouts.list_checkouts(txn):
        out.extend(n.base for n in checkouts.InodeTable(rec.id).nodes(txn) if n.base is not None)
    for _, state in mergestate.list_states(txn):
        # a merge in progress in a mount: the stash abort restores from, the merged tree,
        # and the sides of its conflicts (resolve and `conflicts --side` read them)
        for tree in (state.ours_tree, state.merged_tree):
            out.append(TreeEntry(b"", EntryKind.DIR, 0o755, 0, 0, bytes(tree)))
        out.extend(e for c in state.conflicts for e in (c.base, c.ours, c.theirs) if e)
    return out


def mark_roots(
    marker: Marker, txn: ReadTxn, roots: GcRoots, expired: frozenset[bytes] = frozenset()
) -> None:
    """Mark everything `roots`' commits (read in `txn`) and the overlays keep. Pinned chunks
    are not marked for being pinned: a pin says that no remote has the chunk, not that
    anything needs it, and a chunk is pinned in the transaction of the commit that names
    it, so a pin never comes before what keeps its chunk live (a deleted branch's unpushed
    chunks are garbage like the rest; gc unpins what it sweeps)."""
    commits = [bytes(c) for c in roots.commits]
    marker.mark(txn, commits, overlay_entries(txn), expired)
