"""Hooks and built-in checks versioned with the data: `.mlgitfs/hooks.toml` in a tree.

    [[branch]]                  # rules per branch pattern (the first that matches decides)
    pattern = "main"            #   a glob over branch names (* within a segment, ** across)
    allow_skip = false          #   --no-verify refused here (default: allowed)
    protected = true            #   moved only by `promote` (protected.py: which operations may)
    merges_only = false         #   true: protected, but `merge --into` may move it too
    required_checks = ["labels-schema"]   # run by promote and merge, whatever their events
    signed_by = "maintainer"    #   a move must be signed by a key holding this role (signedby.py)

    [[hook]]                    # a command run on a read-only view of the candidate
    name = "labels-sane"
    events = ["pre-commit"]     # pre-commit, pre-merge, pre-push, post-commit
    command = ["python3", "/opt/checks/labels.py"]   # argv; a string runs through sh -c
    branches = ["main"]         # default: every branch
    timeout = 60                # seconds (default 300); the hook's process group is killed

    [[check]]                   # a built-in validator: no code
    name = "labels-schema"
    events = ["pre-commit", "pre-push"]
    type = "table"              # max-size, paths, table, image
    path = "labels/*.csv"
    columns = { image_id = "int", label = "str" }
    key = ["image_id"]

The file is read from the branch's current head (the version the candidate would replace),
never from the candidate: a change to it takes effect once committed. A branch with no head
yet (its first commit, or its first push to a remote) reads the candidate's own file.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import Protocol

from mlgitfs.errors import PathNotFound, UsageError
from mlgitfs.model.access import Role
from mlgitfs.model.ids import ChunkId, ObjectId
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.mergerules import glob_pattern
from mlgitfs.repo.trees import ObjectReader, file_chunks, resolve_path
from mlgitfs.store.facade import parse_size

HOOKS_PATH = ".mlgitfs/hooks.toml"
MAX_HOOKS_BYTES = 1 << 20
EVENTS = ("pre-commit", "pre-merge", "pre-push", "post-commit")
CHECK_TYPES = ("max-size", "paths", "table", "image")
COLUMN_TYPES = ("str", "int", "float", "bool")
DEFAULT_TIMEOUT = 300.0
# Bumped whenever a built-in check's verdict on the same content could change: a cached
# result is keyed by it, so an upgrade re-checks instead of trusting an older verdict.
VALIDATOR_VERSION = 1


@dataclass(frozen=True, slots=True)
class Hook:
    """A `[[hook]]` (a command) or a `[[check]]` (a built-in validator, `command` empty)."""

    name: str
    events: tuple[str, ...]
    branches: tuple[str, ...]  # globs; empty: every branch
    command: tuple[str, ...] = ()  # argv; ("sh", "-c", text) for a string
    timeout: float = DEFAULT_TIMEOUT
    check: str = ""  # the built-in's type
    options: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
    digest: str = ""  # of the definition: the results cache's key with the tree id

    @property
    def kind(self) -> str:
        return "check" if self.check else "hook"

    def applies(self, event: str, branch: str) -> bool:
        if event not in self.events:
            return False
        return not self.branches or any(_branch_glob(g).match(branch) for g in self.branches)


@dataclass(frozen=True, slots=True)
class BranchRule:
    pattern: str
    allow_skip: bool = True
    protected: bool = False  # moved only by `promote` (and `merge --into` if merges_only)
    merges_only: bool = False  # protected, and `merge --into` may move it too
    required_checks: tuple[str, ...] = ()  # hooks or checks a promotion or merge must pass
    signed_by: Role | None = None  # a move must be signed by a key holding this role

    @property
    def guarded(self) -> bool:
        return self.protected or self.merges_only


@dataclass(frozen=True, slots=True)
class HooksFile:
    hooks: tuple[Hook, ...] = ()
    rules: tuple[BranchRule, ...] = ()
    source: str = ""  # hex SHA-256 of the file's bytes ("": no file); attestations name it

    def for_event(self, event: str, branch: str) -> list[Hook]:
        return [h for h in self.hooks if h.applies(event, branch)]

    def rule(self, branch: str) -> BranchRule | None:
        """The first rule whose pattern matches `branch` (None: no rule)."""
        for r in self.rules:
            if _branch_glob(r.pattern).match(branch):
                return r
        return None

    def allow_skip(self, branch: str) -> bool:
        r = self.rule(branch)
        return r is None or r.allow_skip

    def required(self, branch: str) -> list[Hook]:
        r = self.rule(branch)
        names = r.required_checks if r is not None else ()
        return [h for n in names for h in self.hooks if h.name == n]


def _branch_glob(glob: str) -> re.Pattern[str]:
    # Branch names are matched whole: `main` must not match `feature/main`.
    return glob_pattern(glob, anywhere=False)


def _strs(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{what} must be a list of non-empty strings")
    return tuple(value)


def _digest(kind: str, table: dict[str, object]) -> str:
    text = json.dumps([kind, VALIDATOR_VERSION, table], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_COMMON = {"name", "events", "branches"}
_CHECK_KEYS: dict[str, set[str]] = {
    "max-size": {"size", "paths"},
    "paths": {"allow", "forbid"},
    "table": {"path", "columns", "key", "strict"},
    "image": {"paths"},
}


def _check_options(ctype: str, item: dict[str, object], what: str) -> dict[str, object]:
    opts: dict[str, object] = {}
    if ctype == "max-size":
        size = item.get("size")
        if isinstance(size, bool) or not isinstance(size, int | str):
            raise UsageError(f"{what}: size is a number of bytes or a size like '100M'")
        try:
            opts["size"] = parse_size(size) if isinstance(size, str) else size
        except UsageError as exc:
            raise UsageError(f"{what}: {exc.message}") from exc
        opts["paths"] = _strs(item.get("paths", ["**"]), f"{what}: paths")
    elif ctype == "paths":
        opts["allow"] = _strs(item.get("allow", []), f"{what}: allow")
        opts["forbid"] = _strs(item.get("forbid", []), f"{what}: forbid")
        if not opts["allow"] and not opts["forbid"]:
            raise UsageError(f"{what}: a paths check names allow or forbid globs")
    elif ctype == "table":
        opts["path"] = _strs(item.get("path"), f"{what}: path")
        cols = item.get("columns", {})
        if not isinstance(cols, dict) or not all(
            isinstance(k, str) and v in COLUMN_TYPES for k, v in cols.items()
        ):
            raise UsageError(
                f"{what}: columns maps a column name to a type ({', '.join(COLUMN_TYPES)})"
            )
        opts["columns"] = dict(cols)
        opts["key"] = _strs(item.get("key", []), f"{what}: key") if "key" in item else ()
        strict = item.get("strict", False)
        if not isinstance(strict, bool):
            raise UsageError(f"{what}: strict is true or false")
        opts["strict"] = strict
    else:
        opts["paths"] = _strs(item.get("paths", ["**"]), f"{what}: paths")
    return opts


def _parse_item(item: object, kind: str, n: int, where: str) -> Hook:
    what = f"{where}, {kind} {n}"
    if not isinstance(item, dict):
        raise UsageError(f"{what}: expected a table")
    name = item.get("name", f"{kind}-{n}")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{what}: name must be a non-empty string")
    what = f"{where}, {kind} {name!r}"
    events = _strs(item.get("events", ["pre-commit"]), f"{what}: events")
    for e in events:
        if e not in EVENTS:
            raise UsageError(f"{what}: unknown event {e!r} (one of {', '.join(EVENTS)})")
    branches = _strs(item.get("branches", []), f"{what}: branches") if "branches" in item else ()
    digest = _digest(kind, item)
    if kind == "hook":
        if set(item) - _COMMON - {"command", "timeout"}:
            extra = ", ".join(sorted(set(item) - _COMMON - {"command", "timeout"}))
            raise UsageError(f"{what}: unknown keys {extra}")
        cmd = item.get("command")
        argv = ("sh", "-c", cmd) if isinstance(cmd, str) and cmd else _strs(cmd, f"{what}: command")
        timeout = item.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise UsageError(f"{what}: timeout is a positive number of seconds")
        return Hook(name, events, branches, argv, float(timeout), digest=digest)
    ctype = item.get("type")
    if ctype not in CHECK_TYPES:
        raise UsageError(f"{what}: type must be one of {', '.join(CHECK_TYPES)}")
    assert isinstance(ctype, str)
    extra_keys = set(item) - _COMMON - {"type"} - _CHECK_KEYS[ctype]
    if extra_keys:
        raise UsageError(
            f"{what}: unknown keys for a {ctype} check: {', '.join(sorted(extra_keys))}"
        )
    opts = _check_options(ctype, item, what)
    return Hook(name, events, branches, check=ctype, options=opts, digest=digest)


def parse_hooks(text: str, where: str = HOOKS_PATH) -> HooksFile:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where} is not valid TOML: {exc}") from exc
    if set(doc) - {"hook", "check", "branch"}:
        raise UsageError(f"{where}: expected only [[hook]], [[check]] and [[branch]] tables")
    hooks: list[Hook] = []
    for kind in ("hook", "check"):
        raw = doc.get(kind, [])
        if not isinstance(raw, list):
            raise UsageError(f"{where}: {kind} must be an array of tables ([[{kind}]])")
        hooks.extend(_parse_item(item, kind, n, where) for n, item in enumerate(raw, 1))
    names = [h.name for h in hooks]
    if len(set(names)) != len(names):
        raise UsageError(f"{where}: two hooks or checks with one name")
    rules = [_parse_rule(item, n, where, set(names)) for n, item in
             enumerate(doc.get("branch", []), 1)]  # fmt: skip
    source = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return HooksFile(tuple(hooks), tuple(rules), source)


_RULE_KEYS = {
    "pattern", "allow_skip", "protected", "merges_only", "required_checks", "signed_by"
}  # fmt: skip


def _parse_rule(item: object, n: int, where: str, names: set[str]) -> BranchRule:
    what = f"{where}, branch rule {n}"
    if not isinstance(item, dict) or set(item) - _RULE_KEYS:
        raise UsageError(f"{what}: a branch rule has only {', '.join(sorted(_RULE_KEYS))}")
    pattern = item.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise UsageError(f"{what}: pattern is a glob over branch names")
    what = f"{where}, branch rule {pattern!r}"
    defaults = (("allow_skip", True), ("protected", False), ("merges_only", False))
    flags = [item.get(k, d) for k, d in defaults]
    for (key, _), flag in zip(defaults, flags, strict=True):
        if not isinstance(flag, bool):
            raise UsageError(f"{what}: {key} is true or false, not {flag!r}")
    required = _strs(item.get("required_checks", []), f"{what}: required_checks")
    for name in required:
        if name not in names:
            raise UsageError(
                f"{what}: required check {name!r} is not a [[hook]] or [[check]] of {where}"
            )
    signed_by = item.get("signed_by")
    if signed_by is not None:
        if not isinstance(signed_by, str):
            raise UsageError(f"{what}: signed_by is a role name, not {signed_by!r}")
        try:
            role: Role | None = Role.parse(signed_by)
        except UsageError as exc:
            raise UsageError(f"{what}: signed_by: {exc.message}") from None
    else:
        role = None
    return BranchRule(pattern, flags[0], flags[1], flags[2], required, role)


class ContentReader(ObjectReader, Protocol):
    """Objects and chunks: the store, or a staged view inside a commit's transaction."""

    def read_chunk(self, cid: ChunkId) -> bytes: ...


def read_file(reader: ContentReader, tree: ObjectId, path: str, limit: int) -> bytes | None:
    """The bytes of the file at `path` of `tree` (None: no such file); UsageError past
    `limit` bytes."""
    try:
        entry = resolve_path(reader, tree, [p.encode() for p in path.split("/")])
    except PathNotFound:
        return None
    if entry is None or entry.kind not in (EntryKind.FILE, EntryKind.CHUNKED):
        return None
    if entry.size > limit:
        raise UsageError(f"{path} is larger than {limit} bytes")
    return b"".join(reader.read_chunk(ChunkId(c.id)) for c in file_chunks(reader, entry))


def load_hooks(reader: ContentReader, tree: ObjectId) -> HooksFile:
    """The hooks of `tree`'s `.mlgitfs/hooks.toml` (none when it has no such file)."""
    data = read_file(reader, tree, HOOKS_PATH, MAX_HOOKS_BYTES)
    if data is None:
        return HooksFile()
    try:
        return parse_hooks(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{HOOKS_PATH} is not UTF-8") from exc


def _entry(reader: ContentReader, tree: ObjectId) -> TreeEntry | None:
    try:
        return resolve_path(reader, tree, [b".mlgitfs", b"hooks.toml"])
    except PathNotFound:
        return None


def check_candidate_file(reader: ContentReader, base_tree: ObjectId | None, tree: ObjectId) -> None:
    """UsageError when the candidate changes its hooks file into one that does not parse:
    once committed it would stop every later commit of the branch."""
    new = _entry(reader, tree)
    if new is None or (base_tree is not None and _entry(reader, base_tree) == new):
        return
    load_hooks(reader, tree)
