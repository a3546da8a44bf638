"""Progress of long operations: how much is done and, once known, how much there is.

A progress callback is called with (items done, bytes done) in the operation's own unit
(import and export: files; push, prefetch and fsck: chunks; clone, fetch and pull: metadata
objects, commits and root trees, since they fetch no file contents). One that also has a
`total` method (`Totals`) is told the totals as soon as the operation knows them, so a bar
can show a percentage, a rate and the time left; `announce` does that for any callback.
Clone, fetch and pull know theirs before the first download when the remote's commit lists
name every commit they need (store/commitlist.py), else never.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Totals(Protocol):
    def total(self, items: int | None, nbytes: int | None) -> None: ...


def announce(progress: object, items: int | None, nbytes: int | None) -> None:
    """Tell `progress` the totals, when it wants them (None: not known)."""
    if isinstance(progress, Totals):
        progress.total(items, nbytes)
