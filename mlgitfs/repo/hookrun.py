"""Running one hook command on a candidate version (repo/gate.py runs a gate's hooks).

A command gets MLGITFS_REPO, MLGITFS_BRANCH, MLGITFS_EVENT, MLGITFS_BASE (empty for a first
version), MLGITFS_CANDIDATE, MLGITFS_TREE and MLGITFS_VIEW in its environment, the view as
its working directory, and on stdin the changed paths as JSON:

    {"event": "pre-commit", "repo": ..., "branch": ..., "base": ..., "candidate": ...,
     "tree": ..., "changes": [{"change": "modified", "path": "labels.csv",
                              "old_path": null, "size": 1234}, ...]}

It runs in a process group of its own, killed with the whole group at its timeout or when it
exits (its stragglers must not keep the view busy). Its stdout and stderr go to files, so a
chatty hook never blocks and never fills memory; the tail of each is kept for the message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mlgitfs.model.changes import ChangeKind
from mlgitfs.model.ids import ObjectId, to_hex
from mlgitfs.repo.diff import DiffEntry, diff_trees, with_renames
from mlgitfs.repo.hooks import ContentReader, Hook
from mlgitfs.repo.trees import walk

OUTPUT_TAIL = 4000  # characters of a hook's stderr (and stdout) kept for the message
TIMEOUT_CODE = 124  # a timed-out hook's status, as timeout(1) reports it


@dataclass
class Candidate:
    """A version a gate judges: the commit that would move `repo@branch` from `base`."""

    repo: str
    branch: str
    base: ObjectId | None  # the commit the candidate replaces (None: a first version)
    commit: ObjectId
    tree: ObjectId
    base_tree: ObjectId | None


def changes(reader: ContentReader, base_tree: ObjectId | None, tree: ObjectId) -> list[DiffEntry]:
    """What `tree` changes from `base_tree` (every file added, for a first version)."""
    if base_tree is None:
        return [
            DiffEntry(ChangeKind.ADDED, p.decode(errors="surrogateescape"), None, e)
            for p, e in walk(reader, tree)
            if not e.is_dir
        ]
    return with_renames(diff_trees(reader, base_tree, tree))


def changes_json(event: str, c: Candidate, found: Sequence[DiffEntry]) -> bytes:
    doc = {
        "event": event,
        "repo": c.repo,
        "branch": c.branch,
        "base": to_hex(c.base) if c.base else None,
        "candidate": to_hex(c.commit),
        "tree": to_hex(c.tree),
        "changes": [
            {
                "change": d.change.value,
                "path": d.path,
                "old_path": d.old_path or None,
                "size": d.new_size,
            }
            for d in found
        ],
    }
    return json.dumps(doc).encode("utf-8", "surrogateescape")


def run_command(
    h: Hook, event: str, c: Candidate, found: Sequence[DiffEntry], view: Path
) -> tuple[str, int, str]:
    """Run hook `h`'s command at `event` on `c` (`found`: its changes) in `view`: its status
    (passed, failed, timed out, crashed), exit code and the tail of its output."""
    env = dict(os.environ)
    env.update(
        MLGITFS_REPO=c.repo,
        MLGITFS_BRANCH=c.branch,
        MLGITFS_EVENT=event,
        MLGITFS_BASE=to_hex(c.base) if c.base else "",
        MLGITFS_CANDIDATE=to_hex(c.commit),
        MLGITFS_TREE=to_hex(c.tree),
        MLGITFS_VIEW=str(view),
    )
    with (
        tempfile.TemporaryFile() as stdin,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        stdin.write(changes_json(event, c, found))
        stdin.seek(0)
        status, code = spawn(list(h.command), view, env, stdin, out, err, h.timeout)
        return status, code, tail(err) or tail(out)


def spawn(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    stdin: IO[bytes],
    out: IO[bytes],
    err: IO[bytes],
    timeout: float,
) -> tuple[str, int]:
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=stdin, stdout=out, stderr=err, start_new_session=True
        )
    except OSError as exc:
        err.write(f"cannot run {argv[0]}: {exc.strerror}".encode())
        return "crashed", 127
    try:
        code = proc.wait(timeout=timeout)
        status = "passed" if code == 0 else "failed" if code > 0 else "crashed"
    except subprocess.TimeoutExpired:
        err.write(f"\n(killed after {timeout:g} s)".encode())
        status, code = "timed out", TIMEOUT_CODE
    finally:
        # The whole group: a hook's background children must not outlive it (nor keep the
        # view busy so that it cannot be unmounted).
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return status, code


def tail(f: IO[bytes]) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - OUTPUT_TAIL))
    text = f.read().decode(errors="replace").strip()
    return ("..." + text if size > OUTPUT_TAIL else text).strip()
