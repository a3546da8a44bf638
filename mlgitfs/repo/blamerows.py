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

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlgitfs.errors import DuplicateKey, MissingKeyColumn, UsageError
from mlgitfs.merge.rows import codec_for
from mlgitfs.merge.table import ABSENT, Cell, Row
from mlgitfs.model import bloom
from mlgitfs.model.ids import ChunkId, ObjectId
from mlgitfs.model.objects import TreeEntry
from mlgitfs.repo.blame import follow_rename
from mlgitfs.repo.commitindex import EntryCache, cached_entry
from mlgitfs.repo.history import Graph, walk_ids
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


class _Tables:
    """Rows by key of a file's versions, decoded once per content id."""

    def __init__(self, store: Store, path: str, key: tuple[str, ...]) -> None:
        self.store = store
        self.codec = codec_for(path)
        self.path = path
        self.key = key
        self.cache: dict[bytes, dict[Key, Row]] = {}

    def rows(self, entry: TreeEntry | None) -> dict[Key, Row]:
        if entry is None or not entry.is_file:
            return {}
        got = self.cache.get(entry.ref)
        if got is None:
            got = self.cache[entry.ref] = self._decode(self._bytes(entry))
        return got

    def ordered(self, entry: TreeEntry) -> list[tuple[Key, Row]]:
        data = self._bytes(entry)
        table = self.codec.decode(data, "blamed", self.path)
        return [(self._key_of(r), r) for r in self.codec.all_rows(table)]

    def _bytes(self, entry: TreeEntry) -> bytes:
        return entry_bytes(self.store, entry)

    def _key_of(self, row: Row) -> Key:
        return tuple(row.get(c, ABSENT) for c in self.key)

    def _decode(self, data: bytes) -> dict[Key, Row]:
        table = self.codec.decode(data, "blamed", self.path)
        rows = self.codec.all_rows(table)
        cols = table.columns
        if cols is not None:
            missing = [c for c in self.key if c not in cols]
            if missing:
                raise MissingKeyColumn(f"{self.path}: no key column {', '.join(missing)}")
        out: dict[Key, Row] = {}
        for row in rows:
            k = self._key_of(row)
            if k in out:
                shown = ", ".join(self.codec.show(c) for c in k)
                raise DuplicateKey(f"{self.path}: two rows with the key ({shown})")
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
) -> RowsBlamed:
    """Each row of the table at `path` of `head` with the commit that last set it; with
    `cells`, each cell too (the first commit where that column of that row differs from the
    first parent's; a row that is not there has no cells)."""
    text = b"/".join(path).decode("utf-8", "surrogateescape")
    tree = store.commit(head).tree
    codec_for(text)  # a name no table format reads is refused first (TableError)
    keys = table_key(store, tree, text, key)
    tables = _Tables(store, text, keys)
    cache: EntryCache = {}
    entry = cached_entry(store, tree, tuple(path), cache)
    assert entry is not None and entry.is_file  # the caller resolved it
    today = tables.rows(entry)
    # (key, None) for a row, (key, column) for a cell
    pending: set[tuple[Key, str | None]] = {(k, None) for k in today}
    if cells:
        pending |= {(k, c) for k, row in today.items() for c in row}
    found: dict[tuple[Key, str | None], tuple[ObjectId, bytes]] = {}
    follow = b"/".join(path)
    graph = Graph(store, use_index)
    for raw in walk_ids(graph, [head], None):
        if not pending:
            break
        node = graph.node(raw)
        bits = node.paths if node.indexed else None
        if bits is not None and not bloom.may_contain(bits, bloom.path_hash(follow)):
            continue
        parent = graph.node(bytes(node.parents[0])).tree if node.parents else None
        parts = tuple(follow.split(b"/"))
        if not graph.touched(raw, parts, cache):
            continue
        old = follow_rename(store, parent, node.tree, follow, cache)
        if old is not None:  # moved unchanged: the rows are as they were at the old path
            follow = old
            continue
        now = tables.rows(cached_entry(store, node.tree, parts, cache))
        before = tables.rows(cached_entry(store, parent, parts, cache))
        for item in [i for i in pending if _differs(now, before, *i)]:
            found[item] = (ObjectId(raw), follow)
            pending.discard(item)
    for item in pending:  # nothing set it: the walk ended (unreachable in a sound store)
        found[item] = (head, follow)
    rows = [
        RowBlame(
            k,
            r,
            *found[(k, None)],
            tuple((c, *found[(k, c)]) for c in r) if cells else (),
        )
        for k, r in tables.ordered(entry)
    ]
    return RowsBlamed(keys, rows, tables.codec.show)


def _differs(now: dict[Key, Row], before: dict[Key, Row], key: Key, column: str | None) -> bool:
    a, b = now.get(key), before.get(key)
    if column is None or a is None or b is None:
        return a != b
    return a.get(column, ABSENT) != b.get(column, ABSENT)
