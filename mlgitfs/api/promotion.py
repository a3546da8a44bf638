"""Promotion of a version to a (protected) branch, and the checks a commit was promoted with
(docs/governance.md, "Protected branches and promotion")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.api.merging import _commit_of, _target
from mlgitfs.daemon.hookviews import hook_options
from mlgitfs.errors import UsageError
from mlgitfs.model.ids import to_hex
from mlgitfs.repo import promote as promotion
from mlgitfs.repo.gate import HookResult


@dataclass(frozen=True, slots=True)
class PromoteResult:
    repo: str
    source: str
    target: str
    status: str  # fast-forward, merged, up to date; with --dry-run: would fast-forward, ...
    old: str  # the target's head before
    commit: str  # its new head ("" when it did not move)
    required: tuple[str, ...]  # the required checks of the target's rule
    dry_run: bool
    checks: tuple[HookResult, ...] = ()  # every hook and check that ran, cached or not


@dataclass(frozen=True, slots=True)
class CheckRecord:
    name: str
    kind: str
    status: str
    cached: bool


@dataclass(frozen=True, slots=True)
class Promotion:
    branch: str
    via: str  # promote, merge
    base: str  # the head the commit replaced ("" for none)
    time: float
    checks: tuple[CheckRecord, ...]


@dataclass(frozen=True, slots=True)
class ChecksResult:
    repo: str
    commit: str
    promotions: tuple[Promotion, ...]


def promote(home: Path | None, source: str, to: str, dry_run: bool = False) -> PromoteResult:
    """Move REPO@TO to SOURCE (or to SOURCE merged into it) once the target rule's required
    checks pass on that candidate; refused (and nothing moved) on any failure."""
    store = open_store(home)
    repo, cid = _commit_of(store, source)
    target = to if "@" in to else f"{repo}@{to}"
    to_repo, branch = _target(target)
    if to_repo != repo:
        raise UsageError(f"{source} is a commit of {repo}; it cannot be promoted in {to_repo}")
    out = promotion.promote(store, repo, cid, source, branch, hook_options(store), dry_run)
    return PromoteResult(
        repo, source, branch, out.status, to_hex(out.head),
        to_hex(out.commit) if out.commit is not None else "", out.required, dry_run,
        tuple(out.checks),
    )  # fmt: skip


def checks(home: Path | None, revspec: str) -> ChecksResult:
    """The promotions REVSPEC's commit was recorded with: branch, how, the checks it passed."""
    store = open_store(home)
    repo, cid = _commit_of(store, revspec)
    out = []
    for doc in promotion.recorded(store, repo, cid):
        raw = doc.get("checks")
        items = raw if isinstance(raw, list) else []
        out.append(
            Promotion(
                str(doc.get("branch", "")), str(doc.get("via", "")), str(doc.get("base") or ""),
                float(str(doc.get("time", 0))),
                tuple(CheckRecord(str(c.get("name")), str(c.get("kind")), str(c.get("status")),
                                  bool(c.get("cached"))) for c in items if isinstance(c, dict)),
            )
        )  # fmt: skip
    return ChecksResult(repo, to_hex(cid), tuple(out))
