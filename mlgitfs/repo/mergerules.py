"""Merge rules versioned with the data: `.mlgitfs/merge.toml` in the tree merged into.

    [[rule]]
    path = "labels/*.csv"     # a glob: * and ? stay within a name, ** crosses directories;
    strategy = "rows"         #   a glob without '/' matches a name at any depth
    key = ["image_id"]        # rows only: the key columns (none: the whole row is the key)

    [[rule]]
    path = "images/**"
    strategy = "union"

Strategies: ours, theirs, union (keep whichever side still has a file the other deleted),
rows (a row-level merge of a table), fail (report the conflict; the default). The first
rule whose glob matches a conflicted path decides; paths no rule covers take the command
line's `--strategy`, else fail. The file is read from ours (the branch merged into), so a
rule change merged in applies from the next merge on.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass

from mlgitfs.errors import PathNotFound, UsageError
from mlgitfs.model.ids import ChunkId, ObjectId
from mlgitfs.model.objects import EntryKind
from mlgitfs.repo.merge import Resolver, Rule, Strategy
from mlgitfs.repo.trees import file_chunks, resolve_path
from mlgitfs.store.facade import Store

RULES_PATH = ".mlgitfs/merge.toml"
MAX_RULES_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class PathRule:
    glob: str
    pattern: re.Pattern[str]
    rule: Rule


@functools.lru_cache(maxsize=1024)  # checks match every changed path against a few globs
def glob_pattern(glob: str, anywhere: bool = True) -> re.Pattern[str]:
    """`glob` as a regex; with `anywhere`, a glob without '/' matches a name at any depth."""
    out = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c))
        i += 1
    body = "".join(out)
    return re.compile(("(?:.*/)?" if anywhere and "/" not in glob else "") + body + "$")


def parse_rules(text: str, where: str = RULES_PATH) -> list[PathRule]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where} is not valid TOML: {exc}") from exc
    raw = doc.get("rule", [])
    if not isinstance(raw, list) or set(doc) - {"rule"}:
        raise UsageError(f"{where}: expected only [[rule]] tables")
    out = []
    for n, item in enumerate(raw, 1):
        what = f"{where}, rule {n}"
        if not isinstance(item, dict) or set(item) - {"path", "strategy", "key"}:
            raise UsageError(f"{what}: a rule has path, strategy and (rows only) key")
        glob, name, key = item.get("path"), item.get("strategy"), item.get("key", [])
        if not isinstance(glob, str) or not glob.strip("/"):
            raise UsageError(f"{what}: path must be a non-empty glob")
        try:
            strategy = Strategy(str(name))
        except ValueError:
            choices = ", ".join(s.value for s in Strategy)
            raise UsageError(f"{what}: unknown strategy {name!r} (one of {choices})") from None
        if not isinstance(key, list) or not all(isinstance(k, str) and k for k in key):
            raise UsageError(f"{what}: key must be a list of column names")
        if key and strategy is not Strategy.ROWS:
            raise UsageError(f"{what}: key is for the rows strategy only")
        glob = glob.strip("/")
        out.append(PathRule(glob, glob_pattern(glob), Rule(strategy, tuple(key), what)))
    return out


def load_rules(store: Store, tree: ObjectId) -> list[PathRule]:
    """The rules of `tree`'s `.mlgitfs/merge.toml` (none when it has no such file)."""
    try:
        entry = resolve_path(store, tree, [b".mlgitfs", b"merge.toml"])
    except PathNotFound:
        return []
    if entry is None or entry.kind not in (EntryKind.FILE, EntryKind.CHUNKED):
        return []
    if entry.size > MAX_RULES_BYTES:
        raise UsageError(f"{RULES_PATH} is larger than {MAX_RULES_BYTES} bytes")
    data = b"".join(store.read_chunk(ChunkId(c.id)) for c in file_chunks(store, entry))
    try:
        return parse_rules(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{RULES_PATH} is not UTF-8") from exc


def resolver(rules: list[PathRule], fallback: Strategy | None) -> Resolver:
    default = Rule(fallback, (), "--strategy") if fallback is not None else None

    def resolve(path: str) -> Rule | None:
        for r in rules:
            if r.pattern.match(path):
                return r.rule
        return default

    return resolve
