"""Three-way merge of trees: cost follows what differs, exact renames followed, conflicts named.

An entry is "the same" on two sides when its kind, id (or symlink target) and mode are equal
(mtimes are not compared). At each path:

1. ours same as theirs, or base same as one side: the other side's entry is taken whole. A
   directory decided here is never opened, whatever its size.
2. Both sides directories (or one deleted a directory the other changed inside): merged
   name by name, over the names that differ between base and theirs only, found page by
   page (a page id on both sides holds the same entries); the result is ours' directory
   with those names replaced (`update_dir`: only the pages they fall in are rewritten). A
   directory deleted on one side survives only if something inside it survives.
3. Files and symlinks: content (kind and id) and mode merge separately, so a mode change
   on one side and an edit on the other both apply.
4. Anything else is a conflict: modify/modify, modify/delete, add/add, file/directory, mode,
   symlink (two different targets), rename/rename (one file renamed two ways).

Renames: before the walk, each side's exact renames (`diff.find_renames`: a file deleted and
added with the same content id, paired when unique) are found from its diff against the
base. When one side renamed `p` to `q` and the other changed `p` in place (and has nothing
at `q`), the base and the other side are rewritten to have that file at `q`: the change then
lands on the renamed file. A directory moved whole is a set of such file renames. Files the
other side added to a moved directory stay where they were added.

A conflict is resolved by the first rule of the resolver that names its path (ours,
theirs, union: keep whichever side still has the file; rows: a row-level merge of a table),
or left as a conflict. The merged tree's objects are collected, not written: the caller
writes them with the merge commit.
"""

from __future__ import annotations

import enum
import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

from mlgitfs.errors import UsageError
from mlgitfs.merge.threeway import three_way
from mlgitfs.model.conflicts import CellConflict, Conflict, ConflictKind, SideInfo
from mlgitfs.model.ids import ObjectId, to_hex
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.diff import content_key
from mlgitfs.repo.mergeedit import (
    DIR_MODE,
    PendingReader,
    edit_paths,
    entry_at,
    follow_renames,
    split_path,
)
from mlgitfs.repo.treedelta import differing, remember
from mlgitfs.repo.treeedit import update_dir
from mlgitfs.repo.trees import NewObjects, build_dir
from mlgitfs.store.facade import Store

MAX_MERGE_DEPTH = 256  # the walk recurses (two frames a level): well inside Python's limit


class Strategy(enum.StrEnum):
    OURS = "ours"
    THEIRS = "theirs"
    UNION = "union"
    ROWS = "rows"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Rule:
    strategy: Strategy
    key: tuple[str, ...] = ()  # rows: the key columns (none: the whole row)
    source: str = ""  # where the rule came from, for messages


Resolver = Callable[[str], Rule | None]


class Blobs(Protocol):
    """File contents for strategies that read and write them (rows)."""

    def read(self, entry: TreeEntry) -> bytes: ...

    def write(self, data: bytes, like: TreeEntry) -> TreeEntry: ...


class TableMerge(Protocol):
    def __call__(
        self, base: bytes | None, ours: bytes, theirs: bytes, path: str, key: Sequence[str]
    ) -> TableResult: ...


class TableResult(Protocol):
    """What a row-level merge gives back (mlgitfs/merge/rows.py's TableMergeResult)."""

    @property
    def data(self) -> bytes | None: ...  # the merged table; None when it conflicted

    @property
    def conflicts(self) -> Sequence[object]: ...

    @property
    def partial(self) -> bytes | None: ...  # with conflicts: merged rows, ours' in conflicts


@dataclass
class TreeMerge:
    tree: ObjectId
    conflicts: list[Conflict] = field(default_factory=list)
    resolved: list[tuple[str, ConflictKind, Strategy]] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)  # followed renames, old → new
    new_objects: NewObjects = field(default_factory=list)
    # some of new_objects are intermediate trees the result does not keep (rewritten for
    # renames, or a merged directory a file replaced): filter before writing
    intermediate: bool = False


def side_info(e: TreeEntry | None) -> SideInfo | None:
    if e is None:
        return None
    if e.kind is EntryKind.SYMLINK:
        return SideInfo("symlink", e.ref.decode("utf-8", "surrogateescape"), e.size, e.mode)
    return SideInfo("dir" if e.is_dir else "file", to_hex(e.ref), e.size, e.mode)


def _same(x: TreeEntry | None, y: TreeEntry | None) -> bool:
    if x is None or y is None:
        return x is y
    return (x.kind, x.ref, x.mode) == (y.kind, y.ref, y.mode)


def _cell(c: object) -> CellConflict:
    """A row conflict (merge/rows.py's RowConflict) in the model's terms."""
    key = getattr(c, "key", ())
    return CellConflict(
        ", ".join(str(k) for k in key), str(getattr(c, "column", "")), getattr(c, "base", None),
        getattr(c, "ours", None), getattr(c, "theirs", None), str(getattr(c, "kind", "")),
    )  # fmt: skip


def _text(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


class _Merger:
    def __init__(
        self,
        store: Store,
        resolve: Resolver,
        blobs: Blobs | None,
        table_merge: TableMerge | None,
        keep_partial: bool = False,
    ) -> None:
        self.keep_partial = keep_partial
        self.store = store
        self.resolve = resolve
        self.blobs = blobs
        self.table_merge = table_merge
        self.result = TreeMerge(ObjectId(b""))
        self.out = self.result.new_objects
        self.reader = PendingReader(store, self.out)

    # --- conflicts ----------------------------------------------------------------------

    def conflict(
        self,
        path: bytes,
        kind: ConflictKind,
        b: TreeEntry | None,
        o: TreeEntry | None,
        t: TreeEntry | None,
        detail: str = "",
    ) -> TreeEntry | None:
        """The entry a rule resolves the conflict to, or ours after recording the conflict."""
        text = _text(path)
        rule = self.resolve(text)
        strategy = rule.strategy if rule is not None else Strategy.FAIL
        chosen: TreeEntry | None = o
        ok = True
        cells: tuple[CellConflict, ...] = ()
        if strategy is Strategy.OURS:
            chosen = o
        elif strategy is Strategy.THEIRS:
            chosen = t
        elif strategy is Strategy.UNION and kind is ConflictKind.MODIFY_DELETE:
            chosen = o if o is not None else t
        elif strategy is Strategy.ROWS and rule is not None:
            ok, chosen, detail, cells = self.rows(text, kind, b, o, t, list(rule.key), detail)
            if not ok and detail:
                kind = ConflictKind.ROWS
        else:
            ok = False
        if ok:
            self.result.resolved.append((text, kind, strategy))
            return chosen
        self.result.conflicts.append(
            Conflict(text, kind, side_info(b), side_info(o), side_info(t), detail, cells)
        )
        return chosen if strategy is Strategy.ROWS else o

    def rows(
        self,
        path: str,
        kind: ConflictKind,
        b: TreeEntry | None,
        o: TreeEntry | None,
        t: TreeEntry | None,
        key: list[str],
        detail: str,
    ) -> tuple[bool, TreeEntry | None, str, tuple[CellConflict, ...]]:
        """(merged cleanly, the entry, detail, conflicting cells); with keep_partial, a
        table that conflicted is the merged rows with ours' value in each conflicting cell."""
        if kind not in (ConflictKind.MODIFY_MODIFY, ConflictKind.ADD_ADD):
            return False, o, "", ()
        if o is None or t is None or not o.is_file or not t.is_file:
            return False, o, "", ()
        if self.table_merge is None or self.blobs is None:
            # the caller gives mlgitfs/merge/rows.py's merge_table (repo/mergebranch.py)
            raise UsageError(f"{path}: this merge was given no row-level table merge")
        base = self.blobs.read(b) if b is not None and b.is_file else None
        got = self.table_merge(base, self.blobs.read(o), self.blobs.read(t), path, key)
        if got.data is None or got.conflicts:
            shown = "; ".join(str(c) for c in got.conflicts[:3])
            more = f" and {len(got.conflicts) - 3} more" if len(got.conflicts) > 3 else ""
            text = f"{len(got.conflicts)} conflicting rows or cells: {shown}{more}"
            cells = tuple(_cell(c) for c in got.conflicts)
            if self.keep_partial and got.partial is not None:
                return False, self.blobs.write(got.partial, o), text, cells
            return False, o, text, cells
        return True, self.blobs.write(got.data, o), detail, ()

    # --- entries --------------------------------------------------------------------------

    def entry(
        self, path: bytes, b: TreeEntry | None, o: TreeEntry | None, t: TreeEntry | None
    ) -> TreeEntry | None:
        if path.count(b"/") >= MAX_MERGE_DEPTH:
            raise UsageError(
                f"{_text(path)[:80]}...: deeper than {MAX_MERGE_DEPTH} levels; such trees "
                "cannot be merged"
            )
        if _same(o, t) or _same(b, t):
            return o
        if _same(b, o):
            return t
        od = o is not None and o.is_dir
        td = t is not None and t.is_dir
        bd = b if b is not None and b.is_dir else None
        if od and td:
            return self.dirs(path, bd, o, t)
        if (od and t is None) or (td and o is None):
            return self.dirs(path, bd, o, t)
        if od or td:
            dir_side, file_side = (o, t) if od else (t, o)
            assert dir_side is not None and file_side is not None
            if bd is not None and dir_side.mode == bd.mode:
                # The directory side changed only inside: the file replaces the directory
                # unless something inside it survives the merge.
                inner = self.dirs(path, bd, o if od else None, t if td else None)
                self.result.intermediate = True
                if inner is None:
                    return file_side
                return self.conflict(path, ConflictKind.FILE_DIRECTORY, b, o, t)
            chosen = self.conflict(path, ConflictKind.FILE_DIRECTORY, b, o, t)
            if self.result.conflicts and self.result.conflicts[-1].path == _text(path):
                # unresolved: what conflicts below the directory side is reported too
                self.dirs(path, bd, o if od else None, t if td else None)
            return chosen
        if o is None or t is None:
            return self.conflict(path, ConflictKind.MODIFY_DELETE, b, o, t)
        return self.files(path, None if bd is not None else b, o, t)

    def files(
        self, path: bytes, b: TreeEntry | None, o: TreeEntry, t: TreeEntry
    ) -> TreeEntry | None:
        bc = content_key(b) if b is not None else None
        ok_c, content = three_way(bc, content_key(o), content_key(t))
        ok_m, mode = three_way(b.mode if b is not None else None, o.mode, t.mode)
        if not ok_c:
            if b is None:
                kind = ConflictKind.ADD_ADD
            elif o.kind is EntryKind.SYMLINK and t.kind is EntryKind.SYMLINK:
                kind = ConflictKind.SYMLINK
            else:
                kind = ConflictKind.MODIFY_MODIFY
            return self.conflict(path, kind, b, o, t)
        if not ok_m:
            return self.conflict(path, ConflictKind.MODE, b, o, t)
        winner = o if content == content_key(o) else t
        assert isinstance(mode, int)
        return winner if winner.mode == mode else replace(winner, mode=mode)

    def dirs(
        self, path: bytes, b: TreeEntry | None, o: TreeEntry | None, t: TreeEntry | None
    ) -> TreeEntry | None:
        """Merge directories (None: absent or not a directory); see rule 2 of the module."""
        prefix = path + b"/" if path else b""
        bo_b, bo_o = self.delta(b, o)
        bt_b, bt_t = self.delta(b, t)
        changes: dict[bytes, TreeEntry | None] = {}
        replaced: list[TreeEntry] = []  # ours' entries that `changes` replace or remove
        for name in sorted(set(bt_b) | set(bt_t)):
            be, te = bt_b.get(name), bt_t.get(name)
            if be == te:
                continue
            oe = bo_o.get(name) if name in bo_b or name in bo_o else be
            merged = self.entry(prefix + name, be, oe, te)
            if merged != oe:
                changes[name] = merged
                if oe is not None:
                    replaced.append(oe)
        keep_empty = o is not None and t is not None
        if o is None:
            entries = [e for _, e in sorted(changes.items()) if e is not None]
            if not entries:
                return None
            ref, count = build_dir(entries, self.out), len(entries)
        else:
            ref, count = update_dir(self.reader, ObjectId(o.ref), changes, self.out)
            # the merged directory is ours with `changes`: its diff against ours (the
            # commit's changed-path record) needs neither decoded
            remember(
                ObjectId(o.ref), ref, (replaced, [e for e in changes.values() if e is not None])
            )
        if count == 0 and not keep_empty:
            return None
        mode = (o or t).mode if (o is None or t is None) else o.mode  # type: ignore[union-attr]
        if o is not None and t is not None:
            ok, m = three_way(b.mode if b is not None else None, o.mode, t.mode)
            if not ok:
                chosen = self.conflict(path, ConflictKind.MODE, b, o, t)
                m = chosen.mode if chosen is not None else o.mode
            assert isinstance(m, int)
            mode = m
        like = o if o is not None else t
        assert like is not None
        return TreeEntry(like.name, EntryKind.DIR, mode, count, like.mtime_ns, bytes(ref))

    def delta(
        self, x: TreeEntry | None, y: TreeEntry | None
    ) -> tuple[dict[bytes, TreeEntry], dict[bytes, TreeEntry]]:
        """Entries that differ between directories x and y (None: empty), by name."""
        ex, ey = differing(
            self.reader,
            ObjectId(x.ref) if x is not None else None,
            ObjectId(y.ref) if y is not None else None,
        )
        return {e.name: e for e in ex}, {e.name: e for e in ey}


def _root(tree: ObjectId) -> TreeEntry:
    return TreeEntry(b"", EntryKind.DIR, DIR_MODE, 0, 0, bytes(tree))


def merge_trees(
    store: Store,
    base: ObjectId,
    ours: ObjectId,
    theirs: ObjectId,
    resolve: Resolver | None = None,
    blobs: Blobs | None = None,
    table_merge: TableMerge | None = None,
    keep_partial: bool = False,
) -> TreeMerge:
    """Merge the trees `ours` and `theirs` against `base`; `new_objects` holds what `tree`
    needs that the store may lack. With conflicts left, `tree` has ours' side at each
    conflicted path (with keep_partial, a table's merged rows with ours' conflicting cells):
    a branch merge writes nothing then; a merge into a writable mount leaves it there."""
    with _no_cycle_collection():
        return _merge_trees(store, base, ours, theirs, resolve, blobs, table_merge, keep_partial)


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused: a merge of a large version makes millions of rows
    and entries (tuples, no cycles), and each allocation burst set off collections that
    walked all of them again (a third of the CPU at 1,000,000 files). Process-wide, so a
    daemon's other threads pause with it for the merge's duration; nothing is lost."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _merge_trees(
    store: Store,
    base: ObjectId,
    ours: ObjectId,
    theirs: ObjectId,
    resolve: Resolver | None,
    blobs: Blobs | None,
    table_merge: TableMerge | None,
    keep_partial: bool,
) -> TreeMerge:
    m = _Merger(store, resolve or (lambda _path: None), blobs, table_merge, keep_partial)
    reader = m.reader
    pairs: list[tuple[str, str, str]] = []
    base, (ours, theirs), m.result.renames = follow_renames(
        reader, base, (ours, theirs), m.out, pairs
    )
    drop: dict[tuple[bytes, ...], TreeEntry | None] = {}
    for src, ours_dst, theirs_dst in pairs:
        rule = m.resolve(src)
        if rule is not None and rule.strategy in (Strategy.OURS, Strategy.THEIRS):
            # one target wins: the other side's copy goes
            drop[split_path(theirs_dst if rule.strategy is Strategy.OURS else ours_dst)] = None
            m.result.resolved.append((src, ConflictKind.RENAME_RENAME, rule.strategy))
            continue
        m.result.conflicts.append(
            Conflict(
                src,
                ConflictKind.RENAME_RENAME,
                side_info(entry_at(reader, base, src)[1]),
                side_info(entry_at(reader, ours, ours_dst)[1]),
                side_info(entry_at(reader, theirs, theirs_dst)[1]),
                f"renamed to {ours_dst} on ours and to {theirs_dst} on theirs",
            )
        )
    root = m.entry(b"", _root(base), _root(ours), _root(theirs))
    tree = ObjectId(root.ref) if root is not None else build_dir([], m.out)
    if drop and not m.result.conflicts:
        tree = edit_paths(reader, tree, drop, m.out)[0]
    m.result.intermediate |= bool(drop or m.result.renames)
    m.result.tree = tree
    return m.result
