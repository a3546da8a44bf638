"""Retention policies: `retention show` and `retention set` (model/retention.py says what
the rules mean, repo/expiry.py which versions they let expire)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.errors import UsageError
from mlgitfs.meta import db, retention
from mlgitfs.model.actor import default_actor
from mlgitfs.model.ids import to_hex
from mlgitfs.model.names import check_repo_name
from mlgitfs.model.retention import (
    MAX_COUNT,
    UNLIMITED,
    Duration,
    Policy,
    Rule,
    check_pattern,
)
from mlgitfs.model.revspec import parse_revspec
from mlgitfs.repo.expiry import expiry


@dataclass(frozen=True, slots=True)
class RuleInfo:
    pattern: str
    last: int  # -1: unlimited
    hourly: int
    daily: int
    weekly: int
    monthly: int
    yearly: int
    within: str  # "" when not set
    keep_tags: bool
    description: str


@dataclass(frozen=True, slots=True)
class ExpiringInfo:
    commit: str
    time_ns: int
    reason: str
    let_go_ns: int = 0  # when gc let its contents go (its expiry record); 0: not yet


@dataclass(frozen=True, slots=True)
class RetentionResult:
    repo: str
    rules: tuple[RuleInfo, ...]
    set_ns: int  # 0: never set
    who: str
    expiring: tuple[ExpiringInfo, ...]  # versions whose contents gc would drop now


def _info(rule: Rule) -> RuleInfo:
    p = rule.policy
    within = "" if p.within is None else str(p.within)
    return RuleInfo(rule.pattern, p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly,
                    within, p.keep_tags, p.describe())  # fmt: skip


def retention_show(home: Path | None, repo: str) -> RetentionResult:
    """The repo's rules and the versions they let expire as of now."""
    store = open_store(home)
    spec = parse_revspec(repo)
    if spec.explicit_ref or spec.back is not None or spec.path:
        raise UsageError(f"{repo!r}: name just the repo")
    now = time.time_ns()
    with store.env.read() as txn:
        db.get_repo(txn, spec.repo)
        ruleset = retention.get_ruleset(txn, spec.repo)
        going = [
            (e, retention.get_expired(txn, e.commit))
            for e in expiry(txn, now)
            if e.repo == spec.repo
        ]
    rules = () if ruleset is None else ruleset.rules
    return RetentionResult(
        spec.repo,
        tuple(_info(r) for r in rules),
        0 if ruleset is None else ruleset.set_ns,
        "" if ruleset is None else ruleset.who,
        tuple(
            ExpiringInfo(to_hex(e.commit), e.time_ns, e.reason, 0 if rec is None else rec.time_ns)
            for e, rec in going
        ),  # fmt: skip
    )


def _count(name: str, text: str | None) -> int:
    if text is None:
        return 0
    if text == "unlimited":
        return UNLIMITED
    if not text.isdigit() or int(text) >= MAX_COUNT:
        raise UsageError(f"--keep-{name} takes a count or 'unlimited', not {text!r}")
    return int(text)


def retention_set(
    home: Path | None,
    target: str,
    *,
    last: str | None = None,
    hourly: str | None = None,
    daily: str | None = None,
    weekly: str | None = None,
    monthly: str | None = None,
    yearly: str | None = None,
    within: str | None = None,
    keep_tags: bool = True,
    clear: bool = False,
) -> RetentionResult:
    """Set (or with `clear`, remove) the policy of REPO[@PATTERN] (PATTERN: branches and tags
    it governs, fnmatch; default `*`). The options given replace the pattern's policy."""
    repo, _, pattern = target.partition("@")
    repo = check_repo_name(repo)
    pattern = check_pattern(pattern or "*")
    counts = {n: _count(n, v) for n, v in (("last", last), ("hourly", hourly), ("daily", daily),
              ("weekly", weekly), ("monthly", monthly), ("yearly", yearly))}  # fmt: skip
    dur = None if within is None else Duration.parse(within)
    given = any(counts.values()) or dur is not None
    if clear and (given or not keep_tags):
        raise UsageError("--clear removes the pattern's policy: give no --keep-* option with it")
    if not clear and not given:
        raise UsageError("give at least one --keep-* option (or --clear to remove the policy)")
    store = open_store(home)
    with store.env.write() as txn:
        db.get_repo(txn, repo)
        others = tuple(r for r in retention.get_rules(txn, repo) if r.pattern != pattern)
        if clear and len(others) == len(retention.get_rules(txn, repo)):
            raise UsageError(f"{repo} has no retention policy for {pattern!r}")
        mine = () if clear else (Rule(pattern, Policy(**counts, within=dur,
                                                      keep_tags=keep_tags).check()),)  # fmt: skip
        retention.set_rules(txn, repo, others + mine, default_actor())
    return retention_show(home, repo)
