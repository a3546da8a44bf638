"""Subprocess body for tests/test_remotegc_races.py (`python -m`): one remote gc of the
store's remote `origin`, printing each phase as it begins (the test kills it there), then
"done" and the result as JSON."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path


def main(home: Path, grace: float) -> None:
    from mlgitfs import api
    from mlgitfs.repo.remotegc import gc_remote

    def phase(name: str) -> None:
        print(name, flush=True)

    res = gc_remote(api.open_store(home), "origin", grace=grace, phase=phase, pack_target=96 << 10)
    print("done", flush=True)
    print(json.dumps(dataclasses.asdict(res)), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]))
