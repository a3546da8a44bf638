"""The one vocabulary of changes, shared by diff, status, merge and the api's results."""

from __future__ import annotations

import enum


class ChangeKind(enum.StrEnum):
    ADDED = "added"
    MODIFIED = "modified"
    RENAMED = "renamed"  # moved with its content id unchanged (exact rename)
    DELETED = "deleted"


# The order in which listings show them.
ORDER = {k: i for i, k in enumerate(ChangeKind)}
