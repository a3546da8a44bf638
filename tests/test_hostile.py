"""Hostile remotes (tests/hostile.py's corpus) through every reader: clone, pull, cat, ls,
export, diff, fsck and a real mount. Each lying object gives a clear error (exit 7, EIO in
the mount for that file or directory only), within a bounded time and with the process's
peak memory under MEMORY_BOUND over its baseline, and nothing that failed a check is kept.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.daemon import registry
from mlgitfs.errors import CorruptObject, DestinationError, MlgitError
from mlgitfs.meta import db
from mlgitfs.model.ids import ChunkId, ObjectId, short_hex
from mlgitfs.store import compress, packs
from mlgitfs.store.remote import RemoteTransport
from mlgitfs.store.transports import open_transport
from tests import hostile
from tests.hostile import BIG, CASES, GOOD, Case
from testsupport.mounts import detach, stop_pid
from testsupport.s3server import S3Server

REPO_ROOT = Path(__file__).resolve().parent.parent
MLGITFS = str(Path(sys.executable).parent / "mlgitfs")
MEMORY_BOUND = 200 << 20
TIME_BOUND = 60.0


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    peak: int  # bytes of resident memory at the process's peak
    seconds: float


def run(home: Path, *args: str) -> Run:
    """The CLI in a child process; its own peak RSS from wait4 (not the test's)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlgitfs_cli.main", "--home", str(home), "-q", *args],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            code,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage.ru_maxrss * 1024,
            time.monotonic() - t0,
        )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> int:
    """Peak memory of an idle command (the interpreter and mlgitfs's imports)."""
    return run(tmp_path_factory.mktemp("idle") / "store", "repos").peak


class Checker:
    def __init__(self, home: Path, baseline: int | None = None) -> None:
        self.home = home
        self.baseline = run(home, "repos").peak if baseline is None else baseline

    def __call__(self, *args: str, codes: tuple[int, ...] = (0,)) -> Run:
        r = run(self.home, *args)
        what = f"mlgitfs {' '.join(args)}"
        assert r.code in codes, f"{what}: exit {r.code}, expected {codes}\n{r.stderr}"
        assert "Traceback" not in r.stderr, f"{what}: {r.stderr}"
        if r.code:
            assert "mlgitfs: error: " in r.stderr or r.code == 1, r.stderr
        assert r.peak - self.baseline < MEMORY_BOUND, f"{what}: peak {r.peak >> 20} MiB"
        assert r.seconds < TIME_BOUND, f"{what}: {r.seconds:.1f} s"
        return r


@pytest.fixture
def published(tmp_path: Path) -> Iterator[tuple[Path, bytes, list[hostile.TreeEntry]]]:
    t = hostile.transport(tmp_path / "remote")
    _, cid, base = hostile.publish_base(t)
    yield tmp_path / "remote", cid, base
    t.close()


def _setup(
    tmp_path: Path, case: Case, remote: Path, cid: bytes, base: list[hostile.TreeEntry]
) -> tuple[Path, hostile.Builder]:
    """A clone of the honest base, then the case's commit fetched and pulled (in-process)."""
    home = tmp_path / "store"
    api.clone(home, remote.as_uri(), "ds")
    t = hostile.transport(remote)
    b = hostile.publish_case(t, case, cid, base)
    t.close()
    api.fetch(home, "ds")
    api.pull(home, "ds")
    if case.name == "deep-tree":
        # as if every level had been read before: fetching 4,200 levels one round trip
        # (and one LMDB commit) each costs 15-45 s; the slow CLI case does it for real
        store = api.open_store(home)
        with store.env.write() as txn:
            for oid, codec, stored, raw_len in b.meta:
                raw = bytes(compress.decompress(codec, stored, raw_len, "seed"))
                db.put_object(txn, ObjectId(oid), raw)
    return home, b


def _nothing_bad_kept(home: Path, b: hostile.Builder) -> None:
    store = api.open_store(home)
    for oid in b.bad_objects:
        assert not store.has_object(ObjectId(oid)), short_hex(oid)
    for cid in b.bad_chunks:
        assert not store.chunk_is_local(ChunkId(cid)), short_hex(cid)


def _fails(fn: Callable[[], object], fails: bool, *errors: type[MlgitError]) -> None:
    if not fails:
        fn()
        return
    with pytest.raises(errors or (CorruptObject,)) as exc:
        fn()
    assert str(exc.value)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_object_through_every_reader(
    case: Case, tmp_path: Path, published: tuple[Path, bytes, list[hostile.TreeEntry]]
) -> None:
    """Every reader gives the same clear error for the same lying object; the rest of the
    version reads; fsck blames exactly the lying entries; nothing that failed is cached."""
    remote, cid, base = published
    home, b = _setup(tmp_path, case, remote, cid, base)
    try:
        victim = "bad/" + case.victim.decode()
        deep = case.name == "deep-tree"
        if case.read_fails:
            _fails(lambda: b"".join(api.cat(home, f"ds:{victim}")), True)
        _fails(lambda: list(api.ls(home, "ds:bad")), case.list_fails)
        _fails(lambda: list(api.ls(home, "ds", recursive=True)), case.list_fails or deep)
        out = tmp_path / "out"
        # a deep tree stops at the OS's path limit (DestinationError) or the walk's bound
        _fails(lambda: api.export(home, "ds", out), True, CorruptObject, DestinationError)
        assert not out.exists()  # nothing half-made left behind, however deep
        _fails(lambda: api.diff(home, "ds@main~1", "ds@main"), case.diff_fails)
        report = api.fsck(home, check_remote=True)
        assert report.damage
        paths = [d.path.split(":", 1)[1] for d in report.damage]
        assert all(p.startswith("bad") for p in paths), report.damage
        if case.name == "shared-chunk-size-lie":  # the honest sharer is not blamed
            assert paths == ["bad/f"]
        assert b"".join(api.cat(home, "ds:good.txt")) == GOOD
        assert b"".join(api.cat(home, "ds:big.bin")) == b"".join(BIG)
        _nothing_bad_kept(home, b)
    finally:
        api.close_store(home)
        _remove_deep(tmp_path / "out")


def _remove_deep(path: Path) -> None:
    """rm -rf: a deep tree's export leaves ~2,000 nested directories, more than the
    recursive shutil.rmtree of pytest's temporary-directory cleanup can remove."""
    subprocess.run(["rm", "-rf", str(path)], check=True)


# Cases whose lie could cost memory or time: the CLI in a child process, its peak measured.
MEMORY_CASES = [
    pytest.param(c, marks=pytest.mark.slow) if c.name == "deep-tree" else c  # 20 s
    for c in CASES
    if c.name
    in ("zstd-bomb-declared", "zstd-bomb-undeclared", "tree-zstd-bomb", "tidx-count-huge",
        "deep-tree")
]  # fmt: skip


@pytest.mark.parametrize("case", MEMORY_CASES, ids=lambda c: getattr(c, "name", ""))
def test_hostile_object_bounded_memory_and_time(
    case: Case,
    tmp_path: Path,
    published: tuple[Path, bytes, list[hostile.TreeEntry]],
    baseline: int,
) -> None:
    """The readers that meet the lie, as the CLI in a child process: peak memory (wait4)
    under MEMORY_BOUND over an idle command's, within TIME_BOUND."""
    remote, cid, base = published
    home, b = _setup(tmp_path, case, remote, cid, base)
    api.close_store(home)
    check = Checker(home, baseline)
    if case.read_fails:
        r = check("cat", f"ds:bad/{case.victim.decode()}", codes=(7,))
        assert "corrupt object" in r.stderr
    deep = case.name == "deep-tree"
    if case.list_fails or deep:
        check("ls", "-R", "ds", codes=(7,))
    check("export", "ds", str(tmp_path / "out"), codes=(25, 7) if deep else (7,))
    assert not (tmp_path / "out").exists()
    check("fsck", "--remote", codes=(1,))
    _remove_deep(tmp_path / "out")
    _nothing_bad_kept(home, b)
    api.close_store(home)


_MOUNT_DEFAULT = (
    "zstd-bomb-declared",
    "tree-zstd-bomb",
    "tidx-count-low",
    "manifest-size-lie",
    "file-size-lie",
)
MOUNT_CASES = [
    c if c.name in _MOUNT_DEFAULT else pytest.param(c, marks=pytest.mark.slow)
    for c in CASES
    if c.name != "deep-tree"
]


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[list[tuple[Path, Path]]]:
    made: list[tuple[Path, Path]] = []
    yield made
    for home, mp in made:
        for rec in registry.list_mounts(home / "mounts"):
            if rec.mountpoint == str(mp):
                stop_pid(rec.pid)
        detach(mp)


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


@pytest.mark.parametrize("case", MOUNT_CASES, ids=lambda c: getattr(c, "name", ""))
def test_hostile_object_in_a_mount(
    case: Case,
    tmp_path: Path,
    published: tuple[Path, bytes, list[hostile.TreeEntry]],
    mounted: list[tuple[Path, Path]],
) -> None:
    remote, cid, base = published
    home, b = _setup(tmp_path, case, remote, cid, base)
    api.close_store(home)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounted.append((home, mp))
    proc = subprocess.run(
        [MLGITFS, "--home", str(home), "mount", "ds@main", str(mp)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (rec,) = registry.list_mounts(home / "mounts")
    start = _status_kb(rec.pid, "VmRSS") << 10
    t0 = time.monotonic()
    victim = mp / "bad" / case.victim.decode()
    if case.list_fails:
        with pytest.raises(OSError) as exc:
            os.listdir(mp / "bad")
        assert exc.value.errno == errno.EIO
    else:
        assert case.victim.decode() in os.listdir(mp / "bad")
        victim.stat()
    if case.read_fails:
        with pytest.raises(OSError) as exc:
            victim.read_bytes()
        assert exc.value.errno == errno.EIO
    assert time.monotonic() - t0 < TIME_BOUND
    # only that file or directory: the rest of the version reads
    assert (mp / "good.txt").read_bytes() == GOOD
    assert (mp / "big.bin").read_bytes() == b"".join(BIG)
    peak = _status_kb(rec.pid, "VmHWM") << 10
    assert peak - start < MEMORY_BOUND, f"daemon peak {peak >> 20} MiB, start {start >> 20}"
    _nothing_bad_kept(home, b)
    api.close_store(home)


# --- caches: nothing unverified is kept ------------------------------------------------


def _lie_in_chunk_index(t: RemoteTransport) -> tuple[str, bytes]:
    """Swap the ids of the chunk index's first two entries (offsets stay contiguous, the
    trailer is recomputed: the index passes every check of its own); (key, the true bytes)."""
    (idx_key,) = [k for k in t.list("packs/") if k.endswith(".idx")]
    pack = packs.parse_index_key(packs.CHUNKS, idx_key)
    assert pack is not None
    good = t.get(idx_key)
    index = packs.decode_index(packs.CHUNKS, pack, good)
    e = list(index.entries)
    e[0], e[1] = (
        packs.PackEntry(e[1].id, e[0].offset, e[0].length, e[0].raw_len, e[0].codec),
        packs.PackEntry(e[0].id, e[1].offset, e[1].length, e[1].raw_len, e[1].codec),
    )
    t.put(idx_key, packs.PackIndex(index.kind, index.pack, index.size, tuple(e)).encode())
    return idx_key, good


def test_lying_pack_index_is_forgotten_and_a_repair_works_at_once(tmp_path: Path) -> None:
    """An index with a valid trailer whose entries name the wrong ranges: every read of it
    fails, and once the remote is repaired the same store reads (no remote re-add)."""
    remote = tmp_path / "remote"
    t = hostile.transport(remote)
    _, cid, base = hostile.publish_base(t)
    home = tmp_path / "store"
    check = Checker(home)
    check("clone", remote.as_uri(), "ds")
    idx_key, good = _lie_in_chunk_index(t)
    check("cat", "ds:good.txt", codes=(7,))
    check("cat", "ds:big.bin", codes=(7,))
    t.put(idx_key, good)  # repaired
    assert run(home, "cat", "ds:good.txt").stdout.encode() == GOOD
    check("fsck", "--remote")
    t.close()


def test_damaged_locator_index_falls_back(tmp_path: Path) -> None:
    """One flipped byte in a .lidx: clone and reads go through the chunk indexes instead."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(100_000))
    (src / "b.txt").write_bytes(b"b" * 1000)
    home = tmp_path / "store"
    check = Checker(home)
    check("init", "ds", "--kind", "dataset", "--mutability", "flexible")
    check("import", "ds", str(src), "-m", "v1")
    remote = tmp_path / "remote"
    check("remote", "add", "origin", remote.as_uri())
    check("push", "ds")
    t = hostile.transport(remote)
    (lidx,) = [k for k in t.list("meta/") if k.endswith(".lidx")]
    data = bytearray(t.get(lidx))
    data[len(data) // 2] ^= 0xFF
    t.put(lidx, bytes(data))
    home2 = tmp_path / "clone"
    check2 = Checker(home2)
    r = check2("clone", remote.as_uri(), "ds")
    assert "Traceback" not in r.stderr
    assert run(home2, "cat", "ds:b.txt").stdout.encode() == b"b" * 1000
    check2("export", "ds", str(tmp_path / "out"))
    assert (tmp_path / "out" / "a.bin").read_bytes() == (src / "a.bin").read_bytes()
    check2("fsck", "--remote")
    t.close()


@pytest.mark.parametrize("key", ["ref", "config", "repo", "index"])
def test_oversized_remote_files_are_refused_unread(tmp_path: Path, key: str) -> None:
    """A ref, mlgitfs.toml, repo record or index far larger than mlgitfs writes is refused
    before it is read: the clone fails clearly, its memory stays small."""
    remote = tmp_path / "remote"
    t = hostile.transport(remote)
    hostile.publish_base(t)
    huge = b"0" * (packs.INDEX_CAP + 1)
    target = {
        "ref": packs.ref_key("ds", "heads/main"),
        "config": packs.CONFIG_KEY,
        "repo": packs.repo_key("ds"),
        "index": next(k for k in t.list("meta/") if k.endswith(".idx")),
    }[key]
    if key == "index":
        (remote / target).write_bytes(huge * 2)
    else:
        (remote / target).write_bytes(huge)
    check = Checker(tmp_path / "store")
    r = check("clone", remote.as_uri(), "ds", codes=(7, 13))
    assert "larger than" in r.stderr or "not in the store" in r.stderr, r.stderr
    after = run(check.home, "repos", "--json")  # no repo (or no store at all) was made
    assert after.code == 24 or after.stdout.strip() == "[]", after
    t.close()


# --- SeaweedFS: the same checks over S3 (ranged GETs, capped reads) ---------------------

S3_CASES = [c for c in CASES if c.name in ("zstd-bomb-declared", "tidx-count-low", "file-size-lie")]


@pytest.mark.s3
@pytest.mark.parametrize("case", S3_CASES, ids=lambda c: c.name)
def test_hostile_object_on_s3(case: Case, tmp_path: Path, s3_server: S3Server) -> None:
    url, ep = f"s3://{s3_server.new_bucket()}/h", s3_server.endpoint_url
    t = open_transport(url, ep)
    _, cid, base = hostile.publish_base(t)
    home = tmp_path / "store"
    api.clone(home, url, "ds", endpoint_url=ep)
    b = hostile.publish_case(t, case, cid, base)
    api.pull(home, "ds")
    try:
        victim = "ds:bad/" + case.victim.decode()
        _fails(lambda: b"".join(api.cat(home, victim)), True)
        _fails(lambda: api.export(home, "ds", tmp_path / "out"), True)
        assert not (tmp_path / "out").exists()
        assert api.fsck(home, check_remote=True).damage
        assert b"".join(api.cat(home, "ds:big.bin")) == b"".join(BIG)
        _nothing_bad_kept(home, b)
    finally:
        api.close_store(home)
        t.close()


@pytest.mark.s3
def test_lying_index_and_oversized_ref_on_s3(tmp_path: Path, s3_server: S3Server) -> None:
    url, ep = f"s3://{s3_server.new_bucket()}/h", s3_server.endpoint_url
    t = open_transport(url, ep)
    _, cid, _ = hostile.publish_base(t)
    home = tmp_path / "store"
    api.clone(home, url, "ds", endpoint_url=ep)
    idx_key, good = _lie_in_chunk_index(t)
    try:
        _fails(lambda: b"".join(api.cat(home, "ds:good.txt")), True)
        t.put(idx_key, good)  # repaired: read at once, the remote neither removed nor re-added
        assert b"".join(api.cat(home, "ds:good.txt")) == GOOD
        # a ref far larger than a commit id is refused unread (a ranged GET of the cap)
        t.put(packs.ref_key("ds", "heads/main"), b"0" * (1 << 20))
        with pytest.raises(CorruptObject, match="larger than"):
            api.fetch(home, "ds")
        assert api.fsck(home).clean
    finally:
        api.close_store(home)
        t.close()


# --- a legitimate deep tree ---------------------------------------------------------------

LEGIT_DEPTH = 1900  # as deep as a path under the test's directory fits in PATH_MAX


def _deep_source(root: Path, content: bytes) -> None:
    root.mkdir(exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(LEGIT_DEPTH):
            with contextlib.suppress(FileExistsError):
                os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        out = os.open("f", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
        os.write(out, content)
        os.close(out)
    finally:
        os.close(fd)


def test_legitimate_deep_tree_imports_mounts_and_exports(
    tmp_path: Path, mounted: list[tuple[Path, Path]]
) -> None:
    """1,900 levels (past Python's recursion limit; the 700-level import hit
    MDB_READERS_FULL): import, ls -R, diff, export, fsck and a mount all see every level."""
    src, home = tmp_path / "s", tmp_path / "store"
    try:
        _run_deep(src, home, tmp_path, mounted)
    finally:  # pytest's own (recursive) cleanup of temporary directories cannot remove them
        _remove_deep(tmp_path / "out")
        _remove_deep(src)


def _run_deep(src: Path, home: Path, tmp_path: Path, mounted: list[tuple[Path, Path]]) -> None:
    _deep_source(src, b"deep")
    try:
        api.init(home, "ds", "dataset", "flexible")
        api.import_dir(home, "ds", src, "v1")
        listed = list(api.ls(home, "ds", recursive=True))
        assert len(listed) == LEGIT_DEPTH + 1 and listed[-1].path.endswith("/d/f")
        _deep_source(src, b"deeper")
        api.import_dir(home, "ds", src, "v2", unlock=["*"])  # flexible: d/.../f changes
        (change,) = api.diff(home, "ds@main~1", "ds@main").items
        assert change.path == listed[-1].path
        api.export(home, "ds", tmp_path / "out")
        found = subprocess.run(
            ["find", str(tmp_path / "out"), "-name", "f"], capture_output=True, check=True
        )
        assert found.stdout.count(b"\n") == 1
        assert api.fsck(home).clean
    finally:
        api.close_store(home)
    mp = tmp_path / "mnt"
    mp.mkdir()
    mounted.append((home, mp))
    subprocess.run(
        [MLGITFS, "--home", str(home), "mount", "ds@main", str(mp), "--read-only"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    cat = subprocess.run(
        ["find", str(mp), "-name", "f", "-exec", "cat", "{}", ";"], capture_output=True
    )
    assert cat.returncode == 0 and cat.stdout == b"deeper", cat.stderr
