"""fsck: every object reachable from every ref is present, hashes to its id and is valid.

Each object and chunk is checked once however many commits share it; damage is reported
with the object, the reason and the first path (repo@commit:path) that reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mlgitfs.errors import CorruptObject
from mlgitfs.meta import db
from mlgitfs.model.ids import ChunkId, ObjectId, short_hex
from mlgitfs.model.objects import Commit, EntryKind, Manifest, Tree, TreeIndex
from mlgitfs.repo.store import Store


@dataclass(frozen=True, slots=True)
class Damage:
    object: str  # short hex of the damaged object or chunk, or the ref
    reason: str
    path: str  # repo@commit:path that reaches it


@dataclass
class FsckReport:
    repos: int = 0
    commits: int = 0
    trees: int = 0
    files: int = 0
    chunks: int = 0
    bytes: int = 0
    remote_chunks: int = 0  # not in the local cache; on a remote
    damage: list[Damage] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.damage


class _Checker:
    def __init__(
        self,
        store: Store,
        report: FsckReport,
        progress: Callable[[int], None] | None,
        check_remote: bool,
    ) -> None:
        self.store = store
        self.check_remote = check_remote
        with store.env.read() as txn:
            self.has_remotes = txn.count("remotes") > 0
        self.report = report
        self.progress = progress
        self.seen: set[bytes] = set()
        self.bad: dict[bytes, str] = {}

    def damage(self, oid: bytes, reason: str, path: str) -> None:
        self.report.damage.append(Damage(short_hex(oid), reason, path))

    def load(self, oid: bytes, path: str) -> object | None:
        """The decoded object, or None after reporting it (once per path that reaches it)."""
        if oid in self.bad:
            self.damage(oid, self.bad[oid], path)
            return None
        try:
            return self.store.get_object(ObjectId(oid))
        except CorruptObject as exc:
            self.bad[oid] = exc.reason
            self.damage(oid, exc.reason, path)
            return None

    def chunk(self, cid: bytes, length: int, path: str) -> None:
        if cid in self.seen:
            if cid in self.bad:
                self.damage(cid, self.bad[cid], path)
            return
        self.seen.add(cid)
        if self.has_remotes and not self.store.chunks.has(ChunkId(cid)):
            # Not in the local cache of a store with remotes: pushed or cloned, fetched on
            # demand and checked then (or here with `fsck --remote`), not damage.
            self.report.remote_chunks += 1
            if not self.check_remote:
                return
        try:
            data = self.store.read_chunk(ChunkId(cid))
            if len(data) != length:
                raise CorruptObject(
                    short_hex(cid), f"chunk has {len(data)} bytes, expected {length}"
                )
        except CorruptObject as exc:
            self.bad[cid] = exc.reason
            self.damage(cid, exc.reason, path)
            return
        self.report.chunks += 1
        self.report.bytes += length
        if self.progress:
            self.progress(self.report.chunks)

    def tree(self, oid: bytes, path: str) -> None:
        if oid in self.seen and oid not in self.bad:
            return
        self.seen.add(oid)
        obj = self.load(oid, path)
        if obj is None:
            return
        if isinstance(obj, TreeIndex):
            for p in obj.pages:
                self.tree(bytes(p.page), path)
            return
        if not isinstance(obj, Tree):
            self.damage(oid, f"expected a tree, found a {type(obj).__name__}", path)
            return
        self.report.trees += 1
        for e in obj.entries:
            sep = "" if path.endswith(":") else "/"
            sub = path + sep + e.name.decode("utf-8", "replace")
            if e.kind is EntryKind.DIR:
                self.tree(e.ref, sub)
            elif e.kind is EntryKind.FILE:
                self.report.files += 1
                self.chunk(e.ref, e.size, sub)
            elif e.kind is EntryKind.CHUNKED:
                self.report.files += 1
                self.manifest(e.ref, e.size, sub)

    def manifest(self, oid: bytes, size: int, path: str) -> None:
        obj = self.load(oid, path)
        if obj is None:
            return
        if not isinstance(obj, Manifest):
            self.damage(oid, "expected a manifest", path)
            return
        if obj.size != size:
            self.damage(oid, f"manifest lists {obj.size} bytes, the tree says {size}", path)
        for c in obj.chunks:
            self.chunk(bytes(c.id), c.length, path)

    def commit(self, repo: str, oid: bytes, via: str) -> None:
        while oid not in self.seen:
            self.seen.add(oid)
            label = f"{repo}@{short_hex(oid)}"
            obj = self.load(oid, f"{label} ({via})")
            if obj is None:
                return
            if not isinstance(obj, Commit):
                self.damage(oid, f"{via} names a {type(obj).__name__}, not a commit", label)
                return
            self.report.commits += 1
            self.tree(bytes(obj.tree), label + ":")
            for name, input_id in obj.inputs:
                if not self.store.has_object(input_id):
                    self.damage(bytes(input_id), f"input commit of {name} is missing", label)
            for extra in obj.parents[1:]:
                self.commit(repo, bytes(extra), via)
            if not obj.parents:
                return
            oid = bytes(obj.parents[0])


def fsck(
    store: Store,
    repo: str | None = None,
    progress: Callable[[int], None] | None = None,
    check_remote: bool = False,
) -> FsckReport:
    """Check what every ref reaches; with `check_remote`, also fetch and check the chunks that
    are only on a remote."""
    report = FsckReport()
    checker = _Checker(store, report, progress, check_remote)
    with store.env.read() as txn:
        repos = [db.get_repo(txn, repo)] if repo else db.list_repos(txn)
        refs = {r.name: list(db.list_refs(txn, r.name)) for r in repos}
    for rec in repos:
        report.repos += 1
        for ref, oid in refs[rec.name]:
            checker.commit(rec.name, bytes(oid), ref)
    return report
