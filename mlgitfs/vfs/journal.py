"""The journal of one namespace operation of a writable view: what it writes to LMDB and how
to take back what it changed in memory if that fails (docs/overlay.md, fault states)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mlgitfs.meta.env import WriteTxn
from mlgitfs.vfs.nodes import Node

K = TypeVar("K")
V = TypeVar("V")


_ABSENT = object()


def _scalars(n: Node) -> tuple[object, ...]:
    return (
        n.parent,
        n.name,
        n.mode,
        n.mtime_ns,
        n.origin,
        n.recorded,
        n.overlay,
        n.size,
        n.read,
        n.ctime_ns,
        n.atime_ns,
    )


def _restore_scalars(n: Node, v: tuple[object, ...]) -> None:
    (n.parent, n.name, n.mode, n.mtime_ns, n.origin, n.recorded, n.overlay, n.size,
     n.read, n.ctime_ns, n.atime_ns) = v  # type: ignore[assignment]  # fmt: skip


@dataclass
class Batch:
    """What one namespace operation changes in LMDB, written in one transaction, and how to
    take back what it changed in memory if that transaction (or anything before it) fails.

    Faults never destroy data: an operation changes nodes only through `save` (scalar
    fields, saved once) and `put`/`pop`/`add`/`discard` (containers, journalled), and leaves
    file deletions to `after`, which runs once the records are durable. `rollback` restores
    memory exactly as it was (docs/overlay.md, fault states)."""

    nodes: dict[int, Node] = field(default_factory=dict)
    deltas: dict[tuple[int, bytes], int] = field(default_factory=dict)  # 0: whiteout
    undeltas: set[tuple[int, bytes]] = field(default_factory=set)
    drop_nodes: set[int] = field(default_factory=set)
    after: list[Callable[[], None]] = field(default_factory=list)
    # more records to write in the same transaction (a mount merge's state: vfs/mountmerge.py)
    also: list[Callable[[WriteTxn], None]] = field(default_factory=list)
    _saved: dict[int, tuple[Node, tuple[object, ...]]] = field(default_factory=dict)
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def delta(self, parent: int, name: bytes, ino: int) -> None:
        self.undeltas.discard((parent, name))
        self.deltas[(parent, name)] = ino

    def undelta(self, parent: int, name: bytes) -> None:
        self.deltas.pop((parent, name), None)
        self.undeltas.add((parent, name))

    # --- the undo journal ------------------------------------------------------------------

    def save(self, node: Node) -> None:
        """Keep node's scalar fields as they were before this operation's first change."""
        if node.ino not in self._saved:
            self._saved[node.ino] = (node, _scalars(node))

    def put(self, d: dict[K, V], key: K, value: V) -> None:
        old = d.get(key, _ABSENT)
        d[key] = value
        self._undo.append(lambda: _put_back(d, key, old))

    def pop(self, d: dict[K, V], key: K) -> None:
        if key in d:
            old = d.pop(key)
            self._undo.append(lambda: d.__setitem__(key, old))

    def add(self, s: set[K], key: K) -> None:
        if key not in s:
            s.add(key)
            self._undo.append(lambda: s.discard(key))

    def discard(self, s: set[K], key: K) -> None:
        if key in s:
            s.discard(key)
            self._undo.append(lambda: s.add(key))

    def undo(self, action: Callable[[], None]) -> None:
        """Run `action` if the operation fails (a change outside memory to take back)."""
        self._undo.append(action)

    def empty(self) -> bool:
        return not (self.nodes or self.deltas or self.undeltas or self.drop_nodes or self.also)

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            undo()
        for node, fields in self._saved.values():
            _restore_scalars(node, fields)
        self._undo.clear()
        self._saved.clear()


def _put_back(d: dict[K, V], key: K, old: object) -> None:
    if old is _ABSENT:
        d.pop(key, None)
    else:
        d[key] = old  # type: ignore[assignment]
