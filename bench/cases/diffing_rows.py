"""Row-level diff of a labels table (issue 18 item 4): the 1,000,000-row CSV of merge_rows
(~100 MB) against a version that relabels 1% of its rows at random.

- ``mlgitfs.repo.rowdiff.diff_table`` in this process (the codec's memcmp alignment: only
  the records that differ are parsed), against the plain way: both versions parsed whole
  with ``csv.reader`` into key-to-row dicts and compared;
- ``mlgitfs diff A B --rows --stat`` through the CLI (reading both versions from the store,
  a chunk both hold once), wall time.

Both results are checked against the relabelled rows.
"""

from __future__ import annotations

import csv
import io
import time

from bench.cases.merging_rows import Labels, labels_store
from bench.context import QUICK_FACTOR, Context
from bench.registry import Row, case

ROWS = 1_000_000


def _plain(old: bytes, new: bytes) -> set[str]:
    """Keys of the changed rows, the plain way: every row of both versions parsed."""

    def rows(data: bytes) -> dict[str, list[str]]:
        reader = csv.reader(io.StringIO(data.decode()))
        next(reader)
        return {r[0]: r for r in reader}

    a, b = rows(old), rows(new)
    return {k for k in b if a.get(k) != b[k]} | {k for k in a if k not in b}


@case("diff_rows", "history")
def diff_rows(ctx: Context) -> list[Row]:
    """A 1M-row labels CSV with 1% relabelled: diff --rows against parsing both versions."""
    from mlgitfs.repo.rowdiff import diff_table

    rows = ROWS // QUICK_FACTOR if ctx.quick else ROWS
    labels = Labels(rows)
    pick = set(labels.picks[0])
    old, new = labels.table(set()), labels.table(pick)
    want = {f"{i:07d}" for i in pick}
    t0 = time.perf_counter()
    got = diff_table("labels.csv", old, new, ["image_id"], ("A", "B"))
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = _plain(old, new)
    base = time.perf_counter() - t0
    if {str(r.key[0]) for r in got.rows} != want or plain != want:
        raise RuntimeError("diff_rows: the changed keys differ from the relabelled rows")

    store, _, tree = labels_store(ctx, "diff_rows", old)
    (tree / "labels.csv").write_bytes(new)
    store.import_dir("labels@main", tree, "relabel")
    secs, out = store.json("diff", "labels@main~1", "labels@main", "--rows")
    if out["tables"][0]["changed"] != len(want):
        raise RuntimeError(f"diff_rows: the CLI found {out['tables'][0]['changed']} changed rows")
    label = f"{rows:,}-row CSV ({len(old) / 1e6:.0f} MB), 1% relabelled"
    return [
        Row(
            "diff_rows",
            f"{label}: diff_table vs parsing both versions whole",
            ours,
            base,
            base / ours,
            1.0,
            "min",
            "s",
            "csv.reader into dicts",
        ),
        Row(
            "diff_rows",
            f"{label}: `mlgitfs diff A B --rows --json` command",
            secs,
            None,
            None,
            None,
            unit="s",
            note="wall time, process start and store reads included",
        ),
    ]
