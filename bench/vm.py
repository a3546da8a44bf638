"""The machine's proactive page reclaim (DAMON), a confound for "warm" measurements.

The VMs these benchmarks run on start a kdamond with a ``pageout`` scheme over all of memory:
file pages not touched for a few seconds are written out of the page cache even with most
of memory free. A second epoch then finds part of the first epoch's pages gone (fincore
showed 2 to 7% of 5,000 files incomplete, more every few seconds) and reads them again;
each such read costs a FUSE daemon a round trip and a chunk load, ext4 a disk read. A stock
Linux machine runs no such scheme, so `reclaim_paused` turns it off for a measurement and
back on afterwards; the report says which rows ran with it paused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

KDAMONDS = Path("/sys/kernel/mm/damon/admin/kdamonds")


def _running() -> list[Path]:
    """State files of the kdamonds that are on."""
    out = []
    if KDAMONDS.is_dir():
        for state in sorted(KDAMONDS.glob("*/state")):
            with contextlib.suppress(OSError):
                if state.read_text().strip() == "on":
                    out.append(state)
    return out


def reclaim_active() -> bool:
    return bool(_running())


@contextlib.contextmanager
def reclaim_paused() -> Iterator[bool]:
    """Turn running kdamonds off for the block (root only); yields whether any was paused.
    Their parameters stay in sysfs, so writing "on" afterwards restarts them as they were."""
    paused = []
    try:
        for state in _running():
            try:
                state.write_text("off\n")
                paused.append(state)
            except OSError:
                pass
        yield bool(paused)
    finally:
        for state in paused:
            with contextlib.suppress(OSError):
                state.write_text("on\n")
