"""Validation of the names users and trees hand us: repo, branch, tag and path names."""

from __future__ import annotations

import re

from mlgitfs.errors import InvalidName

MAX_NAME = 255
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def entry_name_problem(name: bytes) -> str | None:
    """Why `name` cannot be a tree entry, or None. Shared by decoding and by user input."""
    if not name:
        return "empty name"
    if name in (b".", b".."):
        return f"{name.decode()!r} is not a name"
    if b"/" in name:
        return "contains '/'"
    if b"\0" in name:
        return "contains NUL"
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} bytes"
    return None


def check_entry_name(name: bytes) -> bytes:
    problem = entry_name_problem(name)
    if problem:
        raise InvalidName(f"invalid name {name[:80]!r}: {problem}")
    return name


def check_repo_name(name: str) -> str:
    """Repo names are plain words: they appear in revspecs (`@`, `:`) and in remote keys."""
    raw = name.encode("utf-8", "surrogateescape")
    problem = entry_name_problem(raw)
    if problem is None and not _REPO_RE.match(name):
        problem = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
    if problem:
        raise InvalidName(f"invalid repo name {name[:80]!r}: {problem}")
    return name


def check_ref_name(name: str, what: str = "branch") -> str:
    """Branch and tag names: git-like words; '/' allowed between parts (feature/x)."""
    problem = None
    if not name:
        problem = "empty name"
    elif len(name.encode()) > MAX_NAME:
        problem = f"longer than {MAX_NAME} bytes"
    elif any(c in name for c in "@:~^ \t\n\\*?[\0"):
        problem = "contains one of @ : ~ ^ * ? [ \\ whitespace or NUL"
    elif ".." in name:
        problem = "contains '..'"
    elif name.startswith(("/", "-")) or name.endswith(("/", ".lock")):
        problem = "cannot start with '/' or '-' or end with '/' or '.lock'"
    else:
        for part in name.split("/"):
            if part in ("", ".", "..") or part.startswith("."):
                problem = f"invalid part {part!r}"
                break
    if problem:
        raise InvalidName(f"invalid {what} name {name[:80]!r}: {problem}")
    return name


def split_path(path: str | bytes) -> list[bytes]:
    """'a/b/c' → [b'a', b'b', b'c']; '' or '/' → []; each part validated."""
    raw = path.encode("utf-8", "surrogateescape") if isinstance(path, str) else path
    parts = [p for p in raw.split(b"/") if p]
    for p in parts:
        check_entry_name(p)
    return parts
