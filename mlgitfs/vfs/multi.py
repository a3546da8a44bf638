"""Several versions in one read-only mount: a repo's `@REF/` directories, repos side by side.

`VersionsView` is an `FsView` made of the mount's own directories (the root, a repo's
`@REF` level, a ref-name prefix such as `@bob/`) and of one `SnapshotView` per version,
which it delegates to. A version is opened on the first lookup (or listing) of its name:
`@BRANCH`, `@TAG` or `@COMMIT` (a unique prefix of at least 4 hex digits). A ref name with
`/` nests: `@bob/relabel/` is branch `bob/relabel` (a ref beside another nested under it is
refused when made, so a name is either a version or a prefix, never both; a branch `bob`
beside a tag `bob/x` leaves the tag at `@tags/bob/x/`). Remote-tracking refs and the
qualified `heads/NAME` and `tags/NAME` work the same way (`@origin/main/`, `@tags/v1/`).

A version shows the commit its name resolved to when it was opened, for as long as the kernel
holds it: it never changes under a reader. The listing of a `@REF` level shows the repo's
branches and tags (not every commit) as they are when listed.

Inode numbers come from the daemon's `InodeSpace` (vfs/inodes.py), shared by every view it
serves: the mount's own directories take the first range (0, which holds the root), each
version opened takes the next one (never reused in a mount's life), its view's own numbers
shifted into it. Numbers of two versions never collide, and each version keeps its view's
stable path-hash numbers. All versions share one `FileReader`
(one memory cache of chunks for the mount) and keep every kernel-cache lever of a
single-version mount; only the mount's own directories are left uncached by the kernel
(`is_dynamic`), so a branch made after the mount can still be opened by name.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import trio

from mlgitfs.errors import FsError, MlgitError, NotFound
from mlgitfs.meta import db
from mlgitfs.model.ids import InodeNo, ObjectId
from mlgitfs.model.objects import EntryKind
from mlgitfs.repo import refs
from mlgitfs.repo.trees import resolve_path
from mlgitfs.store.facade import Store
from mlgitfs.store.segfile import Buffer
from mlgitfs.vfs.inodes import RANGE_BITS, InodeRange, InodeSpace
from mlgitfs.vfs.prefill import Prefill
from mlgitfs.vfs.reader import FileReader, judged_reader
from mlgitfs.vfs.snapshot import SnapshotView
from mlgitfs.vfs.types import ROOT_INODE, Attr, FsView, Kind, Origin, StatFs, WritableFsView

log = logging.getLogger(__name__)

_R = TypeVar("_R")
VERSION_SHIFT = RANGE_BITS  # a version's own inode numbers stay below 2^48


@dataclass(frozen=True, slots=True)
class Source:
    """What one name of the mount shows: a version (`commit`, optionally a sub-path of it)
    or, with `commit` None, the repo's `@REF/` directories."""

    name: bytes  # its directory at the mount's root; b"" when it is the root itself
    repo: str
    commit: ObjectId | None = None
    path: tuple[bytes, ...] = ()


@dataclass(slots=True)
class _Dir:
    """A directory of the mount itself: the root of several sources, or a repo's refs."""

    ino: InodeNo
    repo: str | None  # None: the root of a mount of several sources
    prefix: str  # the ref-name prefix its names continue ("" at the @REF level)
    children: dict[bytes, InodeNo] = field(default_factory=dict)


@dataclass(slots=True)
class _Version:
    inodes: InodeRange  # its numbers in the mount
    parent: InodeNo
    name: bytes
    view: SnapshotView
    lookups: int = 0  # of its root: the view itself never forgets its root


def sub_tree(store: Store, commit: ObjectId, path: tuple[bytes, ...]) -> tuple[ObjectId, int]:
    """(tree, time) of a directory of a commit; FsError(ENOTDIR) when the path is a file."""
    c = store.commit(commit)
    entry = resolve_path(store, c.tree, path)
    if entry is None:
        return c.tree, c.time_ns
    if entry.kind is not EntryKind.DIR:
        raise FsError(errno.ENOTDIR, f"{'/'.join(p.decode(errors='replace') for p in path)} "
                      "is not a directory")  # fmt: skip
    return ObjectId(entry.ref), c.time_ns


class VersionsView:
    """A read-only `FsView` of several versions, opened as they are looked up."""

    def __init__(
        self,
        store: Store,
        sources: list[Source],
        *,
        cache_bytes: int = 256 << 20,
        uid: int | None = None,
        gid: int | None = None,
        prefill: Prefill | None = None,
        inodes: InodeSpace | None = None,
        own: InodeRange | None = None,
    ) -> None:
        """`prefill`: the page-cache prefill (vfs/prefill.py), each version's inode numbers
        shifted into its range; None: never. `inodes`: the daemon's inode numbers (shared by
        the views it serves); None: a space of the view's own. `own`: the range of the
        mount's own directories, taken by the caller (the first of the space, before the
        checkouts a mount shows beside the versions: vfs/mixed.py); None: the next one."""
        self.store = store
        self._space = InodeSpace() if inodes is None else inodes
        # The mount's own directories (the first range: the root).
        self._own = self._space.take() if own is None else own
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.time_ns = time.time_ns()
        # every version's view judges its files by occurrence (it has a commit): erasegate.py
        self._reader = FileReader(store, judged_reader(store), cache_bytes, judged=True)
        self._sources = {s.name: s for s in sources}
        single = sources[0] if len(sources) == 1 and sources[0].name == b"" else None
        if single is not None and single.commit is not None:
            raise ValueError("a single version is a SnapshotView's to serve")
        root = _Dir(self._own.outer(ROOT_INODE), single.repo if single else None, "")
        self.root = root.ino  # ROOT_INODE when the view is the mount's (its space's first)
        self._dirs: dict[int, _Dir] = {root.ino: root}
        self._versions: dict[int, _Version] = {}  # by the index of their range
        self._next_dir = ROOT_INODE + 1
        self._nursery: trio.Nursery | None = None
        self._prefill = prefill

    # --- the FsView's background work -----------------------------------------------------

    def attach(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._reader.attach(nursery)
        nursery.start_soon(self._warm_up, name="remote-warm-up")  # once, not per version
        for v in self._versions.values():
            v.view.attach(nursery)

    async def _warm_up(self) -> None:
        await trio.to_thread.run_sync(
            self.store.remote.warm_up, limiter=self._reader.loader.limiter
        )

    def _version_prefill(self, inodes: InodeRange) -> Prefill | None:
        """The prefill of the version whose inode numbers are `inodes`."""
        prefill = self._prefill
        if prefill is None:
            return None

        def shifted(ino: InodeNo, data: Buffer) -> None:
            prefill(inodes.outer(ino), data)

        return shifted

    def close(self) -> None:
        for v in self._versions.values():
            v.view.close()

    def origin(self, ino: InodeNo) -> Origin | None:
        """(repo, commit, path in the commit) of a file of one of the versions, for read-set
        recording (daemon/recorder.py); None for the mount's own directories."""
        v = None if self._own.holds(ino) else self._versions.get(self._space.index_of(ino))
        return None if v is None else v.view.origin(v.inodes.inner(ino))

    def is_dynamic(self, ino: InodeNo) -> bool:
        """Whether the kernel must not cache this directory's listing or missing names:
        the mount's own directories, whose names follow the repos' refs."""
        return self._own.holds(ino)

    def writable(self) -> WritableFsView | None:
        return None  # versions never change

    def versions_open(self) -> int:
        """Versions the view holds now (tests, logs)."""
        return len(self._versions)

    # --- routing --------------------------------------------------------------------------

    def _version(self, ino: InodeNo) -> tuple[_Version, InodeNo]:
        v = self._versions.get(self._space.index_of(ino))
        if v is None:
            raise FsError(errno.ENOENT, f"inode {ino} is unknown")
        return v, v.inodes.inner(ino)

    def _dir(self, ino: InodeNo) -> _Dir:
        d = self._dirs.get(ino)
        if d is None:
            raise FsError(errno.ENOENT, f"inode {ino} is unknown")
        return d

    @staticmethod
    def _out(v: _Version, attr: Attr) -> Attr:
        return dataclasses.replace(attr, ino=v.inodes.outer(attr.ino))

    def _dir_attr(self, ino: InodeNo) -> Attr:
        return Attr(ino, Kind.DIR, stat.S_IFDIR | 0o555, 0, self.time_ns, 2, self.uid, self.gid)

    # --- metadata -------------------------------------------------------------------------

    def getattr(self, ino: InodeNo) -> Attr:
        if not self._own.holds(ino):
            v, inner = self._version(ino)
            return self._out(v, v.view.getattr(inner))
        return self._dir_attr(self._dir(ino).ino)

    def lookup(self, parent: InodeNo, name: bytes) -> Attr:
        if not self._own.holds(parent):
            v, inner = self._version(parent)
            attr = v.view.lookup(inner, name)
            if attr.ino == ROOT_INODE:  # "." or ".." of the version's root: counted there
                v.lookups += 1
            return self._out(v, attr)
        d = self._dir(parent)
        if name in (b".", b".."):
            return self._dir_attr(d.ino)
        return self._entry(d, name, None)

    def _entry(self, d: _Dir, name: bytes, known: ObjectId | None) -> Attr:
        """The child `name` of one of the mount's directories, made if new, one more lookup."""
        ino = d.children.get(name)
        if ino is None:
            ino = self._guard(lambda: self._make(d, name, known), name)
            d.children[name] = ino
        if not self._own.holds(ino):
            v = self._versions.get(self._space.index_of(ino))
            if v is None:  # a checkout shown here (vfs/mixed.py)
                return self.getattr(ino)
            v.lookups += 1
            return self._out(v, v.view.getattr(ROOT_INODE))
        return self._dir_attr(ino)

    def _make(self, d: _Dir, name: bytes, known: ObjectId | None) -> InodeNo:
        if d.repo is None:  # the root of several sources
            src = self._sources.get(name)
            if src is None:
                raise FsError(errno.ENOENT)
            if src.commit is None:
                return self._new_dir(src.repo, "")
            return self._open(d, name, src.commit, src.path)
        ref = self._ref_of(d, name)
        grafted = self._grafted(d.repo, ref)
        if grafted is not None:
            return grafted
        oid = known if known is not None else _resolve(self.store, d.repo, ref)
        if oid is not None:
            return self._open(d, name, oid, ())
        if any(label.startswith(ref + "/") for label in _labels(self.store, d.repo)):
            return self._new_dir(d.repo, ref)
        raise FsError(errno.ENOENT)

    def _grafted(self, repo: str, ref: str) -> InodeNo | None:
        """The root of a view shown as `@ref` of `repo` in place of its version (a writable
        checkout of the branch: vfs/mixed.py); None: the version."""
        return None

    @staticmethod
    def _ref_of(d: _Dir, name: bytes) -> str:
        try:
            text = name.decode()
        except UnicodeDecodeError:
            raise FsError(errno.ENOENT) from None
        if d.prefix:
            return f"{d.prefix}/{text}"
        if not text.startswith("@") or len(text) < 2:
            raise FsError(errno.ENOENT)
        return text[1:]

    def _new_dir(self, repo: str, prefix: str) -> InodeNo:
        ino = self._own.outer(self._next_dir)
        self._next_dir += 1
        self._dirs[ino] = _Dir(ino, repo, prefix)
        return ino

    def _open(self, d: _Dir, name: bytes, commit: ObjectId, path: tuple[bytes, ...]) -> InodeNo:
        """A new version's view in the next range of inode numbers."""
        tree, time_ns = sub_tree(self.store, commit, path)
        inodes = self._space.take()  # FsError(ENOSPC) once every range was taken
        view = SnapshotView(
            self.store,
            tree,
            time_ns=time_ns,
            uid=self.uid,
            gid=self.gid,
            reader=self._reader,
            inodes=inodes,
            warm_up=False,  # the mount's view warms the remotes up once
            prefill=self._version_prefill(inodes),
            commit=commit,
            repo=d.repo or "",
            prefix="/".join(os.fsdecode(p) for p in path),
        )
        v = _Version(inodes, d.ino, name, view)
        self._versions[inodes.index] = v
        if self._nursery is not None:
            view.attach(self._nursery)
        log.info("opened %r (%s) in the mount", name, commit.hex()[:12])
        return inodes.outer(ROOT_INODE)

    def readdir(self, ino: InodeNo, offset: int) -> Iterator[tuple[bytes, Attr, int]]:
        if not self._own.holds(ino):
            v, inner = self._version(ino)
            for name, attr, nxt in v.view.readdir(inner, offset):
                yield name, self._out(v, attr), nxt
            return
        d = self._dir(ino)
        listing = self._guard(lambda: self._listing(d), b"")
        for i, (name, known) in enumerate(listing[offset:], start=offset + 1):
            try:
                attr = self._entry(d, name, known)
            except FsError as exc:  # a ref deleted or unreadable since listed: left out
                log.debug("leaving %r out of the listing: %s", name, exc.message)
                continue
            yield name, attr, i

    def _listing(self, d: _Dir) -> list[tuple[bytes, ObjectId | None]]:
        """(name, commit when the name is a ref) of a directory of the mount, sorted."""
        if d.repo is None:
            return [(name, None) for name in sorted(self._sources)]
        with self.store.env.read() as txn:
            stored = list(db.list_refs(txn, d.repo))
        names: dict[str, ObjectId | None] = {}
        labels = {refs.ref_label(r): oid for r, oid in stored}
        if d.prefix:
            labels |= {r: oid for r, oid in stored if not r.startswith(refs.TRACKING_PREFIX)}
            start = d.prefix + "/"
            for label, oid in labels.items():
                if label.startswith(start):
                    head, sep, _ = label[len(start) :].partition("/")
                    names.setdefault(head, None if sep else oid)
            return sorted((n.encode(), oid) for n, oid in names.items())
        for r, oid in stored:  # branches and tags, by their first name part
            kind, _, label = r.partition("/")
            if kind in ("heads", "tags"):
                head, sep, _ = label.partition("/")
                names.setdefault(head, None if sep else oid)
        return sorted((b"@" + n.encode(), oid) for n, oid in names.items())

    def readlink(self, ino: InodeNo) -> bytes:
        if not self._own.holds(ino):
            v, inner = self._version(ino)
            return v.view.readlink(inner)
        raise FsError(errno.EINVAL)

    def forget(self, items: Iterable[tuple[InodeNo, int]]) -> None:
        """Route each inode's forget to its version; a version whose root the kernel forgot,
        holding nothing else, is closed (the kernel forgets children first; roots go last
        so a batch listing a root before its children is handled too)."""
        inner: dict[int, list[tuple[InodeNo, int]]] = {}
        roots: list[tuple[int, int]] = []
        for ino, n in items:
            if self._own.holds(ino):
                continue  # the mount's own directories stay: few, and made again cheaply
            k = self._space.index_of(ino)
            v = self._versions.get(k)
            if v is None:
                continue
            if v.inodes.inner(ino) == ROOT_INODE:
                roots.append((k, n))
            else:
                inner.setdefault(k, []).append((v.inodes.inner(ino), n))
        for k, batch in inner.items():
            v = self._versions.get(k)
            if v is not None:
                v.view.forget(batch)
        for k, n in roots:
            v = self._versions.get(k)
            if v is None:
                continue
            v.lookups -= n
            if v.lookups <= 0 and v.view.held() == 0:
                del self._versions[k]
                self._dirs[v.parent].children.pop(v.name, None)
                v.view.close()

    def statfs(self) -> StatFs:
        st = os.statvfs(self.store.home)
        held = len(self._dirs) + sum(v.view.held() + 1 for v in self._versions.values())
        return StatFs(st.f_frsize, st.f_blocks, 0, held, 0, 255)

    def _guard(self, fn: Callable[[], _R], name: bytes) -> _R:
        try:
            return fn()
        except FsError:
            raise
        except MlgitError as exc:
            log.error("cannot open %r in the mount: %s", name, exc)
            raise FsError(errno.EIO, str(exc)) from exc

    # --- reads ----------------------------------------------------------------------------

    async def read(self, ino: InodeNo, offset: int, size: int) -> bytes | memoryview:
        v, inner = self._version_or_dir(ino)
        return await v.view.read(inner, offset, size)

    async def read_parts(self, ino: InodeNo, offset: int, size: int) -> list[memoryview]:
        v, inner = self._version_or_dir(ino)
        return await v.view.read_parts(inner, offset, size)

    def _version_or_dir(self, ino: InodeNo) -> tuple[_Version, InodeNo]:
        if self._own.holds(ino):
            raise FsError(errno.EISDIR)
        return self._version(ino)


def _resolve(store: Store, repo: str, ref: str) -> ObjectId | None:
    """The commit a ref name (or a unique commit prefix) names in the repo; None if none."""
    try:
        return refs.resolve_ref(store, repo, ref)[0]
    except NotFound:
        return None
    except MlgitError as exc:  # ambiguous prefix, a name that cannot be a ref
        log.debug("%s@%s names no one version: %s", repo, ref, exc.message)
        return None


def _labels(store: Store, repo: str) -> list[str]:
    """Every name a ref of the repo answers to: `main`, `heads/main`, `origin/main`..."""
    with store.env.read() as txn:
        stored = list(db.list_refs(txn, repo))
    return [refs.ref_label(r) for r, _ in stored] + [
        r for r, _ in stored if not r.startswith(refs.TRACKING_PREFIX)
    ]


if TYPE_CHECKING:  # mypy holds the view to the whole protocol the daemon serves
    _AS_VIEW: type[FsView] = VersionsView
