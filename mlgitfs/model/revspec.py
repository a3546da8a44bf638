"""Parsing of revspecs `REPO[@REF][~N][:PATH]` (resolution lives in repo/refs.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlgitfs.errors import InvalidName, InvalidRevspec
from mlgitfs.model.names import check_ref_name, check_repo_name, split_path

DEFAULT_BRANCH = "main"
_RE = re.compile(
    r"^(?P<repo>[^@:~]+)(?:@(?P<ref>[^:~]+))?(?:~(?P<back>[0-9]+))?(?::(?P<path>.*))?$"
)


@dataclass(frozen=True, slots=True)
class Revspec:
    repo: str
    ref: str  # a branch, a tag or a (prefix of a) commit id
    back: int  # the ~N: how many first parents to walk back
    path: tuple[bytes, ...]  # () is the root
    explicit_ref: bool  # False when the user wrote just REPO

    @property
    def path_str(self) -> str:
        return "/".join(p.decode("utf-8", "surrogateescape") for p in self.path)

    def __str__(self) -> str:
        out = f"{self.repo}@{self.ref}"
        if self.back:
            out += f"~{self.back}"
        if self.path:
            out += ":" + self.path_str
        return out


def parse_revspec(text: str, default_ref: str = DEFAULT_BRANCH) -> Revspec:
    m = _RE.match(text)
    if not m:
        raise InvalidRevspec(f"cannot parse revspec {text[:120]!r}: expected REPO[@REF][~N][:PATH]")
    try:
        repo = check_repo_name(m["repo"])
        ref = m["ref"]
        if ref is not None:
            check_ref_name(ref, "ref")
        path = tuple(split_path(m["path"] or ""))
    except InvalidName as exc:
        raise InvalidRevspec(f"cannot parse revspec {text[:120]!r}: {exc.message}") from exc
    return Revspec(repo, ref or default_ref, int(m["back"] or 0), path, ref is not None)


def parse_repo_branch(text: str) -> tuple[str, str]:
    """`NAME[@BRANCH]` as taken by import and push."""
    spec = parse_revspec(text)
    if spec.back or spec.path:
        raise InvalidRevspec(f"{text!r}: expected NAME[@BRANCH]")
    return spec.repo, check_ref_name(spec.ref)
