"""Reviewing history: log with its filters (repo/history.py) and blame (repo/blame.py), both
over the commit-graph index."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from mlgitfs.api._common import commit_info, open_store, parse_inputs, parse_meta, ref_index
from mlgitfs.api.results import (
    BlameCell,
    BlameItem,
    BlameResult,
    ChunkBlameItem,
    CommitInfo,
    RowBlameItem,
)
from mlgitfs.errors import InvalidRevspec, UsageError
from mlgitfs.merge.rows import EXTENSIONS
from mlgitfs.model.ids import ObjectId, to_hex
from mlgitfs.model.objects import EntryKind
from mlgitfs.model.revspec import parse_revspec
from mlgitfs.repo import blame as blame_mod
from mlgitfs.repo import blamechunks, blamerows, history, refs
from mlgitfs.store.facade import Store


def parse_time(text: str, option: str) -> int:
    """An ISO 8601 date or date and time (no zone: UTC) → nanoseconds since the epoch."""
    try:
        t = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise UsageError(
            f"{option} {text!r}: expected an ISO 8601 date or time, e.g. 2026-05-01 or "
            "2026-05-01T12:00:00+02:00"
        ) from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp()) * 10**9 + t.microsecond * 1000


def _pattern(text: str | None, option: str) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise UsageError(f"{option} {text!r}: not a regular expression ({exc})") from exc


def log(
    home: Path | None,
    revspec: str,
    paths: list[str] | str | None = None,
    limit: int | None = None,
    *,
    grep: str | None = None,
    author: str | None = None,
    since: str | None = None,
    until: str | None = None,
    meta: list[str] | None = None,
    inputs: list[str] | None = None,
    use_index: bool = True,
) -> list[CommitInfo]:
    """The history of REVSPEC (or of the range `REPO@A..B`: reachable from B, not from A),
    newest first, keeping the commits that pass every filter given (see LogQuery)."""
    if isinstance(paths, str):
        paths = [paths]
    store = open_store(home)
    exclude: tuple[ObjectId, ...] = ()
    left, dots, right = revspec.partition("..")
    if dots:
        if not left or not right:
            raise InvalidRevspec(f"cannot parse range {revspec[:120]!r}: expected REPO@A..B")
        a = refs.resolve(store, left)
        spec = parse_revspec(right if "@" in right else "@" + right, default_repo=a.repo)
        if a.spec.path or spec.path:
            raise InvalidRevspec(f"range {revspec[:120]!r}: a range names commits, not paths")
        r = refs.resolve(store, spec)
        exclude = (a.commit_id,)
    else:
        r = refs.resolve(store, revspec)
    parts = [tuple(parse_revspec(f"x:{p}").path) for p in paths or []]
    if r.spec.path:
        parts = [r.spec.path + p for p in parts] or [r.spec.path]
    if any(not p for p in parts):
        raise UsageError("--path: name a path inside the version, not its root")
    query = history.LogQuery(
        paths=tuple(dict.fromkeys(parts)),
        grep=_pattern(grep, "--grep"),
        author=_pattern(author, "--author"),
        since_ns=None if since is None else parse_time(since, "--since"),
        until_ns=None if until is None else parse_time(until, "--until"),
        meta=tuple(parse_meta(meta or []).items()),
        inputs=tuple(c for _, c in parse_inputs(store, inputs or [])),
        exclude=exclude,
        limit=limit,
        use_index=use_index,
    )
    names = ref_index(store, r.repo)
    return [
        commit_info(oid, c, tuple(names.get(bytes(oid), [])))
        for oid, c in history.log(store, [r.commit_id], query)
    ]


def blame(
    home: Path | None,
    revspec: str,
    key: list[str] | None = None,
    cells: bool = False,
    use_index: bool = True,
    rows: list[list[str]] | None = None,
    chunks: bool = False,
) -> BlameResult:
    """REPO@REF[:PATH] names a directory: each entry with the commit that last changed it
    (repo/blame.py); a CSV, TSV, JSONL or Parquet file: each row, by `key` (or the key of
    the path's rows merge rule), with the commit that last set it (repo/blamerows.py).
    With `cells`, each cell of a table too; with `rows`, only the rows whose key values read
    as one of those (the walk stops once each has its commit). Any other file, or a table
    with `chunks`: each content-defined chunk (a byte range) with the commit that introduced
    it (repo/blamechunks.py). Exact renames are followed."""
    store = open_store(home)
    r = refs.resolve(store, revspec)
    if r.entry is not None and not r.entry.is_dir:
        if not r.entry.is_file:
            raise UsageError(f"{revspec} is a symlink: blame a directory or a file")
        table = r.spec.path_str.lower().endswith(EXTENSIONS)
        if chunks and (key or cells or rows):
            raise UsageError("--chunks blames byte ranges: it takes no --key, --cells or --row")
        if chunks or not (table or key or cells or rows):
            return _blame_chunks(store, r, use_index)
        return _blame_rows(store, r, key or [], cells, use_index, rows)
    if key or cells or rows or chunks:
        option = "--key" if key else "--cells" if cells else "--row" if rows else "--chunks"
        raise UsageError(f"{option}: {revspec} is a directory; name a table file")
    lines = blame_mod.blame_dir(store, r.commit_id, r.spec.path, use_index)
    commits = {bytes(x.commit): store.commit(x.commit) for x in lines}
    kinds = {EntryKind.DIR: "dir", EntryKind.SYMLINK: "symlink"}
    out = []
    for x in lines:
        c = commits[bytes(x.commit)]
        out.append(
            BlameItem(
                x.entry.name.decode("utf-8", "surrogateescape"),
                kinds.get(x.entry.kind, "file"),
                to_hex(x.commit),
                c.author,
                c.time_ns,
                _subject(c.message),
                x.path.decode("utf-8", "surrogateescape"),
            )
        )
    return BlameResult("dir", r.spec.path_str, entries=tuple(out))


def _subject(message: str) -> str:
    return message.splitlines()[0] if message else ""


def _blame_chunks(store: Store, r: refs.Resolved, use_index: bool) -> BlameResult:
    assert r.entry is not None
    path = b"/".join(r.spec.path)
    blamed = blamechunks.blame_chunks(store, r.commit_id, path, r.entry, use_index)
    commits = {bytes(x.commit): store.commit(x.commit) for x in blamed}
    items = []
    for x in blamed:
        c = commits[bytes(x.commit)]
        items.append(
            ChunkBlameItem(
                x.start,
                x.start + x.length,
                x.chunk.hex(),
                to_hex(x.commit),
                c.author,
                c.time_ns,
                _subject(c.message),
                x.path.decode("utf-8", "surrogateescape"),
            )
        )
    return BlameResult("chunks", r.spec.path_str, chunks=tuple(items))


def _blame_rows(
    store: Store,
    r: refs.Resolved,
    key: list[str],
    cells: bool,
    use_index: bool,
    only: list[list[str]] | None,
) -> BlameResult:
    blamed = blamerows.blame_rows(store, r.commit_id, r.spec.path, key, use_index, cells, only)
    ids = {bytes(x.commit) for x in blamed.rows} | {
        bytes(cid) for x in blamed.rows for _, cid, _ in x.cells
    }
    commits = {i: store.commit(ObjectId(i)) for i in ids}
    items = []
    for x in blamed.rows:
        c = commits[bytes(x.commit)]
        cell_items = tuple(
            BlameCell(
                column,
                to_hex(cid),
                commits[bytes(cid)].author,
                commits[bytes(cid)].time_ns,
                p.decode("utf-8", "surrogateescape"),
            )
            for column, cid, p in x.cells
        )
        items.append(
            RowBlameItem(
                tuple(blamed.show(cell) for cell in x.key),
                to_hex(x.commit),
                c.author,
                c.time_ns,
                _subject(c.message),
                x.path.decode("utf-8", "surrogateescape"),
                cell_items,
            )
        )
    return BlameResult("rows", r.spec.path_str, key_columns=blamed.key_columns, rows=tuple(items))
