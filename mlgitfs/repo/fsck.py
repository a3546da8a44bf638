"""fsck: every object reachable from every ref is present, hashes to its id and is valid.

Each object and chunk is loaded and hash-checked once however many commits share it; damage
is reported with the object, the reason and the first path (repo@commit:path) that reaches
it. What an entry says about what it names is checked per entry, not cached per object: a
file whose size disagrees with its manifest or chunk is blamed, never another file that
shares the chunk honestly. Tree indexes are checked against their pages (counts, first
names, order across pages), and the history of every input commit is walked like a ref's.
Every checkout's base commit is checked to exist and walked like a ref (a missing one is
reported: the overlay is a delta against its tree). A commit with an expiry record (gc let
its contents go, by a retention rule) is checked like any other except its files' chunks.
A file whose id an erasure record names (meta/erasures.py) and whose chunks are absent is
counted as erased, not damage (its bytes present are checked like any other's).
A commit's commit-graph record, when it has one, must equal the record made again from
the commit (repo/commitindex.py); with `rebuild_index` every record is made again instead,
from the commits the walk reached.
The walk is iterative; a tree deeper than trees.MAX_DEPTH or MAX_PATH is reported, not
followed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mlgitfs.errors import CorruptObject, MissingObject
from mlgitfs.meta import checkouts, chunkquotes, db, erasures, retention
from mlgitfs.meta import remotes as remote_records
from mlgitfs.model.ids import ChunkId, ObjectId, short_hex
from mlgitfs.model.objects import Commit, EntryKind, Manifest, Tree, TreeIndex
from mlgitfs.repo import commitindex
from mlgitfs.repo.trees import MAX_DEPTH, MAX_PATH, DirView
from mlgitfs.store.facade import Store


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
    expired: int = 0  # commits whose contents retention let go (gc records them): not read
    erasures: int = 0  # erasure records of the store (meta/erasures.py)
    erased: int = 0  # file entries whose missing contents an erasure removed: not damage
    index_rebuilt: int = 0  # commit-graph records written by rebuild_index
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
        check_index: bool = True,
    ) -> None:
        self.store = store
        self.check_index = check_index
        self.walked: list[bytes] = []  # commits that loaded, in walk order
        # rebuilding: the quote parities of the CSV and TSV chunks read, to record again
        self.quotes: dict[bytes, bool] | None = None if check_index else {}
        self.check_remote = check_remote
        with store.env.read() as txn:
            self.has_remotes = any(True for _ in remote_records.all_remote_names(txn))
            records = erasures.list_all(txn)
            # chunks only erased files hold: gone here, and never fetched back from a remote
            self.erased_chunks = erasures.erased_chunk_ids(txn)
        report.erasures = len(records)
        self.erased_ids = frozenset().union(*(r.file_ids for r in records))
        self.missing: set[bytes] = set()  # chunks absent (not corrupt)
        self.report = report
        self.progress = progress
        self.seen: set[bytes] = set()
        self.seen_names: set[bytes] = set()  # trees walked without their files' contents
        self.bad: dict[bytes, str] = {}  # objects that do not load, and why
        self.chunk_len: dict[bytes, int | str | None] = {}  # length, why bad, None: remote
        # (repo, commit, via) still to walk; trees are walked as they are met
        self.commits: list[tuple[str, bytes, str]] = []

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

    def chunk(self, cid: bytes, length: int, path: str, erased: bool = False) -> bool:
        """Check the chunk once; check the length this entry gives it every time. An
        `erased` file's absent chunk is not damage: False (the caller counts the file)."""
        if erased and cid in self.erased_chunks and not self.store.chunks.has(ChunkId(cid)):
            return False  # a remote may still hold it: not this store's to read
        if cid not in self.chunk_len:
            self.chunk_len[cid] = self._read_chunk(cid, path)
        got = self.chunk_len[cid]
        if erased and cid in self.missing:
            return False
        if isinstance(got, str):
            self.damage(cid, got, path)
        elif got is not None and got != length:
            self.damage(cid, f"chunk has {got} bytes, the file's entry says {length}", path)
        return True

    def _read_chunk(self, cid: bytes, path: str) -> int | str | None:
        if self.has_remotes and not self.store.chunks.has(ChunkId(cid)):
            # Not in the local cache of a store with remotes: pushed or cloned, fetched on
            # demand and checked then (or here with `fsck --remote`), not damage.
            self.report.remote_chunks += 1
            if not self.check_remote:
                return None
        try:
            data = self.store.read_chunk(ChunkId(cid))
        except MissingObject as exc:
            self.missing.add(cid)
            return exc.reason
        except CorruptObject as exc:
            return exc.reason
        n = len(data)
        odd = chunkquotes.odd(data)
        with self.store.env.read() as txn:
            kept = chunkquotes.get_many(txn, [cid]).get(cid)
        if kept is not None and kept != odd:
            # blame would take this chunk's records for another row's: run --rebuild-index
            self.damage(cid, "recorded quote parity disagrees with the chunk", "chunk_quotes")
        if self.quotes is not None and chunkquotes.for_path(path):
            self.quotes[cid] = odd
        self.report.chunks += 1
        self.report.bytes += n
        if self.progress:
            self.progress(self.report.chunks)
        return n

    def tree(self, root: bytes, label: str, contents: bool = True) -> None:
        """Every directory below `root`, depth first without recursion. Without `contents`
        (an expired version: gc may have dropped its files' chunks), files' chunks are not
        read; a directory met so is walked again if a live version reaches it."""
        stack: list[tuple[bytes, str, int]] = [(root, label + ":", 0)]
        while stack:
            oid, path, depth = stack.pop()
            if oid in self.seen or (not contents and oid in self.seen_names):
                if oid in self.bad:  # reported once per path that reaches it
                    self.damage(oid, self.bad[oid], path)
                continue
            (self.seen if contents else self.seen_names).add(oid)
            for page in self._pages(oid, path):
                self.report.trees += 1
                subdirs = []
                for e in page.entries:
                    sep = "" if path.endswith(":") else "/"
                    sub = path + sep + e.name.decode("utf-8", "replace")
                    if e.kind is EntryKind.DIR:
                        if depth + 1 > MAX_DEPTH or len(sub) - len(label) > MAX_PATH:
                            self.damage(e.ref, f"deeper than {MAX_DEPTH} levels or "
                                        f"{MAX_PATH} bytes; not followed", sub[:200])  # fmt: skip
                        else:
                            subdirs.append((e.ref, sub, depth + 1))
                    elif e.kind is EntryKind.FILE:
                        self.report.files += 1
                        erased = e.ref in self.erased_ids
                        if contents and not self.chunk(e.ref, e.size, sub, erased):
                            self.report.erased += 1
                    elif e.kind is EntryKind.CHUNKED:
                        self.report.files += 1
                        self.manifest(e.ref, e.size, sub, contents)
                stack.extend(reversed(subdirs))  # popped in name order

    def _pages(self, oid: bytes, path: str) -> list[Tree]:
        """The directory's pages that load and agree with its index; the rest reported."""
        obj = self.load(oid, path)
        if obj is None:
            return []
        if isinstance(obj, Tree):
            return [obj]
        if not isinstance(obj, TreeIndex):
            self.damage(oid, f"expected a tree, found a {type(obj).__name__}", path)
            return []
        view, out = DirView(self.store, ObjectId(oid)), []
        for i, p in enumerate(obj.pages):
            if bytes(p.page) in self.bad:
                self.damage(p.page, self.bad[bytes(p.page)], path)
                continue
            try:
                out.append(view.page(obj, i))
            except CorruptObject as exc:
                self.report.damage.append(Damage(exc.object_id, exc.reason, path))
        return out

    def manifest(self, oid: bytes, size: int, path: str, contents: bool = True) -> None:
        obj = self.load(oid, path)
        if obj is None:
            return
        if not isinstance(obj, Manifest):
            self.damage(oid, "expected a manifest", path)
            return
        if obj.size != size:
            self.damage(oid, f"manifest lists {obj.size} bytes, the tree says {size}", path)
        erased = oid in self.erased_ids
        gone = [c for c in (obj.chunks if contents else ())
                if not self.chunk(bytes(c.id), c.length, path, erased)]  # fmt: skip
        self.report.erased += bool(gone)

    def generation(self, oid: bytes, commit: Commit, label: str) -> None:
        """A recorded generation number must be 1 + the largest of its parents' (ancestry
        walks stop on it: a wrong one would hide ancestors). Missing ones are computed later."""
        with self.store.env.read() as txn:
            gen = db.get_generation(txn, ObjectId(oid))
            parents = [db.get_generation(txn, p) for p in commit.parents]
        if gen is None or any(p is None for p in parents):
            return
        want = 1 + max((p for p in parents if p is not None), default=0)
        if gen != want:
            self.damage(oid, f"generation number {gen} recorded, {want} by its parents", label)

    def index_record(self, oid: bytes, commit: Commit, label: str) -> None:
        """A commit-graph record that disagrees with its commit would hide commits from a
        path-limited log; trees too damaged to diff are reported by the tree walk."""
        try:
            problem = commitindex.check(self.store, oid, commit)
        except (CorruptObject, MissingObject):
            return
        if problem:
            self.damage(oid, problem, label)

    def checkout(self, repo: str, branch: str, base: bytes) -> None:
        """A checkout's base must be a commit: its overlay is a delta against that tree."""
        label = f"{repo}@{branch} (checkout)"
        try:
            obj = self.store.get_object(ObjectId(base))
        except MissingObject:
            self.damage(base, "the checkout's base commit is missing", label)
            return
        except CorruptObject as exc:
            self.damage(base, exc.reason, label)
            return
        if not isinstance(obj, Commit):
            self.damage(base, f"the checkout's base is a {type(obj).__name__}, not a commit", label)
            return
        self.commits.append((repo, base, f"checkout of {branch}"))

    def run(self) -> None:
        """Walk the queued commits' histories, and the histories of their inputs."""
        while self.commits:
            repo, oid, via = self.commits.pop()
            self._history(repo, oid, via)

    def _history(self, repo: str, oid: bytes, via: str) -> None:
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
            self.walked.append(oid)
            self.generation(oid, obj, label)
            with self.store.env.read() as txn:
                expired = retention.get_expired(txn, ObjectId(oid)) is not None
            self.report.expired += expired
            if self.check_index:
                self.index_record(oid, obj, label)
            self.tree(bytes(obj.tree), label, contents=not expired)
            for name, input_id in obj.inputs:
                if not self.store.has_object(input_id):
                    self.damage(bytes(input_id), f"input commit of {name} is missing", label)
                else:
                    self.commits.append((name, bytes(input_id), f"input of {label}"))
            for extra in obj.parents[1:]:
                self.commits.append((repo, bytes(extra), via))
            if not obj.parents:
                return
            oid = bytes(obj.parents[0])


def fsck(
    store: Store,
    repo: str | None = None,
    progress: Callable[[int], None] | None = None,
    check_remote: bool = False,
    rebuild_index: bool = False,
) -> FsckReport:
    """Check what every ref reaches; with `check_remote`, also fetch and check the chunks that
    are only on a remote; with `rebuild_index`, write the commit-graph records of every
    commit reached again (all records are dropped first when no `repo` is given)."""
    report = FsckReport()
    checker = _Checker(store, report, progress, check_remote, check_index=not rebuild_index)
    with store.env.read() as txn:
        repos = [db.get_repo(txn, repo)] if repo else db.list_repos(txn)
        refs = {r.name: list(db.list_refs(txn, r.name)) for r in repos}
        bases = [(r, b, bytes(c.base)) for r, b, c in checkouts.list_checkouts(txn)]
    for rec in repos:
        report.repos += 1
        for ref, oid in refs[rec.name]:
            checker.commits.append((rec.name, bytes(oid), ref))
        for name, branch, base in bases:
            if name == rec.name:
                checker.checkout(name, branch, base)
        checker.run()
    if rebuild_index:
        report.index_rebuilt = commitindex.rebuild(store, checker.walked, everything=repo is None)
        assert checker.quotes is not None
        with store.env.write() as txn:
            # derived data: dropped, and made again from the CSV and TSV chunks read here
            # (as storing them makes them); others' as blame reads them
            chunkquotes.clear(txn)
            chunkquotes.put_many(txn, checker.quotes.items())
    return report
