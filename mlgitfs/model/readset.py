"""Read sets: which files of which input versions a recorded process tree read, and their
compact encoding (per input commit, its paths sorted and front-coded, with bytes read).

A recording (`mlgitfs run --record NAME`) makes one; `import` and `commit --inputs-from NAME`
attach it to the version they make (meta/readsets.py stores both).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mlgitfs.errors import CorruptObject
from mlgitfs.model import codec
from mlgitfs.model.ids import ObjectId

FORMAT = 1


@dataclass(frozen=True, slots=True)
class ReadFile:
    path: str
    bytes_read: int


@dataclass(frozen=True, slots=True)
class InputReads:
    """The files read of one input version, sorted by path."""

    repo: str
    commit: ObjectId
    files: tuple[ReadFile, ...]


@dataclass(frozen=True, slots=True)
class ReadSet:
    name: str
    time_ns: int
    command: tuple[str, ...]
    inputs: tuple[InputReads, ...]  # sorted by (repo, commit)

    @property
    def files(self) -> int:
        return sum(len(i.files) for i in self.inputs)


def build(
    name: str, time_ns: int, command: Iterable[str], items: Iterable[tuple[str, bytes, str, int]]
) -> ReadSet:
    """A read set from (repo, commit, path, bytes read) items, any order; a path seen
    several times (two mounts of one version) sums its bytes."""
    by_input: dict[tuple[str, bytes], dict[str, int]] = {}
    for repo, commit, path, n in items:
        files = by_input.setdefault((repo, bytes(commit)), {})
        files[path] = files.get(path, 0) + n
    inputs = tuple(
        InputReads(repo, ObjectId(commit), tuple(ReadFile(p, n) for p, n in sorted(files.items())))
        for (repo, commit), files in sorted(by_input.items())
    )
    return ReadSet(name, time_ns, tuple(command), inputs)


def _front_code(paths: list[str]) -> tuple[list[int], list[str]]:
    shared, rest, prev = [], [], ""
    for p in paths:
        n = 0
        limit = min(len(p), len(prev))
        while n < limit and p[n] == prev[n]:
            n += 1
        shared.append(n)
        rest.append(p[n:])
        prev = p
    return shared, rest


def encode(rs: ReadSet) -> bytes:
    inputs = []
    for i in rs.inputs:
        shared, rest = _front_code([f.path for f in i.files])
        inputs.append([i.repo, bytes(i.commit), shared, rest, [f.bytes_read for f in i.files]])
    return codec.pack([FORMAT, rs.name, rs.time_ns, list(rs.command), inputs])


def decode(data: bytes) -> ReadSet:
    what = "read set"
    value = codec.unpack(data, what)
    try:
        fmt, name, time_ns, command, raw_inputs = value
        if fmt != FORMAT:
            raise CorruptObject(what, f"format {fmt!r}, not {FORMAT}")
        inputs = []
        for repo, commit, shared, rest, sizes in raw_inputs:
            files, prev = [], ""
            for n, tail, size in zip(shared, rest, sizes, strict=True):
                prev = prev[:n] + tail
                files.append(ReadFile(prev, int(size)))
            inputs.append(InputReads(str(repo), ObjectId(bytes(commit)), tuple(files)))
        return ReadSet(str(name), int(time_ns), tuple(str(c) for c in command), tuple(inputs))
    except (TypeError, ValueError) as exc:
        raise CorruptObject(what, f"malformed: {exc}") from exc
