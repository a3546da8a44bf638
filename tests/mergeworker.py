"""Subprocess body for tests/test_merge_crash.py: merge branch pairs until killed (`python -m`)."""

from __future__ import annotations

import sys
from pathlib import Path


def main(home: Path, pairs: int) -> None:
    from mlgitfs import api

    api.open_store(home)
    merge = api.merge  # mlgitfs.api imports a verb's module on first use: before "ready"
    print("ready", flush=True)  # imports done: the test's kill aims at the merges after this
    for i in range(pairs):
        merge(home, f"ds@r{i}", f"ds@l{i}", f"merge {i}", strategy="theirs")
    print("done", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
