"""Warm measurements on a machine where anyone may drop the page cache at any time."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from bench.context import drop_count

T = TypeVar("T")


class WarmRuns:
    """Valid warm measurements only: a warm run counts when no cache drop (ours or another
    process's: the machine is shared) happened since the last full read of the same thing
    ended, nor during the run itself. Invalid runs still refill the cache for the next try."""

    def __init__(self) -> None:
        self.filled: dict[str, int | None] = {}
        self.disturbed = 0  # runs during which a cache drop happened
        self.invalid = 0  # warm runs thrown away

    def run(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        before = drop_count()
        result = fn()
        after = drop_count()
        valid = before is not None and before == after and self.filled.get(key) == before
        if before != after:
            self.disturbed += 1
        self.filled[key] = after if before == after else None
        return result, valid

    def cold(self, key: str, fn: Callable[[], T]) -> T:
        """A cold run (after the caller's own drop): it fills the cache for later warm runs."""
        return self.run(key, fn)[0]

    def warm(
        self, jobs: dict[str, Callable[[], T]], want: int, max_tries: int
    ) -> dict[str, list[T]]:
        """``want`` valid warm results of each job, interleaved (load hits all alike); after
        ``max_tries`` rounds, whatever was measured (valid first) so a run still reports."""
        valid: dict[str, list[T]] = {k: [] for k in jobs}
        spoiled: dict[str, list[T]] = {k: [] for k in jobs}
        for _ in range(max_tries):
            if all(len(v) >= want for v in valid.values()):
                break
            for key, fn in jobs.items():
                if len(valid[key]) >= want:
                    continue
                result, ok = self.run(key, fn)
                (valid if ok else spoiled)[key].append(result)
                self.invalid += 0 if ok else 1
        return {k: valid[k] or spoiled[k] for k in jobs}

    def info(self) -> dict[str, int | None]:
        return {
            "drop_pagecache_count": drop_count(),
            "runs_disturbed_by_a_cache_drop": self.disturbed,
            "warm_runs_discarded": self.invalid,
        }
