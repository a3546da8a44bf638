"""What a retention policy keeps of one history: a pure function of commits, policy and now.

`keep` walks the commits newest first, as `restic forget` walks snapshots: each counting
rule ("last", "hourly" ... "yearly") keeps a commit when the commit opens a period not seen
yet and the rule's count is not used up, and keeps the oldest commit too while its count
is not used up; `within` keeps every commit newer than now minus the duration. Ties in
time are ordered by commit id (the larger id counts as newer), so the result never depends
on input order. model/retention.py states the meanings for users.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from mlgitfs.model.ids import ObjectId
from mlgitfs.model.retention import UNLIMITED, Duration, Policy

Bucket = Callable[[dt.datetime, int], object]


_MIN_S, _MAX_S = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31 (datetime's range)


def _utc(time_ns: int) -> dt.datetime:
    seconds = min(max(time_ns // 1_000_000_000, _MIN_S), _MAX_S)
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


_BUCKETS: dict[str, Bucket] = {
    "last": lambda t, nr: nr,  # every commit is its own period
    "hourly": lambda t, nr: (t.year, t.month, t.day, t.hour),
    "daily": lambda t, nr: (t.year, t.month, t.day),
    "weekly": lambda t, nr: tuple(t.isocalendar())[:2],
    "monthly": lambda t, nr: (t.year, t.month),
    "yearly": lambda t, nr: t.year,
}


def cutoff_ns(now_ns: int, within: Duration) -> int:
    """now minus a calendar duration, normalised as Go's AddDate (Mar 31 - 1m = Mar 3)."""
    now = _utc(now_ns)
    months = now.year * 12 + (now.month - 1) - within.years * 12 - within.months
    year, month = divmod(months, 12)
    if year < 1:
        return -(1 << 63)
    back = dt.datetime(year, month + 1, 1, now.hour, now.minute, now.second, tzinfo=dt.UTC)
    back += dt.timedelta(days=now.day - 1 - within.days, hours=-within.hours)
    return int(back.timestamp()) * 1_000_000_000 + now_ns % 1_000_000_000


def keep(
    history: Sequence[tuple[ObjectId, int]], policy: Policy, now_ns: int
) -> dict[ObjectId, list[str]]:
    """The commits of `history` ((id, time_ns) pairs) that `policy` keeps, each with the
    rules that keep it ("last", "daily", ..., "within")."""
    ordered = sorted(set(history), key=lambda c: (c[1], c[0]), reverse=True)
    counts = {name: n for name, n in policy.counts().items() if n}
    seen: dict[str, object] = {}
    cutoff = None if policy.within is None else cutoff_ns(now_ns, policy.within)
    kept: dict[ObjectId, list[str]] = {}
    for nr, (oid, time_ns) in enumerate(ordered):
        reasons = []
        if cutoff is not None and time_ns > cutoff:
            reasons.append("within")
        when = _utc(time_ns)
        for name, left in counts.items():
            if left == 0:
                continue
            period = _BUCKETS[name](when, nr)
            if name not in seen or period != seen[name] or nr == len(ordered) - 1:
                seen[name] = period
                counts[name] = left if left == UNLIMITED else left - 1
                reasons.append(name)
        if reasons:
            kept[oid] = reasons
    return kept
