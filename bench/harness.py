"""Runs one case: the bookkeeping every case shares, so no case repeats it.

Before the case: mounts a crashed run left under the work directory are detached, and a fresh
`CaseRecord` is put in ``ctx.case`` (load average, page-cache drop counter; ``ctx.drop_caches``
records each of the case's own drops there). After it, every row gets that record's fields in
its ``extra`` (``loadavg_start``, ``loadavg_end``, ``caches_dropped``,
``drop_pagecache_during_case``, ``own_cache_drops``; a field the case set itself wins), and
the run's meta gets the case's wall time and the load after it. A case that raises `Skipped`
becomes one "skip" row saying why; any other exception an ERROR row; the other cases still run.
"""

from __future__ import annotations

import os
import time
import traceback

from bench.context import CaseRecord, Context
from bench.registry import Case, Row
from testsupport.mounts import clear_under


class Skipped(Exception):
    """A case (or a fixture it calls) cannot measure here: a peer program it compares with is
    missing and could not be installed (bench/peers.py). The message is the reason."""


def run_case(ctx: Context, c: Case) -> list[Row]:
    stale = clear_under(ctx.work)
    if stale:
        ctx.log(f"detached stale mounts: {', '.join(map(str, stale))}")
    ctx.case = CaseRecord()
    t0 = time.monotonic()
    try:
        rows = c.fn(ctx)
    except Skipped as e:
        ctx.log(f"  skipped: {e}")
        rows = [Row(c.name, "(case skipped)", None, None, None, skipped=str(e))]
    except Exception as e:  # noqa: BLE001 - one broken case must not hide the others
        traceback.print_exc()
        error = f"{type(e).__name__}: {e}".strip()[:2000]
        rows = [Row(c.name, "(case failed)", None, None, None, error=error)]
    common = ctx.case.extra()
    for r in rows:
        r.extra = {**common, **r.extra}
    ctx.meta.setdefault("case_seconds", {})[c.name] = round(time.monotonic() - t0, 2)
    # Other work on the machine skews ratios: record the load after each case.
    ctx.meta.setdefault("loadavg_after", {})[c.name] = os.getloadavg()
    return rows
