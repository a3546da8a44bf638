"""Large directories are paged: one change rewrites one page and the index; lookups stay exact."""

from __future__ import annotations

from pathlib import Path

from mlgitfs import api
from mlgitfs.model.ids import ObjectId, hash_bytes
from mlgitfs.model.objects import EntryKind, Tree, TreeEntry, TreeIndex
from mlgitfs.repo.diff import diff_trees
from mlgitfs.repo.trees import PAGE_LIMIT, DirView, build_dir
from mlgitfs.store.facade import Store


def entries(n: int, changed: int | None = None) -> list[TreeEntry]:
    out = []
    for i in range(n):
        content = b"changed" if i == changed else str(i).encode()
        out.append(
            TreeEntry(
                f"img{i:07d}.jpg".encode(),
                EntryKind.FILE,
                0o644,
                len(content),
                0,
                hash_bytes(content),
            )
        )
    return sorted(out, key=lambda e: e.name)


def put(store: Store, objs: list[tuple[ObjectId, bytes]]) -> None:
    with store.env.write() as txn:
        store.put_objects(txn, objs)


def test_small_directory_is_one_tree() -> None:
    objs: list[tuple[ObjectId, bytes]] = []
    build_dir(entries(PAGE_LIMIT), objs)
    assert len(objs) == 1


def test_large_directory_pages(home: Path) -> None:
    store = api.open_store(home, create=True)
    a_objs: list[tuple[ObjectId, bytes]] = []
    a = build_dir(entries(30_000), a_objs)
    b_objs: list[tuple[ObjectId, bytes]] = []
    b = build_dir(entries(30_000, changed=12_345), b_objs)
    put(store, a_objs + b_objs)
    index = store.get(a, TreeIndex)
    assert index.count == 30_000 and 10 < len(index.pages) < 60
    assert all(p.count <= 4096 for p in index.pages)
    # One changed file: one new page and a new index, every other page shared.
    assert len({o for o, _ in b_objs} - {o for o, _ in a_objs}) == 2
    view = DirView(store, b)
    for i in (0, 1, 12_345, 29_999):
        e = view.lookup(f"img{i:07d}.jpg".encode())
        assert e is not None and e.name == f"img{i:07d}.jpg".encode()
    assert view.lookup(b"img9999999.jpg") is None and view.lookup(b"a") is None
    assert [e.name for e in view.entries(29_998)] == [b"img0029998.jpg", b"img0029999.jpg"]
    changes = list(diff_trees(store, a, b))
    assert [(c.change.value, c.path) for c in changes] == [("modified", "img0012345.jpg")]


def test_insert_rewrites_one_page() -> None:
    base = entries(20_000)
    a_objs: list[tuple[ObjectId, bytes]] = []
    build_dir(base, a_objs)
    extra = TreeEntry(b"img0010000x.jpg", EntryKind.FILE, 0o644, 1, 0, hash_bytes(b"x"))
    b_objs: list[tuple[ObjectId, bytes]] = []
    build_dir(sorted([*base, extra], key=lambda e: e.name), b_objs)
    new = {o for o, _ in b_objs} - {o for o, _ in a_objs}
    assert len(new) == 2
    assert all(isinstance(o, bytes) for o in new) and Tree.TAG == "tree"
