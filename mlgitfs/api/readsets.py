"""Read-set lineage: `run --record` (a process tree's reads through the store's mounts), the
recordings it stores, and the read sets `import`/`commit --inputs-from` attach to versions."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlgitfs.api._common import open_store
from mlgitfs.errors import MlgitError, MountError, NotFound, UsageError
from mlgitfs.meta import readsets
from mlgitfs.model import readset
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.names import check_ref_name
from mlgitfs.model.readset import ReadSet
from mlgitfs.repo import lineage, refs
from mlgitfs.repo import lineage_export as lineage_export_mod
from mlgitfs.store.facade import Store

if TYPE_CHECKING:
    from mlgitfs.daemon.registry import MountRecord


@dataclass(frozen=True, slots=True)
class RunResult:
    """A recorded run: its exit status and the read set stored under `readset.name`."""

    returncode: int
    mounts: tuple[str, ...]  # the mountpoints that recorded
    readset: ReadSet


def _start_all(
    store: Store, name: str, root: int, mountpoints: list[Path] | None
) -> list[MountRecord]:
    """Start recording `name` for the tree of `root` in the store's mounts (or those at
    `mountpoints`); all or none: a refusal stops those already started."""
    from mlgitfs.daemon import messages, protocol, registry

    check_ref_name(name, "recording")
    records = registry.list_mounts(store.run_dir)
    if mountpoints:
        wanted = {os.path.abspath(p) for p in mountpoints}
        missing = wanted - {m.mountpoint for m in records}
        if missing:
            raise NotFound(f"no mount of this store at {', '.join(sorted(missing))}")
        records = [m for m in records if m.mountpoint in wanted]
    started: list[MountRecord] = []
    for m in records:
        try:
            protocol.call(m.control_socket, messages.RecordStartRequest(name, root))
        except MlgitError as exc:
            _stop_all(started, name)
            raise MountError(
                f"cannot record in the mount at {m.mountpoint}: {exc.message}"
            ) from exc
        started.append(m)
    return started


def _store(store: Store, rs: ReadSet) -> None:
    with store.env.write() as txn:
        readsets.put_recording(txn, rs)


def run_recorded(
    home: Path | None, name: str, argv: list[str], mountpoints: list[Path] | None = None
) -> RunResult:
    """Run `argv` while the store's mounts (or those at `mountpoints`) attribute the opens of
    this process and its descendants to recording `name`; store the read set under `name`
    (replacing one of that name). Nothing is stored if the command cannot be started."""
    if not argv:
        raise UsageError("run: give the command to run after --")
    store = open_store(home)
    started = _start_all(store, name, os.getpid(), mountpoints)
    t0 = time.time_ns()
    try:
        code = subprocess.run(argv, check=False).returncode
    except OSError as exc:
        _stop_all(started, name)
        raise UsageError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from exc
    except BaseException:
        _stop_all(started, name)
        raise
    items, _ = _stop_all(started, name)
    rs = readset.build(name, t0, argv, items)
    _store(store, rs)
    return RunResult(code, tuple(m.mountpoint for m in started), rs)


@dataclass(frozen=True, slots=True)
class RecordStartResult:
    name: str
    pid: int  # the root of the recorded process tree
    mounts: tuple[str, ...]


def record_start(
    home: Path | None, name: str, pid: int, mountpoints: list[Path] | None = None
) -> RecordStartResult:
    """Start recording `name` for the process tree of `pid` (see `run_recorded`); `record_stop`
    ends it and stores the read set."""
    if pid <= 1:
        raise UsageError(f"record start: --pid {pid} is not a process to record")
    started = _start_all(open_store(home), name, pid, mountpoints)
    return RecordStartResult(name, pid, tuple(m.mountpoint for m in started))


def record_stop(home: Path | None, name: str) -> ReadSet:
    """End recording `name` in every mount running it and store its read set."""
    from mlgitfs.daemon import registry

    check_ref_name(name, "recording")
    store = open_store(home)
    items, found = _stop_all(registry.list_mounts(store.run_dir), name)
    if not found:
        raise NotFound(f"no recording named {name!r} runs in any mount of this store")
    rs = readset.build(name, time.time_ns(), (), items)
    _store(store, rs)
    return rs


def _stop_all(
    records: list[MountRecord], name: str
) -> tuple[list[tuple[str, bytes, str, int]], int]:
    """The items of recording `name` in these mounts, and how many of them ran it."""
    from mlgitfs.daemon import messages, protocol

    items: list[tuple[str, bytes, str, int]] = []
    found = 0
    for m in records:
        # A daemon gone meanwhile recorded nothing; one not running `name` says NotFound.
        with contextlib.suppress(MlgitError):
            reply = protocol.call(m.control_socket, messages.RecordStopRequest(name))
            items.extend((i.repo, i.commit, i.path, i.bytes_read) for i in reply.items)
            found += 1
    return items, found


def recording(home: Path | None, name: str) -> ReadSet:
    return load_recording(open_store(home), name)


def load_recording(store: Store, name: str) -> ReadSet:
    with store.env.read() as txn:
        rs = readsets.get_recording(txn, name)
    if rs is None:
        raise NotFound(
            f"no recording named {name!r}: 'mlgitfs run --record {name} -- CMD' makes one"
        )
    return rs


def inputs_of(rs: ReadSet) -> list[tuple[str, ObjectId]]:
    return [(i.repo, i.commit) for i in rs.inputs]


def merged_inputs(
    declared: list[tuple[str, ObjectId]], rs: ReadSet | None
) -> list[tuple[str, ObjectId]]:
    """`--input` versions then the read set's, each once."""
    out = list(declared)
    for item in inputs_of(rs) if rs is not None else []:
        if item not in out:
            out.append(item)
    return out


def attach(store: Store, commit: ObjectId, rs: ReadSet) -> None:
    with store.env.write() as txn:
        readsets.attach(txn, commit, rs)


def attached(store: Store, commit: ObjectId) -> ReadSet | None:
    with store.env.read() as txn:
        return readsets.attached(txn, commit)


@dataclass(frozen=True, slots=True)
class LineageFilesResult:
    """The files a version was made from: its read set (None: none attached)."""

    repo: str
    commit: str
    readset: ReadSet | None


def lineage_files(home: Path | None, revspec: str) -> LineageFilesResult:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    return LineageFilesResult(r.repo, r.commit_id.hex(), attached(store, r.commit_id))


def lineage_export(home: Path | None, revspec: str, fmt: str, direction: str = "both") -> str:
    """The lineage of `revspec` as OpenLineage run events (`openlineage`: one JSON event per
    line, upstream first) or as a Graphviz digraph (`dot`)."""
    store = open_store(home)
    r = refs.resolve(store, revspec)
    up = lineage.upstream(store, r.repo, r.commit_id)
    if fmt == "openlineage":
        events = lineage_export_mod.run_events(store, up)
        return "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)
    if fmt == "dot":
        roots = [up] if direction != "down" else []
        if direction != "up":
            roots.append(lineage.downstream(store, r.repo, r.commit_id))
        return lineage_export_mod.dot(store, roots)
    raise UsageError(f"unknown lineage format {fmt!r}: openlineage or dot")
