"""The LMDB schema's one home (mlgitfs/meta/): no database named by string elsewhere, and the
accessors built on it: a branch's dirty checkouts, fsck of checkouts, the gc roots."""

from __future__ import annotations

import ast
from pathlib import Path

from mlgitfs import api
from mlgitfs.meta import checkouts, roots, schema
from mlgitfs.meta.env import open_env
from mlgitfs.model.ids import ObjectId
from mlgitfs.repo.fsck import fsck
from mlgitfs.vfs.factory import open_checkout_view
from tests.test_overlay_vfs import make_repo, write_file

ROOT = Path(__file__).resolve().parent.parent
TXN_METHODS = {"get", "has", "scan", "count", "put", "put_new", "delete", "clear"}


def _named_by_string(source: str, label: str) -> list[str]:
    """Calls like txn.get("objects", ...) or txn.scan(NAME) with NAME = "objects" local."""
    tree = ast.parse(source, label)
    names = set(schema.DATABASES)
    local = {
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and node.value.value in names
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in TXN_METHODS or not node.args:
            continue
        first = node.args[0]
        if (isinstance(first, ast.Constant) and first.value in names) or (
            isinstance(first, ast.Name) and first.id in local
        ):
            found.append(f"{label}:{node.lineno}")
    return found


def test_no_database_is_named_by_string_outside_meta() -> None:
    files = [
        p
        for d in ("mlgitfs", "cli", "bench")
        for p in sorted((ROOT / d).rglob("*.py"))
        if (ROOT / "mlgitfs" / "meta") not in p.parents
    ]
    assert len(files) > 50
    offenders = [
        h for p in files for h in _named_by_string(p.read_text(), str(p.relative_to(ROOT)))
    ]
    assert offenders == [], "name the database through mlgitfs.meta (schema.py, accessors)"


def test_only_meta_imports_the_schema() -> None:
    """Outside meta/ a database is reached through an accessor, never by its constant."""
    offenders = []
    for d in ("mlgitfs", "cli", "bench"):
        for p in sorted((ROOT / d).rglob("*.py")):
            if (ROOT / "mlgitfs" / "meta") in p.parents:
                continue
            for node in ast.walk(ast.parse(p.read_text(), str(p))):
                if isinstance(node, ast.ImportFrom) and (
                    node.module == "mlgitfs.meta.schema"
                    or (
                        node.module == "mlgitfs.meta"
                        and any(a.name == "schema" for a in node.names)
                    )
                ):
                    offenders.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], "reach a database through an accessor of mlgitfs/meta/"


def test_the_scan_finds_a_database_named_by_string() -> None:
    source = 'K = "pins"\n\n\ndef f(txn):\n    return txn.has(K, b"x") or txn.get("objects", b"")\n'
    assert _named_by_string(source, "probe") == ["probe:5", "probe:5"]
    assert _named_by_string('d = {}\nd.get("objects")\n', "probe") == ["probe:2"]
    assert _named_by_string('d = {}\nd.get("other")\n', "probe") == []


def test_every_database_is_opened(tmp_path: Path) -> None:
    env = open_env(tmp_path / "meta")
    with env.read() as txn:
        assert {name: txn.count(name) for name in schema.DATABASES} == dict.fromkeys(
            schema.DATABASES, 0
        )


async def test_dirty_checkouts_fsck_and_gc_roots(home: Path, tmp_path: Path) -> None:
    make_repo(home, tmp_path)
    store = api.open_store(home)
    try:
        with store.env.read() as txn:
            assert checkouts.dirty_checkouts(txn, "ds", "main") == []
        v = open_checkout_view(store, "ds", "main", 1 << 20)
        try:
            with store.env.read() as txn:
                assert checkouts.dirty_checkouts(txn, "ds", "main") == []  # clean checkout
            await write_file(v, "top.txt", b"changed\n")
            with store.env.read() as txn:
                dirty = checkouts.dirty_checkouts(txn, "ds", "main")
                assert [rec.id for rec in dirty] == [v.record.id]
                assert checkouts.dirty_checkouts(txn, "ds", "other") == []
                found = roots.gc_roots(txn)
            assert v.record.base in found.checkout_bases
            assert v.record.base in found.ref_commits
            assert found.pinned_chunks  # imported, pushed nowhere
            assert found.commits >= found.ref_commits | found.checkout_bases
            assert fsck(store).clean
        finally:
            v.close()
        # A checkout whose base commit is gone is reported by fsck, with its branch.
        gone = ObjectId(b"\x07" * 32)
        with store.env.write() as txn:
            rec = checkouts.get_checkout(txn, "ds", "main")
            assert rec is not None
            base, rec.base = rec.base, gone
            checkouts.put_checkout(txn, "ds", "main", rec)
        report = fsck(store)
        assert [(d.reason, d.path) for d in report.damage] == [
            ("the checkout's base commit is missing", "ds@main (checkout)")
        ]
        with store.env.read() as txn:
            assert gone in roots.gc_roots(txn).checkout_bases
        with store.env.write() as txn:  # put back: the fixture's closing fsck is clean
            rec.base = base
            checkouts.put_checkout(txn, "ds", "main", rec)
    finally:
        store.close()
