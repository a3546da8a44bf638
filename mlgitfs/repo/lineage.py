"""Lineage: the graph of commits' `inputs` across repos (dataset → labels → model)."""

from __future__ import annotations

from dataclasses import dataclass

from mlgitfs.meta import db
from mlgitfs.model.ids import ObjectId
from mlgitfs.repo.history import walk_commits
from mlgitfs.repo.refs import ref_label
from mlgitfs.store.facade import Store


@dataclass(frozen=True, slots=True)
class LineageNode:
    repo: str
    commit: ObjectId
    message: str
    refs: tuple[str, ...]  # branches and tags of `repo` that name this commit
    children: tuple[LineageNode, ...]  # inputs (upstream) or users (downstream)


def _ref_names(store: Store) -> dict[tuple[str, bytes], list[str]]:
    out: dict[tuple[str, bytes], list[str]] = {}
    with store.env.read() as txn:
        for rec in db.list_repos(txn):
            for ref, oid in db.list_refs(txn, rec.name):
                out.setdefault((rec.name, bytes(oid)), []).append(ref_label(ref))
    return out


def upstream(store: Store, repo: str, oid: ObjectId) -> LineageNode:
    names = _ref_names(store)
    return _up(store, repo, oid, names, frozenset())


def _up(
    store: Store,
    repo: str,
    oid: ObjectId,
    names: dict[tuple[str, bytes], list[str]],
    above: frozenset[bytes],
) -> LineageNode:
    commit = store.commit(oid)
    above = above | {bytes(oid)}
    kids = tuple(
        _up(store, r, c, names, above)
        for r, c in commit.inputs
        if bytes(c) not in above and store.has_object(c)
    )
    return LineageNode(repo, oid, commit.message, tuple(names.get((repo, bytes(oid)), [])), kids)


def downstream(store: Store, repo: str, oid: ObjectId) -> LineageNode:
    """Commits of any repo that name this one (transitively) among their inputs."""
    names = _ref_names(store)
    users: dict[bytes, list[tuple[str, ObjectId]]] = {}
    with store.env.read() as txn:
        heads = {
            rec.name: [o for _, o in db.list_refs(txn, rec.name)] for rec in db.list_repos(txn)
        }
    for r, hs in heads.items():
        for cid, commit in walk_commits(store, hs):
            for _, input_id in commit.inputs:
                users.setdefault(bytes(input_id), []).append((r, cid))

    def build(r: str, c: ObjectId, above: frozenset[bytes]) -> LineageNode:
        # A DAG shown as a tree: a commit reached twice is shown twice; `above` stops cycles.
        above = above | {bytes(c)}
        kids = tuple(
            build(ur, uc, above) for ur, uc in users.get(bytes(c), []) if bytes(uc) not in above
        )
        return LineageNode(r, c, store.commit(c).message, tuple(names.get((r, bytes(c)), [])), kids)

    return build(repo, oid, frozenset())
