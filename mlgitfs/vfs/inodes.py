"""The inode numbers of one mount, shared by every view its daemon serves: ranges, never reused.

A daemon makes one `InodeSpace` and hands it to the views it builds (vfs/types.ViewContext).
A view takes a range (`take`) for each numbering it keeps: range k holds the numbers
k << RANGE_BITS .. (k + 1) << RANGE_BITS - 1. Inside its range a view numbers as it likes
(path hashes for a version, a persisted counter for a checkout) with *inner* numbers below
2^RANGE_BITS, 1 being its root; a view serving other views' ranges beside its own (a mount of
several versions, vfs/multi.py) shifts each one's inner numbers into its range (`outer`)
and routes a number back by its range (`index_of`). Range 0 holds the mount's root (inode 1):
it is the first taken, by the mount's top view. Two views of one space never hand out the
same number, and a range is never given twice in a mount's life (the kernel may still hold
numbers of a view that was closed).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from mlgitfs.errors import FsError
from mlgitfs.model.ids import InodeNo

RANGE_BITS = 48  # a view's own numbers stay below 2^48
MAX_RANGES = 1 << (63 - RANGE_BITS)  # st_ino stays below 2^63 (signed in some programs)


@dataclass(frozen=True, slots=True)
class InodeRange:
    """Inode numbers `base` .. `base + size - 1`, one view's."""

    index: int
    bits: int = RANGE_BITS

    @property
    def base(self) -> int:
        return self.index << self.bits

    @property
    def size(self) -> int:
        """Inner numbers are below this."""
        return 1 << self.bits

    def outer(self, inner: int) -> InodeNo:
        """The mount's number of the view's `inner` number."""
        return InodeNo(self.base | inner)

    def inner(self, ino: int) -> InodeNo:
        return InodeNo(ino & (self.size - 1))

    def holds(self, ino: int) -> bool:
        return ino >> self.bits == self.index


class InodeSpace:
    """One mount's inode numbers, handed out as ranges in order."""

    def __init__(self, bits: int = RANGE_BITS) -> None:
        self.bits = bits
        self._next = 0

    def take(self) -> InodeRange:
        """The next range; FsError(ENOSPC) once every range was given out in this mount."""
        if self._next >= 1 << (63 - self.bits):
            raise FsError(errno.ENOSPC, f"{self._next} inode ranges were taken in this mount")
        taken = InodeRange(self._next, self.bits)
        self._next += 1
        return taken

    def index_of(self, ino: int) -> int:
        """The index of the range `ino` lies in."""
        return ino >> self.bits

    def taken(self) -> int:
        """How many ranges were given out (tests, logs)."""
        return self._next
