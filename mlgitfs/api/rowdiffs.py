"""Row-level diffs of the tables that differ between two versions (`diff --rows`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mlgitfs.api.results import CellDiff, RowDiffItem, RowDiffResult, TableDiffItem
from mlgitfs.api.verbs import changed
from mlgitfs.merge.rows import EXTENSIONS
from mlgitfs.merge.table import ABSENT, Cell
from mlgitfs.model.changes import ChangeKind
from mlgitfs.model.ids import to_hex
from mlgitfs.repo import refs
from mlgitfs.repo.blame import path_at_ancestor
from mlgitfs.repo.blamerows import entry_bytes, table_key
from mlgitfs.repo.diff import DiffEntry
from mlgitfs.repo.expiry import explain_missing
from mlgitfs.repo.rowdiff import RowsDiffed, diff_table
from mlgitfs.store.facade import Store


def _in_version(r: refs.Resolved, path: str) -> str:
    """A path inside the diffed directory as a path of the version (for its merge rules)."""
    return f"{r.spec.path_str}/{path}" if r.spec.path else path


def diff_rows(
    home: Path | None, a: str, b: str, paths: list[str] | None = None, key: Sequence[str] = ()
) -> RowDiffResult:
    """The rows added, removed and changed in each table (CSV, TSV, JSONL, Parquet) that
    differs between A and B, by `key` (else the key of the table's rows merge rule, in B's
    rules; in A's for a table B deleted). A table renamed exactly has no row changes; other
    files are left out. A table renamed in one commit and changed in another between A and
    B is diffed against its old path."""
    store, ra, rb, entries = changed(home, a, b, paths, _follow_renames)
    names = (a, b)
    tables: list[TableDiffItem] = []
    seen: dict[bytes, bytes] = {}  # chunk id → bytes: a chunk both sides hold is read once
    for d in entries:
        old_path = d.old_path or d.path
        if not d.path.lower().endswith(EXTENSIONS) and not old_path.lower().endswith(EXTENSIONS):
            continue
        if d.old is not None and d.new is not None and d.old.ref == d.new.ref:  # exact rename
            tables.append(TableDiffItem(d.path, d.change.value, d.old_path, (), (), (), ()))
            continue
        old = d.old if d.old is not None and d.old.is_file else None
        new = d.new if d.new is not None and d.new.is_file else None
        side = rb if new is not None else ra
        keys = table_key(store, side.commit.tree, _in_version(side, d.path), key)
        with explain_missing(store, side.repo, side.commit_id):
            got = diff_table(
                d.path,
                entry_bytes(store, old, seen) if old is not None else None,
                entry_bytes(store, new, seen) if new is not None else None,
                keys,
                names,
            )
        tables.append(_item(d.path, d.change.value, d.old_path, got))
    return RowDiffResult(to_hex(ra.commit_id), to_hex(rb.commit_id), tuple(tables))


def _follow_renames(
    store: Store, ra: refs.Resolved, rb: refs.Resolved, entries: list[DiffEntry]
) -> list[DiffEntry]:
    """A table B added that was renamed (exactly) in a commit between A and B and changed in
    another is paired with the table A has at its old path: that pair is diffed as one
    table, renamed. Only when A is on B's first-parent chain; each added table costs a walk
    of that chain (the changed-path filters pass over commits that did not touch it)."""
    gone = {
        d.path: d
        for d in entries
        if d.change is ChangeKind.DELETED and d.path.lower().endswith(EXTENSIONS)
    }
    if not gone or ra.commit_id == rb.commit_id:
        return entries
    pairs: dict[str, DiffEntry] = {}  # new path → A's deleted entry it was
    for d in entries:
        if d.change is not ChangeKind.ADDED or not d.path.lower().endswith(EXTENSIONS):
            continue
        full = _in_version(rb, d.path).encode("utf-8", "surrogateescape")
        was = path_at_ancestor(store, rb.commit_id, ra.commit_id, full)
        if was is None:
            return entries  # A is not on B's first-parent chain
        old = was.decode("utf-8", "surrogateescape")
        base = f"{ra.spec.path_str}/" if ra.spec.path else ""
        if old != _in_version(rb, d.path) and old.startswith(base) and old[len(base) :] in gone:
            pairs[d.path] = gone.pop(old[len(base) :])
    if not pairs:
        return entries
    used = {x.path for x in pairs.values()}
    out = []
    for d in entries:
        if d.path in pairs and d.change is ChangeKind.ADDED:
            prev = pairs[d.path]
            d = replace(d, change=ChangeKind.RENAMED, old=prev.old, old_path=prev.path)
        elif d.change is ChangeKind.DELETED and d.path in used:
            continue
        out.append(d)
    return out


def _item(path: str, change: str, old_path: str, got: RowsDiffed) -> TableDiffItem:
    def text(cell: Cell) -> str | None:
        return None if cell is ABSENT else got.show(cell)

    rows = tuple(
        RowDiffItem(
            r.change,
            tuple(got.show(v) for v in r.key),
            tuple(CellDiff(c.column, text(c.before), text(c.after)) for c in r.cells),
        )
        for r in got.rows
    )
    return TableDiffItem(
        path, change, old_path, got.key_columns, got.columns_added, got.columns_removed, rows
    )
