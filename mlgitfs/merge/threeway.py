"""The three-way choice between plain values, shared by the tree merge (repo/merge.py: a
file's content and mode) and the row merge (merge/rows.py: a cell, a column)."""

from __future__ import annotations


def three_way(b: object, o: object, t: object) -> tuple[bool, object]:
    """(clean, value) of base `b`, ours `o` and theirs `t`: the side that changed wins, both
    changing alike is clean, and a conflict keeps ours."""
    if o == t or b == t:
        return True, o
    if b == o:
        return True, t
    return False, o
