"""A plain reference for the row-level merge: whole tables parsed into key -> row dicts.

Written without the merge's shortcuts (no hunks, no raw-byte comparison): every row of
every side is parsed, rows are matched by key, and the rules of mlgitfs/merge/rows.py's
docstring are applied as they read. Cells of absent columns are ``None`` here.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

Row = dict[str, object]


@dataclass
class Table:
    columns: tuple[str, ...] | None  # None: JSON Lines (rows carry their fields)
    rows: list[Row]


class RefError(Exception):
    pass


def parse_csv(data: bytes, delimiter: str = ",") -> Table:
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows = [r for r in reader if r]
    if not rows:
        return Table((), [])
    header = tuple(rows[0])
    return Table(header, [dict(zip(header, r, strict=True)) for r in rows[1:]])


def parse_jsonl(data: bytes) -> Table:
    rows: list[Row] = []
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            rows.append({k: canon(v) for k, v in obj.items()})
    return Table(None, rows)


def canon(v: object) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def three(b: object, o: object, t: object) -> tuple[bool, object]:
    if o == t or b == t:
        return True, o
    if b == o:
        return True, t
    return False, o


Conflict = tuple[str, tuple[str, ...], str, object, object, object]


def merge(
    base: Table | None, ours: Table, theirs: Table, key: Sequence[str]
) -> tuple[Table | None, set[Conflict]]:
    """(merged table or None, conflicts as (kind, key, column, base, ours, theirs))."""
    conflicts: set[Conflict] = set()
    columnar = ours.columns is not None
    bcols = base.columns if base is not None else None
    if columnar:
        assert ours.columns is not None and theirs.columns is not None
        oc, tc = ours.columns, theirs.columns
        keycols: tuple[str, ...] | None = tuple(key) or (
            bcols if bcols is not None else tuple(c for c in oc if c in tc)
        )
        assert keycols is not None
        for c in keycols:
            if c not in oc or c not in tc:
                conflicts.add(
                    ("key columns", (), c, c, c if c in oc else None, c if c in tc else None)
                )
        if conflicts:
            return None, conflicts
        bset = set(bcols or ())
        present = [c for c in oc if three(c in bset, c in oc, c in tc)[1]]
        present += [c for c in tc if c not in oc and three(c in bset, False, True)[1]]
        out_cols: tuple[str, ...] | None = tuple(present)
    else:
        keycols = tuple(key) or None
        out_cols = None

    def key_of(row: Row) -> tuple[object, ...]:
        if keycols is None:
            return tuple(sorted(row.items()))  # type: ignore[arg-type]
        return tuple(row[c] for c in keycols)

    def index(t: Table | None) -> dict[tuple[object, ...], Row]:
        out: dict[tuple[object, ...], Row] = {}
        for r in t.rows if t is not None else []:
            k = key_of(r)
            if k in out:
                raise RefError(f"duplicate key {k}")
            out[k] = r
        return out

    bmap, omap, tmap = index(base), index(ours), index(theirs)

    def show_key(k: tuple[object, ...]) -> tuple[str, ...]:
        if keycols is None:
            return tuple(f"{c}={v}" for c, v in k)  # type: ignore[misc]
        return tuple(str(v) for v in k)

    def cells(k: tuple[object, ...], b: Row, o: Row, t: Row) -> Row:
        out: Row = {}
        for c in (
            list(o) + [c for c in t if c not in o] + [c for c in b if c not in o and c not in t]
        ):
            ok, v = three(b.get(c), o.get(c), t.get(c))
            if not ok:
                conflicts.add(("cell", show_key(k), c, b.get(c), o.get(c), t.get(c)))
            if v is not None:
                out[c] = v
        return out

    def row(k: tuple[object, ...]) -> Row | None:
        b, o, t = bmap.get(k), omap.get(k), tmap.get(k)
        if o == t or b == t:
            return o
        if b == o:
            return t
        if b is None:
            assert o is not None and t is not None
            return cells(k, {}, o, t)
        if o is None or t is None:
            kind = "delete/modify" if o is None else "modify/delete"
            changed = t if o is None else o
            assert changed is not None
            for c in set(changed) | set(b):
                if b.get(c) != changed.get(c):
                    ov, tv = (None, changed.get(c)) if o is None else (changed.get(c), None)
                    conflicts.add((kind, show_key(k), c, b.get(c), ov, tv))
            return o
        return cells(k, b, o, t)

    for k in bmap:  # rows that end up in neither side can still conflict
        if k not in omap and k not in tmap:
            continue
        if k not in omap:
            row(k)
    rows: list[Row] = []
    for k in omap:
        r = row(k)
        if r is not None:
            rows.append(r)
    for k in tmap:
        if k not in omap and k not in bmap:
            r = row(k)
            if r is not None:
                rows.append(r)
    if conflicts:
        return None, conflicts
    if out_cols is not None:
        rows = [{c: r.get(c) for c in out_cols} for r in rows]
    return Table(out_cols, rows), conflicts
