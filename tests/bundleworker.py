"""A bundle in a process of its own for tests/test_bundle.py: imports first, prints "ready",
then bundles repo ds of HOME into FILE on a line of stdin, so a kill lands in the work, not in
the interpreter's start."""

from __future__ import annotations

import sys
from pathlib import Path

from mlgitfs import api


def main() -> None:
    home, file = Path(sys.argv[1]), Path(sys.argv[2])
    bundle = api.bundle  # mlgitfs.api imports a verb's module on first use: before "ready"
    print("ready", flush=True)
    sys.stdin.readline()
    bundle(home, "ds", file)
    print("done", flush=True)


if __name__ == "__main__":
    main()
