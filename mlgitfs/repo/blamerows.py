"""Blame of a table's rows by key: for each row of a CSV, TSV, JSONL or Parquet file, the
commit that last set it.

A row is *set* by the first commit, in log order, whose table holds a different row under
that key than its first parent's table does (added, or any cell changed); the walk is the
one of `log --path FILE` (history.py), so commits whose changed-path filter says the file
surely did not change are passed over, and only the versions of the file that changed are
read and decoded (each once, by content id). Exact renames are followed as in blame.py: a
file moved unchanged keeps its rows' commits. The key is `--key COL...` or the key of the
repo's `rows` merge rule for the path (.mlgitfs/merge.toml at the blamed version).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mlgitfs.errors import DuplicateKey, MissingKeyColumn, NotFound, UsageError
from mlgitfs.merge.csvtable import CsvCodec
from mlgitfs.merge.rows import codec_for
from mlgitfs.merge.table import ABSENT, Cell, Decoded, Record, Row
from mlgitfs.merge.text import TextCodec, TextTable
from mlgitfs.model import manifestraw
from mlgitfs.model.ids import ChunkId, ObjectId
from mlgitfs.model.manifestraw import RawManifest
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo import rowruns
from mlgitfs.repo.blame import file_history
from mlgitfs.repo.chunklayout import ChunkCache, Layout
from mlgitfs.repo.chunkrows import Span, TableVersions
from mlgitfs.repo.commitindex import EntryCache, cached_entry
from mlgitfs.repo.merge import Strategy
from mlgitfs.repo.mergerules import load_rules, resolver
from mlgitfs.repo.trees import file_chunks
from mlgitfs.store.facade import Store

Key = tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class RowBlame:
    key: Key
    row: Row
    commit: ObjectId
    path: bytes  # where the file was in that commit
    cells: tuple[tuple[str, ObjectId, bytes], ...] = ()  # with `cells`: column, commit, path


@dataclass(frozen=True, slots=True)
class RowsBlamed:
    key_columns: tuple[str, ...]
    rows: list[RowBlame]  # in the order of the blamed version's table
    show: Callable[[Cell], str]  # the codec's cell formatter, for rendering
    by_chunks: int = 0  # versions compared from their chunk lists, not decoded whole
    chunks_read: int = 0  # chunks read from the store for those (the blamed version's too)
    by_runs: int = 0  # of those, versions passed over from their encoded manifests alone


Changes = dict[Key, tuple[Row | None, Row | None]]  # key → (newer row, older row), differing


class _Tables:
    """The rows of a file's versions that differ, by key: from the chunk lists where the
    format allows (repo/chunkrows.py), else from both versions decoded whole."""

    def __init__(self, store: Store, path: str, key: tuple[str, ...]) -> None:
        self.store = store
        self.codec = codec_for(path)
        self.path = path
        self.key = key
        self.whole: dict[bytes, dict[Key, Row]] = {}  # the last versions decoded whole
        self.versions: TableVersions | None = None
        self.layouts: dict[bytes, Layout] = {}
        self.raw: dict[bytes, RawManifest | None] = {}  # the last versions' encoded manifests
        self.fast = 0  # versions compared by their chunks (tests, bench)
        self.by_runs = 0  # of those, versions placed from their encoded manifests (rowruns.py)
        # with rows asked for: where each still to be answered is in the version `track_ref`
        self.track: dict[Key, Span] | None = None
        self.track_ref = b""

    def head(self, entry: TreeEntry, only: Sequence[Sequence[str]] | None) -> list[tuple[Key, Row]]:
        """The blamed version's rows in file order (only those whose key reads as one of
        `only`, when given), checked as a table."""
        cache = ChunkCache(self.store)  # its chunks are the next older version's, mostly
        layout = Layout(file_chunks(self.store, entry), cache)
        cut = self._prefix(layout, only)
        table = self.codec.decode(layout.read(0, cut), "blamed", self.path)
        self._check_columns(table.columns)
        if isinstance(self.codec, TextCodec) and isinstance(table, TextTable):
            self.versions = TableVersions(
                cache, self.codec, self.path, self.key, table.work_encoding
            )
        if only is not None:
            want = [tuple(v) for v in only]
            try:
                out, where = self._only(table, want)
            except NotFound:
                if cut == layout.size:
                    raise
                table = self.codec.decode(layout.read(0, layout.size), "blamed", self.path)
                out, where = self._only(table, want)
            if self.versions is not None and where is not None:
                self.track, self.track_ref = where, entry.ref
            return out
        out = [(self._key_of(r), r) for r in self.codec.all_rows(table)]
        seen: set[Key] = set()
        for k, _ in out:
            if k in seen:
                self._twice(k)
            seen.add(k)
        return out

    def _prefix(self, layout: Layout, only: Sequence[Sequence[str]] | None) -> int:
        """How much of the blamed version to decode: with rows asked for by a one-column key
        of a text table, up to the end of the record holding the last of their key texts
        (chunks read in order, the reading stopped there), else all of it. A text that is
        only a look-alike (in another column) makes `_only` miss the row: then all of it."""
        if only is None or len(self.key) != 1 or not isinstance(self.codec, TextCodec):
            return layout.size
        needles = {w[0].encode("utf-8") for w in only if len(w) == 1}
        if len(needles) != len(only) or any(not n or b'"' in n for n in needles):
            return layout.size
        quoted = self.codec.name != "jsonl"
        longest = max(len(n) for n in needles)
        tail, odd, at, last = b"", False, 0, 0
        for i, ref in enumerate(layout.refs):
            data = layout.cache.get(ref)
            if i == 0 and data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
                return layout.size  # UTF-16/32: transcoded whole
            seen = tail + data
            base = at - len(tail)
            for n in list(needles):
                hit = seen.find(n)
                if hit >= 0:
                    needles.discard(n)
                    last = max(last, base + hit + len(n))
            if not needles:
                if quoted:  # the parity at `last`: the quotes before it
                    odd ^= data.count(b'"', 0, max(last - at, 0)) % 2 == 1
                end = layout.record_start_after(last, layout.size, odd, quoted)
                return layout.size if end is None else end
            odd ^= quoted and data.count(b'"') % 2 == 1
            tail = seen[-(longest - 1) :] if longest > 1 else b""
            at += len(data)
        return layout.size

    def _only(
        self, table: Decoded, want: list[tuple[str, ...]]
    ) -> tuple[list[tuple[Key, Row]], dict[Key, Span] | None]:
        """The rows asked for, and where each is in the file (None: not known)."""
        records: Sequence[Record] | None = None
        if len(self.key) == 1 and isinstance(self.codec, CsvCodec):  # cells: the text asked
            records = self.codec.records_with(table, self.key[0], {w[0] for w in want if w})
        if records is None and isinstance(self.codec, TextCodec):
            assert isinstance(table, TextTable)
            records = self.codec.records(table, [(table.data_start, len(table.data))])
        if records is None:
            records = [Record(-1, -1, r) for r in self.codec.all_rows(table)]
        out: list[tuple[Key, Row]] = []
        where: dict[Key, Span] | None = {}
        got: set[tuple[str, ...]] = set()
        for rec in records:
            k = self._key_of(rec.row)
            shown = tuple(self.codec.show(c) for c in k)
            if shown in want:
                if shown in got:
                    self._twice(k)
                got.add(shown)
                out.append((k, rec.row))
                if where is not None and rec.ref >= 0:
                    where[k] = (rec.ref, rec.end)
                else:
                    where = None
        missing = [w for w in want if w not in got]
        if missing:
            raise NotFound(f"{self.path}: no row with the key ({', '.join(missing[0])})")
        return out, where

    def forget(self, keys: Iterable[Key]) -> None:
        """Stop tracking rows that have their answer."""
        if self.track is not None:
            for k in keys:
                self.track.pop(k, None)

    def changes(self, now: TreeEntry | None, before: TreeEntry | None) -> Changes | None:
        """The rows that differ from `before` to `now` (None: `before` is no file and `now`
        is one, every row of `now` is new)."""
        if now is None or not now.is_file:  # deleted here (a side branch of a merge)
            return {k: (None, r) for k, r in self._whole(before).items()} if before else {}
        if before is None or not before.is_file:
            return None
        if self.versions is not None:
            track = self.track if self.track_ref == now.ref else None
            moved = self._by_runs(now, before, track) if track else None
            if moved is not None:  # every tracked row lies in chunks both versions hold
                self.track, self.track_ref = moved, before.ref
                self.fast += 1
                self.by_runs += 1
                return {}
            got = self.versions.changes(self._layout(before), self._layout(now), track)
            self.track = got.old_at if got is not None else None
            self.track_ref = before.ref
            if got is not None:
                self.fast += 1
                return got.rows
        a, b = self._whole(now), self._whole(before)
        return {k: (a.get(k), b.get(k)) for k in a.keys() | b.keys() if a.get(k) != b.get(k)}

    def _by_runs(
        self, now: TreeEntry, before: TreeEntry, track: dict[Key, Span]
    ) -> dict[Key, Span] | None:
        """Where the tracked rows are in `before`, from the two encoded manifests alone
        (rowruns.py), when both versions start with the same chunk holding the whole header
        (one already read); None when this cannot tell."""
        assert self.versions is not None
        new, old = self._raw(now), self._raw(before)
        if new is None or old is None:
            return None
        first = new.chunk_id(0)
        if old.chunk_id(0) != first or self.versions.by_first.get(first) is None:
            return None
        return rowruns.place(new, old, track, self.versions.cache, self.versions.quoted)

    def _raw(self, entry: TreeEntry) -> RawManifest | None:
        """A chunked version's manifest as its encoded bytes (manifestraw.py; the last few
        kept: each is the older version of one comparison and the newer of the next); None
        when it is not of that form, not local, or disagrees with the entry's size (the
        full decode then says so)."""
        if entry.kind is not EntryKind.CHUNKED:
            return None
        if entry.ref in self.raw:
            got = self.raw.pop(entry.ref)
        else:
            data = self.store.get_raw(ObjectId(entry.ref))
            got = None if data is None else manifestraw.parse(data, entry.ref)
            if got is not None and got.size != entry.size:
                got = None
        self.raw[entry.ref] = got
        while len(self.raw) > 3:
            self.raw.pop(next(iter(self.raw)))
        return got

    def _layout(self, entry: TreeEntry) -> Layout:
        """A version's chunks; the older one of a comparison is the newer one of the next,
        so the last two are kept (with what is known of their quote parities)."""
        assert self.versions is not None
        got = self.layouts.pop(entry.ref, None)
        if got is None:
            got = self.versions.layout(file_chunks(self.store, entry))
        self.layouts[entry.ref] = got  # the most recent last
        while len(self.layouts) > 3:
            self.layouts.pop(next(iter(self.layouts)))
        return got

    def _whole(self, entry: TreeEntry) -> dict[Key, Row]:
        if not entry.is_file:
            return {}
        got = self.whole.get(entry.ref)
        if got is None:
            got = self._decode(entry_bytes(self.store, entry))
            if len(self.whole) >= 2:  # a walk compares each version with the next older one
                self.whole.pop(next(iter(self.whole)))
            self.whole[entry.ref] = got
        return got

    def _key_of(self, row: Row) -> Key:
        return tuple(row.get(c, ABSENT) for c in self.key)

    def _check_columns(self, cols: tuple[str, ...] | None) -> None:
        if cols is not None:
            missing = [c for c in self.key if c not in cols]
            if missing:
                raise MissingKeyColumn(f"{self.path}: no key column {', '.join(missing)}")

    def _twice(self, k: Key) -> None:
        shown = ", ".join(self.codec.show(c) for c in k)
        raise DuplicateKey(f"{self.path}: two rows with the key ({shown})")

    def _decode(self, data: bytes) -> dict[Key, Row]:
        table = self.codec.decode(data, "blamed", self.path)
        self._check_columns(table.columns)
        out: dict[Key, Row] = {}
        for row in self.codec.all_rows(table):
            k = self._key_of(row)
            if k in out:
                self._twice(k)
            out[k] = row
        return out


def entry_bytes(store: Store, entry: TreeEntry, seen: dict[bytes, bytes] | None = None) -> bytes:
    """A file's bytes; chunks already in `seen` (by id) are not read again."""
    seen = {} if seen is None else seen
    parts = []
    for c in file_chunks(store, entry):
        got = seen.get(c.id)
        if got is None:
            got = seen[c.id] = store.read_chunk(ChunkId(c.id))
        parts.append(got)
    return b"".join(parts)


def table_key(store: Store, tree: ObjectId, path: str, key: Sequence[str]) -> tuple[str, ...]:
    """`key`, else the key of the path's `rows` rule in `tree`; none is a UsageError."""
    keys = tuple(key) or rule_key(store, tree, path)
    if not keys:
        raise UsageError(
            f"{path}: name the key columns with --key COL, or give the path a rows rule "
            "with a key in .mlgitfs/merge.toml"
        )
    return keys


def rule_key(store: Store, tree: ObjectId, path: str) -> tuple[str, ...]:
    """The key of the `rows` merge rule for `path` in `tree`'s rules (empty: none)."""
    rule = resolver(load_rules(store, tree), None)(path)
    if rule is None or rule.strategy is not Strategy.ROWS:
        return ()
    return rule.key


def blame_rows(
    store: Store,
    head: ObjectId,
    path: Sequence[bytes],
    key: Sequence[str] = (),
    use_index: bool = True,
    cells: bool = False,
    only: Sequence[Sequence[str]] | None = None,
) -> RowsBlamed:
    """Each row of the table at `path` of `head` with the commit that last set it; with
    `cells`, each cell too (the first commit where that column of that row differs from the
    first parent's; a row that is not there has no cells). With `only`, just the rows whose
    key values read as one of those (NotFound when one is not in the table): the walk
    stops as soon as each has its commit."""
    text = b"/".join(path).decode("utf-8", "surrogateescape")
    tree = store.commit(head).tree
    codec_for(text)  # a name no table format reads is refused first (TableError)
    keys = table_key(store, tree, text, key)
    tables = _Tables(store, text, keys)
    cache: EntryCache = {}
    entry = cached_entry(store, tree, tuple(path), cache)
    assert entry is not None and entry.is_file  # the caller resolved it
    ordered = tables.head(entry, only)
    rows_left = {k for k, _ in ordered}
    cells_left = {k: set(r) for k, r in ordered} if cells else {}
    found: dict[Key, tuple[ObjectId, bytes]] = {}
    found_cells: dict[tuple[Key, str], tuple[ObjectId, bytes]] = {}
    follow = b"/".join(path)
    history = file_history(store, head, follow, use_index)
    for commit, follow, now, before in history if rows_left or cells_left else ():
        here = (commit, follow)
        changes = tables.changes(now, before)
        if changes is None:  # the file is new here (or was no file): it set every row
            found.update((k, here) for k in rows_left)
            found_cells.update(((k, c), here) for k, cols in cells_left.items() for c in cols)
            break
        for k, (a, b) in changes.items():
            if k in rows_left:
                found[k] = here
                rows_left.discard(k)
            cols = cells_left.get(k)
            if cols:
                hit = [
                    c
                    for c in cols
                    if a is None or b is None or a.get(c, ABSENT) != b.get(c, ABSENT)
                ]
                for c in hit:
                    found_cells[(k, c)] = here
                    cols.discard(c)
                if not cols:
                    del cells_left[k]
        tables.forget(k for k in changes if k not in rows_left and k not in cells_left)
        if not rows_left and not cells_left:
            break
    else:
        # nothing set these: the walk ended (unreachable in a sound store)
        found.update((k, (head, follow)) for k in rows_left)
        found_cells.update(((k, c), (head, follow)) for k, cols in cells_left.items() for c in cols)
    rows = [
        RowBlame(k, r, *found[k], tuple((c, *found_cells[(k, c)]) for c in r) if cells else ())
        for k, r in ordered
    ]
    reads = 0
    if tables.versions is not None:
        reads = tables.versions.cache.reads
        tables.versions.cache.save()
    return RowsBlamed(keys, rows, tables.codec.show, tables.fast, reads, tables.by_runs)
