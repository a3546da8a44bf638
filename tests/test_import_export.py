"""Import and export through the library: same bytes, modes, symlinks, mtimes; bad input refused."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.errors import ConflictError, SourceError, StoreFull, StoreNotFound, UnknownRepo
from mlgitfs.repo import filedata
from tests.conftest import set_mtimes, write_tree

OLD = 1_600_000_000_123_456_789


def snapshot(root: Path) -> dict[str, tuple[str, int, object, int]]:
    """Everything import must keep: kind, permission bits, content or target, mtime."""
    out: dict[str, tuple[str, int, object, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = ("link", 0, os.readlink(p), st_.st_mtime_ns)
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st_.st_mode), None, st_.st_mtime_ns)
            else:
                out[rel] = ("file", stat.S_IMODE(st_.st_mode), p.read_bytes(), st_.st_mtime_ns)
    return out


file_names = st.text(
    alphabet=st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))


@st.composite
def trees(draw: st.DrawFn) -> dict[str, bytes | str]:
    files: dict[str, bytes | str] = {}
    for _ in range(draw(st.integers(1, 8))):
        parts = draw(st.lists(file_names, min_size=1, max_size=3))
        path = "/".join(parts)
        taken = [k.rstrip("/") for k in files]
        if any(path == k or path.startswith(k + "/") or k.startswith(path + "/") for k in taken):
            continue
        kind = draw(st.sampled_from(["small", "empty", "big", "link", "dir"]))
        if kind == "small":
            files[path] = draw(st.binary(max_size=300))
        elif kind == "empty":
            files[path] = b""
        elif kind == "big":
            seed = draw(st.integers(0, 1000))
            files[path] = bytes((i * seed) % 251 for i in range(300_000)) + os.urandom(400_000)
        elif kind == "link":
            files[path] = "->" + draw(file_names)
        else:
            files[path + "/"] = b""
    return files


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=trees(), modes=st.lists(st.sampled_from([0o644, 0o600, 0o755, 0o444]), min_size=8))
def test_import_then_export_is_identity(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes | str], modes: list[int]
) -> None:
    base = tmp_path_factory.mktemp("roundtrip")
    src = write_tree(base / "src", files)
    regular = [p for p in sorted(src.rglob("*")) if p.is_file() and not p.is_symlink()]
    for p, mode in zip(regular, modes, strict=False):
        p.chmod(mode)
    set_mtimes(src, OLD)
    home = base / "store"
    api.init(home, "ds", "dataset", "mutable")
    api.import_dir(home, "ds", src, "v1")
    api.export(home, "ds", base / "out")
    assert snapshot(base / "out") == snapshot(src)
    assert api.fsck(home).clean


def test_reimport_reads_only_changed_files(tmp_path: Path, home: Path) -> None:
    src = write_tree(tmp_path / "src", {f"d{i % 5}/f{i}": os.urandom(2000) for i in range(200)})
    set_mtimes(src, OLD)
    api.init(home, "ds", "dataset", "mutable")
    first = api.import_dir(home, "ds", src, "v1")
    assert first.files == 200 and first.files_read == 200
    for i in (3, 50):
        p = src / f"d{i % 5}" / f"f{i}"
        p.write_bytes(b"changed")
        os.utime(p, ns=(OLD + 10**9, OLD + 10**9))
    second = api.import_dir(home, "ds", src, "v2")
    assert second.files_read == 2
    d = api.diff(home, "ds~1", "ds")
    assert sorted(i.path for i in d.items) == ["d0/f50", "d3/f3"]
    assert all(i.change == "modified" for i in d.items)
    third = api.import_dir(home, "ds", src, "v3 no change")
    assert third.files_read == 0 and not third.changed
    assert third.commit.id == second.commit.id  # like git: no empty commit
    forced = api.import_dir(home, "ds", src, "forced", allow_empty=True)
    assert forced.changed and forced.commit.parents == (second.commit.id,)
    assert forced.commit.tree == second.commit.tree


def _stat_cache(home: Path) -> dict[bytes, bytes]:
    with api.open_store(home).env.read() as txn:
        return dict(txn.scan("statcache"))


def test_stat_cache_follows_the_source(tmp_path: Path, home: Path) -> None:
    """Removed files leave the stat cache; a path too long for an LMDB key is re-read each time
    instead of failing the import; an old-layout cache (one key per path) is dropped."""
    deep = "/".join(["d" * 120] * 4)  # the stat cache key would exceed LMDB's 511 bytes
    src = write_tree(tmp_path / "src", {"a/x": b"1", "a/y": b"2", f"{deep}/z": b"3"})
    set_mtimes(src, OLD)
    api.init(home, "ds", "dataset", "mutable")
    with api.open_store(home).env.write() as txn:
        txn.put("statcache", os.fsencode(src / "a" / "x"), b"old layout")
    first = api.import_dir(home, "ds", src, "v1")
    assert first.files_read == 3
    cache = _stat_cache(home)
    assert sorted(k.rsplit(b"\0", 1)[1] for k in cache) == [b"x", b"y"]
    (src / "a" / "y").unlink()
    second = api.import_dir(home, "ds", src, "v2")
    assert second.files_read == 1  # only the file whose path cannot be a key
    assert sorted(k.rsplit(b"\0", 1)[1] for k in _stat_cache(home)) == [b"x"]
    assert b"".join(api.cat(home, f"ds:{deep}/z")) == b"3"
    assert api.fsck(home).clean


def test_large_file_not_in_page_cache(tmp_path: Path, home: Path) -> None:
    """A large file whose pages are not cached is mapped without populating it and read
    ahead on a helper thread: the same bytes come back."""
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.bin"
    data = os.urandom(12 << 20) + bytes(8 << 20)
    with open(big, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)  # clean pages: dropped
    fd = os.open(big, os.O_RDONLY)
    try:
        cached = filedata._looks_cached(fd, len(data))
    finally:
        os.close(fd)
    if cached:
        pytest.skip("this file system keeps the file in memory (tmpfs?)")
    api.init(home, "ds", "dataset", "mutable")
    api.import_dir(home, "ds", src, "v1")
    assert b"".join(api.cat(home, "ds:big.bin")) == data
    assert api.fsck(home).clean


def test_dedup_across_versions_and_repos(tmp_path: Path, home: Path) -> None:
    big = os.urandom(5 << 20)
    src = write_tree(tmp_path / "src", {"big.bin": big})
    api.init(home, "a", "dataset", "mutable")
    api.init(home, "b", "dataset", "mutable")
    r1 = api.import_dir(home, "a", src, "v1")
    r2 = api.import_dir(home, "b", src, "copy")
    assert r1.bytes_stored >= len(big) and r2.bytes_stored == 0
    # An insertion in the middle rewrites only the chunks around it (content-defined chunking).
    (src / "big.bin").write_bytes(big[: 2 << 20] + b"inserted line\n" + big[2 << 20 :])
    r3 = api.import_dir(home, "a", src, "insert")
    assert r3.bytes_stored < len(big) // 2


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_special_files_are_refused(tmp_path: Path, home: Path, kind: str) -> None:
    src = write_tree(tmp_path / "src", {"ok.txt": b"fine"})
    special = src / "sub" / "special"
    special.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(special)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(special))
    api.init(home, "ds", "dataset", "mutable")
    with pytest.raises(
        SourceError, match=f"sub/special: it is a {'FIFO' if kind == 'fifo' else 'socket'}"
    ):
        api.import_dir(home, "ds", src, "v1")
    assert api.branch_list(home, "ds") == []
    assert not list((home / "chunks").glob("*.seg"))


def test_symlinks_are_not_followed(tmp_path: Path, home: Path) -> None:
    outside = write_tree(tmp_path / "outside", {"secret": b"s"})
    src = write_tree(
        tmp_path / "src", {"a": b"x", "out": "->" + str(outside), "dangling": "->nope"}
    )
    api.init(home, "ds", "dataset", "mutable")
    api.import_dir(home, "ds", src, "v1")
    listing = {e.path: e for e in api.ls(home, "ds", recursive=True)}
    assert listing["out"].kind == "symlink" and listing["out"].id == str(outside)
    assert "out/secret" not in listing
    assert listing["dangling"].id == "nope"


def _without_dac_override() -> list[str]:
    """A command prefix that drops root's right to read any file, so chmod 0 bites."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv (util-linux) can read any file")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", caps, f"--inh-caps={caps}"]


def test_unreadable_file_stops_import_with_nothing_committed(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"a": b"x" * 1000, "b/secret": b"y" * 1000})
    (src / "b" / "secret").chmod(0)
    home = tmp_path / "store"
    api.init(home, "ds", "dataset", "mutable")
    api.import_dir(home, "ds", write_tree(tmp_path / "first", {"a": b"1"}), "v1")
    code = (
        "import sys; from pathlib import Path\n"
        "from mlgitfs import api; from mlgitfs.errors import SourceError, StoreFull\n"
        "try:\n api.import_dir(Path(sys.argv[1]),'ds',Path(sys.argv[2]),'m')\n"
        "except SourceError as e: print('ERR', e); sys.exit(9)\n"
    )
    proc = subprocess.run(
        [*_without_dac_override(), sys.executable, "-c", code, str(home), str(src)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 9, proc.stderr
    assert "b/secret" in proc.stdout and "Permission denied" in proc.stdout
    assert [c.message for c in api.log(home, "ds")] == ["v1"]
    assert len(list((home / "chunks").glob("*.seg"))) == 1
    assert api.fsck(home).clean


def test_import_into_missing_repo(tmp_path: Path, home: Path) -> None:
    src = write_tree(tmp_path / "src", {"a": b"x"})
    with pytest.raises(StoreNotFound):  # no store: import does not make one
        api.import_dir(home, "nope", src, "m")
    assert not home.exists()
    api.init(home, "ds", "dataset", "strict")
    with pytest.raises(UnknownRepo):
        api.import_dir(home, "nope", src, "m")


def test_store_full_changes_nothing(tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {f"f{i}": os.urandom(24) for i in range(15000)})
    home = tmp_path / "store"
    script = (
        "import sys; from pathlib import Path\n"
        "from mlgitfs import api; from mlgitfs.errors import SourceError, StoreFull\n"
        "h=Path(sys.argv[1])\n"
        "if sys.argv[3] == 'init': api.init(h,'ds','dataset','mutable'); sys.exit(0)\n"
        "try:\n api.import_dir(h,'ds',Path(sys.argv[2]),'m')\n"
        "except StoreFull as e: print('FULL', e); sys.exit(10)\n"
    )
    run = [sys.executable, "-c", script, str(home), str(src)]
    env = {**os.environ, "MLGITFS_MAP_SIZE": str(1 << 20)}
    assert subprocess.run([*run, "init"], env=env, timeout=60).returncode == 0
    proc = subprocess.run([*run, "import"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 10, proc.stdout + proc.stderr
    assert "is full; nothing was changed" in proc.stdout
    assert api.branch_list(home, "ds") == []
    assert api.fsck(home).clean
    assert StoreFull.exit_code == 10


def test_concurrent_branch_move_is_refused(tmp_path: Path, home: Path) -> None:
    from mlgitfs.meta import db
    from mlgitfs.repo.commits import CommitRequest
    from mlgitfs.repo.ingest import import_directory

    src = write_tree(tmp_path / "src", {"a": b"x"})
    api.init(home, "ds", "dataset", "mutable")
    api.import_dir(home, "ds", src, "v1")
    store = api.open_store(home)
    (src / "a").write_bytes(b"y")
    req = CommitRequest("ds", "main", "racing", {}, [])

    def racing_progress(files: int, nbytes: int) -> None:
        # Another writer moves the branch while this import runs.
        api.import_dir(home, "ds", write_tree(tmp_path / "other", {"o": b"o"}), "other")

    with pytest.raises(ConflictError, match="moved"):
        import_directory(store, req, src, racing_progress)
    assert [c.message for c in api.log(home, "ds")] == ["other", "v1"]
    with store.env.read() as txn:
        assert db.get_ref(txn, "ds", "heads/main") is not None
