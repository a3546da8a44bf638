"""Synthetic versions of many files, built through the library (no real directory).

Every file is the same 16-byte chunk (one chunk in the store); what grows is the trees, so a
1,000,000-file version takes seconds. ``build`` makes repo REPO (mutability ``mutable``),
commits the version on ``main`` and tags it ``REPO@v1``. Layouts:

- nested (default): ``max(min_dirs, files // 1000)`` directories ``dNNNNN/`` of equal size
  holding ``fNNNNNNN.bin`` (numbered across the whole version): 1,000 files = 1 dir of 1,000
  (``min_dirs=10``: 10 dirs of 100, so 10 changes can fall in 10 directories), 1,000,000 =
  1,000 dirs of 1,000;
- flat: all files in one directory ``flat/``, a paged tree once it passes the page limit.

``synthesize`` runs ``python -m testsupport.synth HOME REPO FILES [--flat] [--min-dirs N]`` in
a subprocess, so the caller never holds the store's LMDB environment open while ``mlgitfs``
subprocesses or mount daemons use it; the command prints one JSON line (`Synth`'s fields).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PER_DIR = 1000
CONTENT = b"same small file\n"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Synth:
    """A built version: where one file is, what it holds, and how the tree is laid out."""

    repo: str
    files: int
    dirs: int
    per_dir: int
    flat: bool
    sample: str  # a path inside the version, in its middle
    content: str  # the content of every file
    seconds: float


def layout(files: int, min_dirs: int = 1) -> tuple[int, int]:
    """(directories, files per directory) of a nested version of about ``files`` files."""
    ndirs = max(min_dirs, files // PER_DIR)
    return ndirs, max(1, files // ndirs)


def dir_name(d: int) -> str:
    return f"d{d:05d}"


def file_name(d: int, i: int, per_dir: int) -> str:
    """The name of the ``i``-th file of directory ``d`` (flat: ``d`` is 0)."""
    return f"f{d * per_dir + i:07d}.bin"


def build(home: Path, repo: str, files: int, *, flat: bool = False, min_dirs: int = 1) -> Synth:
    from mlgitfs import api
    from mlgitfs.model.ids import ChunkId, hash_bytes
    from mlgitfs.model.objects import EntryKind, TreeEntry
    from mlgitfs.repo.commits import CommitRequest, write_commit
    from mlgitfs.repo.trees import NewObjects, build_dir

    t0 = time.perf_counter()
    api.init(home, repo, "dataset", "mutable")
    store = api.open_store(home)
    writer = store.chunks.writer()
    cid = ChunkId(hash_bytes(CONTENT))
    writer.add(cid, 0, CONTENT, len(CONTENT))  # codec 0: stored as is
    objs: NewObjects = []

    def entries(d: int, n: int) -> list[TreeEntry]:
        return [
            TreeEntry(
                file_name(d, i, n).encode(), EntryKind.FILE, 0o644, len(CONTENT), 0, bytes(cid)
            )
            for i in range(n)
        ]

    if flat:
        ndirs, per_dir = 1, files
        sub = build_dir(entries(0, files), objs)
        top = [TreeEntry(b"flat", EntryKind.DIR, 0o755, files, 0, bytes(sub))]
        sample = f"flat/{file_name(0, files // 2, files)}"
    else:
        ndirs, per_dir = layout(files, min_dirs)
        top = []
        for d in range(ndirs):
            tid = build_dir(entries(d, per_dir), objs)
            top.append(
                TreeEntry(dir_name(d).encode(), EntryKind.DIR, 0o755, per_dir, 0, bytes(tid))
            )
        mid = ndirs // 2
        sample = f"{dir_name(mid)}/{file_name(mid, per_dir // 2, per_dir)}"
    root = build_dir(top, objs)
    req = CommitRequest(repo, "main", "synthetic", {}, [])
    write_commit(store, req, root, (), None, writer, objs)
    writer.reset()
    api.tag_create(home, f"{repo}@v1")
    api.close_store(home)
    return Synth(
        repo,
        ndirs * per_dir,
        ndirs,
        per_dir,
        flat,
        sample,
        CONTENT.decode(),
        time.perf_counter() - t0,
    )


def synthesize(
    home: Path, repo: str, files: int, *, flat: bool = False, min_dirs: int = 1
) -> Synth:
    """``build`` in a subprocess (see the module docstring); raises with its stderr."""
    argv = [sys.executable, "-m", "testsupport.synth", str(home), repo, str(files)]
    argv += ["--min-dirs", str(min_dirs)] + (["--flat"] if flat else [])
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"synth {repo} {files} exited {proc.returncode}: {proc.stderr}")
    return Synth(**json.loads(proc.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testsupport.synth", description=__doc__)
    p.add_argument("home", type=Path)
    p.add_argument("repo")
    p.add_argument("files", type=int)
    p.add_argument("--flat", action="store_true")
    p.add_argument("--min-dirs", type=int, default=1)
    a = p.parse_args(argv)
    print(json.dumps(asdict(build(a.home, a.repo, a.files, flat=a.flat, min_dirs=a.min_dirs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
