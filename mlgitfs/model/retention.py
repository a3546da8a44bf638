"""Retention policies: what a repo keeps of its history, per branch pattern (issue 16).

A policy's rules have restic's meanings (`restic forget`): keep the last N commits; keep N
hourly/daily/weekly/monthly/yearly (the newest commit of each of the N newest periods that
have one, and the oldest commit too while a count is not used up); keep everything within
a duration (`1y5m7d2h`, counted back from *now*, where restic counts from the newest
snapshot: a branch's head is always kept, so nothing needs restic's guard against an idle
repo losing everything). Periods are UTC; weeks are ISO weeks. Tags are kept unless the
policy says otherwise. The decision itself is repo/retention.py; this module is the
immutable model and its encoding, stored per repo in the `retention` database.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from mlgitfs.errors import CorruptObject, UsageError
from mlgitfs.model import codec

UNLIMITED = -1
PERIODS = ("hourly", "daily", "weekly", "monthly", "yearly")
_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?$")
MAX_COUNT = 1 << 31


@dataclass(frozen=True, slots=True)
class Duration:
    """A calendar duration, as restic's `1y5m7d2h`: years and months are calendar steps."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        m = _DURATION.match(text.strip())
        if not text.strip() or m is None:
            raise UsageError(f"cannot parse duration {text[:40]!r}: write e.g. 30d, 12h, 1y6m")
        return cls(*(int(g or 0) for g in m.groups()))

    def __str__(self) -> str:
        parts = zip((self.years, self.months, self.days, self.hours), "ymdh", strict=True)
        return "".join(f"{n}{u}" for n, u in parts if n) or "0h"


@dataclass(frozen=True, slots=True)
class Policy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration | None = None
    keep_tags: bool = True

    def counts(self) -> dict[str, int]:
        """The counting rules by name ("last" and the periods), UNLIMITED = -1."""
        return {
            "last": self.last,
            "hourly": self.hourly,
            "daily": self.daily,
            "weekly": self.weekly,
            "monthly": self.monthly,
            "yearly": self.yearly,
        }

    def check(self) -> Policy:
        for name, n in self.counts().items():
            if n < UNLIMITED or n >= MAX_COUNT:
                raise UsageError(f"keep-{name} must be a count or 'unlimited', not {n}")
        return self

    def describe(self) -> str:
        parts = [
            f"keep-{name} {'unlimited' if n == UNLIMITED else n}"
            for name, n in self.counts().items()
            if n
        ]
        if self.within is not None:
            parts.append(f"keep-within {self.within}")
        parts.append("tags kept" if self.keep_tags else "tags not kept")
        return ", ".join(parts)

    def encode(self) -> list[object]:
        w = self.within
        within = None if w is None else [w.years, w.months, w.days, w.hours]
        return [*self.counts().values(), within, self.keep_tags]

    @classmethod
    def decode(cls, v: object, what: str) -> Policy:
        try:
            assert isinstance(v, list) and len(v) == 8
            last, hourly, daily, weekly, monthly, yearly, within, keep_tags = v
            counts = (last, hourly, daily, weekly, monthly, yearly)
            assert all(type(n) is int for n in counts) and type(keep_tags) is bool
            dur = None if within is None else Duration(*(int(x) for x in within))
            return cls(last, hourly, daily, weekly, monthly, yearly, dur, keep_tags).check()
        except (AssertionError, TypeError, ValueError, UsageError) as exc:
            raise CorruptObject(what, "malformed retention policy") from exc


@dataclass(frozen=True, slots=True)
class Rule:
    """A policy for the refs of a repo whose name matches `pattern` (fnmatch, `*` = all)."""

    pattern: str
    policy: Policy = field(default_factory=Policy)

    def label(self, repo: str) -> str:
        return f"retention of {repo}@{self.pattern} ({self.policy.describe()})"


def check_pattern(pattern: str) -> str:
    if not pattern or len(pattern) > 255 or any(c in pattern for c in "@:~\0 \t\n"):
        raise UsageError(f"invalid branch pattern {pattern[:80]!r}: e.g. *, main, feature/*")
    return pattern


def rule_for(rules: tuple[Rule, ...], name: str) -> Rule | None:
    """The rule governing ref `name` (a branch or tag name): a pattern equal to the name
    first, else the longest matching pattern (so `*` is the fallback)."""
    exact = [r for r in rules if r.pattern == name]
    if exact:
        return exact[0]
    matching = [r for r in rules if fnmatch.fnmatchcase(name, r.pattern)]
    return max(matching, key=lambda r: len(r.pattern), default=None)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """All the rules of one repo, stamped with when and by whom they were last set: push and
    fetch keep the newer of two rule sets (the last `retention set` wins everywhere). An
    empty set with a stamp records that the rules were cleared."""

    rules: tuple[Rule, ...]
    set_ns: int
    who: str

    def encode(self) -> bytes:
        items = [[r.pattern, r.policy.encode()] for r in self.rules]
        return codec.pack([1, items, self.set_ns, self.who])

    @classmethod
    def decode(cls, data: bytes, what: str) -> RuleSet:
        v = codec.unpack(data, what)
        try:
            version, items, set_ns, who = v
            if version != 1:
                raise CorruptObject(what, f"retention format {version} is not known")
            rules = tuple(Rule(check_pattern(str(p)), Policy.decode(pol, what)) for p, pol in items)
            return cls(rules, int(set_ns), str(who))
        except (TypeError, ValueError, UsageError) as exc:
            raise CorruptObject(what, "malformed retention rules") from exc

    def newer_than(self, other: RuleSet | None) -> bool:
        return other is None or (self.set_ns, self.who) > (other.set_ns, other.who)


@dataclass(frozen=True, slots=True)
class ExpiryRecord:
    """Why a commit's contents were let go: when, and the rule it fell out of."""

    time_ns: int
    reason: str

    def encode(self) -> bytes:
        return codec.pack([1, self.time_ns, self.reason])

    @classmethod
    def decode(cls, data: bytes, what: str) -> ExpiryRecord:
        try:
            _, t, reason = codec.unpack(data, what)
            return cls(int(t), str(reason))
        except (TypeError, ValueError) as exc:
            raise CorruptObject(what, "malformed expiry record") from exc
