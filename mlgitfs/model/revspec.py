"""Parsing of revspecs `REPO[@REF][~N][:PATH]` (resolution lives in repo/refs.py).

REF is a branch, a tag, a remote-tracking ref (`origin/main`), a commit id prefix or
`NAME@{N}` (the value branch or tag NAME had N moves ago by its reflog, after a delete too); the
qualifiers `heads/NAME` and `tags/NAME` name a branch or a tag alone (for a store that holds
both under one name from an older version). `~N` walks N first parents back and always names
a commit, `~0` included. Where a command implies the repo (restore's --source, a branch's
START, a tag's target), `@REF` alone means that repo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlgitfs.errors import InvalidName, InvalidRevspec
from mlgitfs.model.names import check_ref_name, check_repo_name, split_path

DEFAULT_BRANCH = "main"
BRANCH_QUALIFIER = "heads/"
TAG_QUALIFIER = "tags/"
RESERVED_FIRST_PARTS = ("heads", "tags", "remotes")  # no branch or tag name starts with these
_REFLOG = re.compile(r"^(?P<base>.+)@\{(?P<n>[0-9]{1,9})\}$")  # NAME@{N}: the reflog's N-th
_RE = re.compile(
    r"^(?P<repo>[^@:~]*)(?:@(?P<ref>[^:~]+))?(?:~(?P<back>[0-9]+))?(?::(?P<path>.*))?$"
)


@dataclass(frozen=True, slots=True)
class Revspec:
    repo: str
    ref: str  # a branch, a tag, a remote-tracking ref or a (prefix of a) commit id
    back: int | None  # the ~N: how many first parents to walk back; None when no ~ was written
    path: tuple[bytes, ...]  # () is the root
    explicit_ref: bool  # False when the user wrote just REPO

    @property
    def path_str(self) -> str:
        return "/".join(p.decode("utf-8", "surrogateescape") for p in self.path)

    @property
    def names_commit(self) -> bool:
        """True when `~N` was written: the revspec names a fixed commit, never a branch."""
        return self.back is not None

    def __str__(self) -> str:
        out = f"{self.repo}@{self.ref}"
        if self.back is not None:
            out += f"~{self.back}"
        if self.path:
            out += ":" + self.path_str
        return out


def parse_revspec(
    text: str, default_ref: str = DEFAULT_BRANCH, default_repo: str | None = None
) -> Revspec:
    """Parse a revspec; `default_repo` is the repo that `@REF` alone means (None: refused)."""
    m = _RE.match(text)
    if not m:
        raise InvalidRevspec(f"cannot parse revspec {text[:120]!r}: expected REPO[@REF][~N][:PATH]")
    repo_text = m["repo"]
    if not repo_text:
        if default_repo is None or not text.startswith("@"):
            raise InvalidRevspec(
                f"cannot parse revspec {text[:120]!r}: name the repo (REPO@REF); '@REF' alone "
                "means the current repo only where a command implies one"
            )
        repo_text = default_repo
    try:
        repo = check_repo_name(repo_text)
        ref = m["ref"]
        if ref is not None:
            at = reflog_selector(ref)
            check_ref_name(ref if at is None else at[0], "ref")
        path = tuple(split_path(m["path"] or ""))
    except InvalidName as exc:
        raise InvalidRevspec(f"cannot parse revspec {text[:120]!r}: {exc.message}") from exc
    back = None if m["back"] is None else int(m["back"])
    return Revspec(repo, ref or default_ref, back, path, ref is not None)


def reflog_selector(ref: str) -> tuple[str, int] | None:
    """`NAME@{N}` → (NAME, N): the value NAME had N moves ago, by its reflog (as git's
    `main@{1}`); `@{0}` is its value now. None when `ref` is not written so."""
    m = _REFLOG.match(ref)
    return None if m is None else (m["base"], int(m["n"]))


def branch_name(ref: str) -> str:
    """The branch a REF of `import`/`push`/`pull` names: `heads/NAME` is NAME; a `tags/`
    qualifier is refused (a tag is never moved by a commit)."""
    if ref.startswith(TAG_QUALIFIER):
        raise InvalidRevspec(f"{ref!r} names a tag: tags never move, name a branch")
    if ref.startswith(BRANCH_QUALIFIER):
        ref = ref[len(BRANCH_QUALIFIER) :]
    return check_ref_name(ref)


def parse_repo_branch(text: str) -> tuple[str, str]:
    """`NAME[@BRANCH]` as taken by import and push."""
    spec = parse_revspec(text)
    if spec.back is not None or spec.path:
        raise InvalidRevspec(f"{text!r}: expected NAME[@BRANCH]")
    return spec.repo, branch_name(spec.ref)


def check_new_ref_name(name: str, what: str) -> str:
    """A name for a new branch or tag: a ref name whose first part is not a qualifier."""
    check_ref_name(name, what)
    if name.split("/", 1)[0] in RESERVED_FIRST_PARTS:
        raise InvalidName(
            f"invalid {what} name {name[:80]!r}: 'heads/', 'tags/' and 'remotes/' are "
            "reserved for naming refs unambiguously"
        )
    return name
