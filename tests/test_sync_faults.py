"""Remotes that lie or break: corrupted, truncated and missing objects, hostile trees, kill -9.

Whatever comes from a remote is checked against its id before it is used or cached; a bad
object is named in a CorruptObject, nothing of it is cached, and no ref moves. A killed push,
fetch or clone leaves remote refs naming complete commits, and a rerun succeeds.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import CorruptObject, MissingObject, StoreNotFound
from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes, short_hex
from mlgitfs.model.objects import EntryKind, Tree, TreeEntry, make_commit, object_id
from mlgitfs.store import packs
from mlgitfs.store.chunker import DEFAULT_PARAMS
from tests.conftest import Cli, write_tree
from tests.test_sync import REPO_ROOT, Remote, fsck_clean, remote, same_tree, setup_pushed

__all__ = ["remote"]  # the parametrized fixture, shared with test_sync


def _pack_keys(r: Remote, kind: str) -> list[str]:
    return sorted(k for k in r.remote_keys() if k.startswith(kind + "/") and k.endswith(".pack"))


def _one_file_repo(cli: Cli, r: Remote, tmp_path: Path) -> tuple[Path, bytes]:
    data = random.Random(1).randbytes(50_000)
    src = write_tree(tmp_path / "src", {"f.bin": data})
    setup_pushed(cli, r, src)
    home2 = tmp_path / "store2"
    api.clone(home2, r.url, "ds", endpoint_url=r.endpoint)
    return home2, data


@pytest.mark.parametrize("damage", ["flip", "truncate", "missing"])
def test_bad_chunk_pack_detected_named_not_cached(
    cli: Cli, remote: Remote, tmp_path: Path, damage: str
) -> None:
    home2, data = _one_file_repo(cli, remote, tmp_path)
    (key,) = _pack_keys(remote, packs.CHUNKS)
    t = remote.transport()
    good = t.get(key)
    if damage == "flip":
        t.put(key, good[:100] + bytes([good[100] ^ 1]) + good[101:])
    elif damage == "truncate":
        t.put(key, good[: len(good) // 2])
    else:
        t.delete(key)
    entry = next(api.ls(home2, "ds"))
    cid = bytes.fromhex(entry.id)
    res = Cli(home2)("cat", "ds:f.bin", code=7)
    assert short_hex(cid) in res.stderr
    assert ("missing" if damage == "missing" else "chunk") in res.stderr
    store2 = api.open_store(home2)
    assert not store2.chunks.has(ChunkId(cid))
    with pytest.raises(MissingObject if damage == "missing" else CorruptObject):
        store2.read_chunk(ChunkId(cid))
    t.put(key, good)  # repaired: the same store now reads it
    assert b"".join(api.cat(home2, "ds:f.bin")) == data
    fsck_clean(home2)


@pytest.mark.parametrize("what", ["meta pack", "meta index", "chunk index"])
def test_bad_metadata_refuses_clone(cli: Cli, remote: Remote, tmp_path: Path, what: str) -> None:
    src = write_tree(tmp_path / "src", {"f.bin": b"hello" * 1000})
    setup_pushed(cli, remote, src)
    t = remote.transport()
    kind = packs.META if what.startswith("meta") else packs.CHUNKS
    (key,) = _pack_keys(remote, kind)
    if what.endswith("index"):
        key = key[: -len(".pack")] + ".idx"
    good = t.get(key)
    t.put(key, good[:-40] + bytes([good[-40] ^ 0xFF]) + good[-39:])
    home2 = tmp_path / "store2"
    if kind == packs.META:
        res = Cli(home2)("clone", remote.url, "ds", *remote.add_args(), code=7)
        assert ("index" if what.endswith("index") else "object") in res.stderr
        assert not home2.exists()  # no half-made repo: no store at all
    else:
        # without chunk locators (a remote pushed by an older mlgitfs) a reader must read the
        # chunk indexes; with them it would not notice the damaged index at all
        for k in remote.remote_keys():
            if k.endswith((".loc", ".lidx")):
                t.delete(k)
        Cli(home2)("clone", remote.url, "ds", *remote.add_args())
        res = Cli(home2)("cat", "ds:f.bin", code=7)
        assert key in res.stderr  # the index is named
    t.put(key, good)
    if kind == packs.META:
        Cli(home2)("clone", remote.url, "ds", *remote.add_args())  # a rerun now works
    Cli(home2)("export", "ds", str(tmp_path / "out"))
    same_tree(src, tmp_path / "out")
    fsck_clean(home2)


def test_truncated_index_left_by_a_killed_push_is_skipped(
    cli: Cli, remote: Remote, tmp_path: Path
) -> None:
    """A PUT cut off mid-body can leave a truncated index (SeaweedFS keeps what it got). The
    next push and every clone must treat that pack as not there, not fail on it forever."""
    src = write_tree(tmp_path / "src", {"f.bin": os.urandom(300_000)})
    setup_pushed(cli, remote, src)
    t = remote.transport()
    (good_key,) = _pack_keys(remote, packs.CHUNKS)
    idx = t.get(good_key[: -len(".pack")] + ".idx")
    stray = packs.index_key(packs.CHUNKS, bytes(range(32)))
    t.put(stray, idx[: len(idx) // 2])  # the first half of an index, as a cut-off PUT leaves
    write_tree(src, {"g.bin": os.urandom(300_000)})
    cli("import", "ds", str(src), "-m", "v2")
    cli("push", "ds")
    home2 = tmp_path / "store2"
    Cli(home2)("clone", remote.url, "ds", *remote.add_args())
    Cli(home2)("export", "ds", str(tmp_path / "out"))
    same_tree(src, tmp_path / "out")
    fsck_clean(home2)


def json_repos(home: Path) -> list[str]:
    """The repos of the store at `home`; none where a killed clone left no store (a clone
    makes the store's files only once it knows the remote holds the repo)."""
    try:
        return [r.name for r in api.repos(home)]
    except StoreNotFound:
        return []


def _raw_tree(entries: list[TreeEntry]) -> Tree:
    return Tree(tuple(entries))  # no validation on construction: a hostile writer's tree


def _unchecked_id(obj: Tree) -> tuple[bytes, bytes]:
    """What a hostile writer does: encode without object_id's range checks."""
    data = obj.encode()
    return hash_bytes(data), data


@pytest.mark.parametrize("bad", [b"..", b"a/b", b"x\0y", b"."])
@pytest.mark.parametrize("depth", ["root", "subdir"])
def test_hostile_tree_names_refused(tmp_path: Path, bad: bytes, depth: str) -> None:
    """A remote crafted by hand (no mlgitfs push) whose tree names escape the directory."""
    t = Remote((tmp_path / "remote").as_uri(), None, {}).transport()
    t.put(packs.CONFIG_KEY, packs.render_config(DEFAULT_PARAMS))
    t.put(packs.repo_key("ds"), packs.render_repo("dataset", "strict", []))
    chunk = b"payload"
    file_entry = TreeEntry(bad, EntryKind.FILE, 0o644, len(chunk), 0, hash_bytes(chunk))
    objects: list[tuple[bytes, bytes]] = []
    bad_id, data = _unchecked_id(_raw_tree([file_entry]))
    objects.append((bad_id, data))
    root_id = bad_id
    if depth == "subdir":
        root_id, data = object_id(
            _raw_tree([TreeEntry(b"sub", EntryKind.DIR, 0o755, 1, 0, bad_id)])
        )
        objects.append((root_id, data))
    commit_id, data = object_id(make_commit(ObjectId(root_id), (), "evil", 1, "evil"))
    objects.append((commit_id, data))
    index, pack, idx = packs.build_pack(packs.META, [packs.meta_item(o, d) for o, d in objects])
    t.put(packs.pack_key(packs.META, index.pack), pack)
    t.put(packs.index_key(packs.META, index.pack), idx)
    t.put(packs.ref_key("ds", "heads/main"), packs.encode_ref(commit_id))

    home = tmp_path / "store"
    cli = Cli(home)
    if depth == "root":
        res = cli("clone", t.describe(), "ds", code=7)
        assert short_hex(bad_id) in res.stderr and "invalid entry name" in res.stderr
        assert not home.exists()  # a failed clone leaves no store behind
    else:
        cli("clone", t.describe(), "ds")
        res = cli("ls", "-R", "ds", code=7)
        assert short_hex(bad_id) in res.stderr and "invalid entry name" in res.stderr
        cli("export", "ds", str(tmp_path / "out"), code=7)
        out = tmp_path / "out"
        assert not out.exists() or not [p for p in out.rglob("*") if not p.is_dir()]
        store = api.open_store(home)
        assert not store.has_object(ObjectId(bad_id))  # never cached
        api.branch_delete(home, "ds@main", force=True)  # the store's fsck is about itself
        assert api.branch_list(home, "ds") == []
        api.remote_remove(home, "origin")
        fsck_clean(home)


# --- kill -9 ----------------------------------------------------------------------------------


def _cli_proc(home: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlgitfs_cli.main", "--home", str(home), "-q", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _startup(env: dict[str, str]) -> float:
    """Seconds for the CLI to start (imports): kills aim at the work after it."""
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "mlgitfs_cli.main", "remote", "--help"],
        cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.monotonic() - t0


def _kill_at_random(proc: subprocess.Popen[bytes], rnd: random.Random, start: float) -> bool:
    """SIGKILL at a random point of the work after start-up; True if it was still running."""
    time.sleep(start + rnd.uniform(-0.05, 0.4))
    alive = proc.poll() is None
    if alive:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return alive


def _kill_within(proc: subprocess.Popen[bytes], rnd: random.Random, span: float) -> bool:
    """SIGKILL at a random point within `span` seconds of starting; True if it was running."""
    time.sleep(rnd.uniform(0.3, 0.9) * span)
    alive = proc.poll() is None
    if alive:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return alive


def _check_remote_consistent(r: Remote, tmp_path: Path, tag: str) -> None:
    """A fresh clone of whatever the remote's ref names reads completely and fscks clean."""
    if "refs/ds/heads/main" not in r.remote_keys():
        return
    home = tmp_path / f"check-{tag}"
    api.clone(home, r.url, "ds", endpoint_url=r.endpoint)
    api.prefetch(home, "ds")
    fsck_clean(home)


def test_kill_push_fetch_clone(cli: Cli, remote: Remote, tmp_path: Path) -> None:
    rnd = random.Random(int.from_bytes(os.urandom(4)))
    gen = random.Random(7)
    src = write_tree(
        tmp_path / "src",
        {f"d{i // 20}/f{i}.bin": gen.randbytes(gen.randrange(50_000, 400_000)) for i in range(80)},
    )
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    env = {**os.environ, **remote.env, "MLGITFS_PACK_TARGET": str(1 << 20)}
    start = _startup(env)
    # One push of a round's size, uninterrupted: later kills aim inside that duration, so a
    # fast machine or remote cannot make every push finish before its kill.
    write_tree(src, {"d0/base.bin": gen.randbytes(8_000_000)})
    cli("import", "ds", str(src), "-m", "v1b")
    p = _cli_proc(cli.home, env, "push", "ds")
    t0 = time.monotonic()
    p.wait()
    span = time.monotonic() - t0
    kills = 0
    for i in range(8):  # each round: a new version, its push killed at a random point
        if i >= 3 and kills >= 2:
            break
        write_tree(src, {f"d{i}/new{i}.bin": gen.randbytes(8_000_000)})
        cli("import", "ds", str(src), "-m", f"v{i + 2}")
        p = _cli_proc(cli.home, env, "push", "ds")
        kills += _kill_within(p, rnd, span)
        _check_remote_consistent(remote, tmp_path, f"push{i}")
    cli("push", "ds")  # the rerun uploads what is missing and moves the ref
    assert kills >= 1, "no push was still running when killed"

    home2 = tmp_path / "store2"
    for _ in range(3):  # kill clones; reruns finish them
        p = _cli_proc(home2, env, "clone", remote.url, "ds", *remote.add_args())
        _kill_at_random(p, rnd, start)
    if "ds" not in json_repos(home2):
        Cli(home2)("clone", remote.url, "ds", *remote.add_args())
    write_tree(src, {"later.bin": b"later"})
    cli("import", "ds", str(src), "-m", "later")
    cli("push", "ds")
    for _ in range(3):
        p = _cli_proc(home2, env, "pull", "ds")
        _kill_at_random(p, rnd, start)
    p = _cli_proc(home2, env, "prefetch", "ds")
    _kill_at_random(p, rnd, start)
    Cli(home2)("pull", "ds")
    assert api.show(home2, "ds").id == api.show(cli.home, "ds").id
    Cli(home2)("export", "ds", str(tmp_path / "out"))
    same_tree(src, tmp_path / "out")
    fsck_clean(home2)
    _check_remote_consistent(remote, tmp_path, "final")
