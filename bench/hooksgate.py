"""Run the hooks_gate bench case alone: CI-sized by default (20,000 rows and files), the
issue's full size (1,000,000 rows and files) with --full.

    python -m bench.hooksgate [--full]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.cases.hooks_gate import CI_FACTOR, FILES, ROWS, _measure, _row


def main(argv: list[str]) -> int:
    f = 1 if "--full" in argv else CI_FACTOR
    with tempfile.TemporaryDirectory(prefix="hooks-gate-") as tmp:
        r = _row(_measure(ROWS // f, FILES // f, Path(tmp)))
    print("| case | metric | ours (s) | baseline (s) | ratio | target |")
    print("|---|---|---|---|---|---|")
    assert r.ours is not None and r.baseline is not None and r.ratio is not None
    print(
        f"| {r.case} | {r.metric} | {r.ours:.3f} | {r.baseline:.3f} | {r.ratio:.1f}x "
        f"| {r.target_text} |"
    )
    print(f"\n{r.note}; extra: {r.extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
