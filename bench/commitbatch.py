"""Writing a synthetic history through the library, a batch of commits per LMDB transaction,
as `write_commit` writes them: the batch's chunks and objects, then each commit with its
generation and commit-graph record (`commitindex.make_record`), then the branch moved once
(bench/logsynth.py and bench/blamesynth.py; bench/signsynth.py writes statements instead of
graph records).

A history of 1,000 commits written one transaction each would time LMDB's commits, not the
case: batching makes building it cost what the objects cost.
"""

from __future__ import annotations

from mlgitfs.meta import commitgraph, db
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import make_commit, object_id
from mlgitfs.repo.commitindex import PendingObjects, make_record
from mlgitfs.repo.trees import NewObjects
from mlgitfs.store.facade import Store

AUTHOR = "labeller@lab"
T0 = 1_700_000_000 * 10**9  # the first commit's time; one a minute after it


class CommitBatch:
    """Commits of `repo@main` made in memory on top of `head` (generation `gen`), written
    together by `write`. Chunks go to `writer`, objects to `add`; `reader` sees both the
    store and the objects added so far."""

    def __init__(self, store: Store, repo: str, head: ObjectId | None, gen: int) -> None:
        self.store = store
        self.repo = repo
        self.writer = store.chunks.writer()
        self.pending: dict[bytes, bytes] = {}
        self.reader = PendingObjects(store, self.pending)  # sees each object added
        self.rows: list[tuple[ObjectId, bytes, commitgraph.GraphRecord, int]] = []
        self.first = self.head = head
        self.gen = gen

    def add(self, objs: NewObjects) -> None:
        self.pending.update((bytes(o), data) for o, data in objs)

    def commit(self, n: int, tree: ObjectId, parent_tree: ObjectId | None) -> ObjectId:
        """Commit number `n` of the history: `tree` on the head (whose tree is
        `parent_tree`), at minute `n` after T0; the new head."""
        commit = make_commit(
            tree, (self.head,) if self.head else (), AUTHOR, T0 + n * 60 * 10**9,
            f"relabel batch {n}", {}, [],
        )  # fmt: skip
        cid, data = object_id(commit)
        self.gen += 1
        self.rows.append((cid, data, make_record(self.reader, commit, parent_tree), self.gen))
        self.head = cid
        return cid

    def write(self, why: str) -> None:
        """The batch in one transaction, the branch moved from where it was by compare and
        swap (`why` in its reflog)."""
        self.writer.flush()
        with self.store.env.write() as txn:
            self.writer.record(txn)
            self.store.put_objects(txn, ((ObjectId(o), d) for o, d in self.pending.items()))
            for cid, data, record, gen in self.rows:
                db.put_object(txn, cid, data)
                db.put_generation(txn, cid, gen)
                commitgraph.put_record(txn, cid, record)
            assert self.head is not None
            db.set_ref(txn, self.repo, "heads/main", self.head, self.first, why)
        self.writer.reset()
