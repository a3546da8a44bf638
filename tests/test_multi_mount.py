"""Several versions in one mount (issue 18 item 5), read by real programs through the CLI:
a repo's `@REF/` directories, sub-path mounts, repos side by side."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.daemon import registry
from tests.conftest import write_tree
from tests.test_mount import sha_tree
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter"]  # a fixture

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]


def _version(tmp_path: Path, home: Path, repo: str, n: int) -> str:
    """Import version `n` of `repo` (each differs from the last in a few files); its commit."""
    files: dict[str, bytes | str] = {
        f"train/{c}/{i:02d}.bin": os.urandom(300 + 41 * i) for c in ("a", "b") for i in range(12)
    }
    files |= {"labels.csv": "".join(f"{i},{(i + n) % 3}\n" for i in range(200)),
              "big.bin": os.urandom(3 << 20), f"only-v{n}.txt": f"v{n}"}  # fmt: skip
    src = write_tree(tmp_path / f"src-{repo}-{n}", files)
    return api.import_dir(home, repo, src, f"v{n}").commit.id


def _export(home: Path, revspec: str, dest: Path) -> dict[str, str]:
    api.export(home, revspec, dest)
    return sha_tree(dest)


@pytest.fixture
def versions(tmp_path: Path, home: Path) -> dict[str, str]:
    """Repo ds: tags v1 and v2, main one commit past v2 (no tag), a branch bob/relabel."""
    api.init(home, "ds", "dataset", "mutable")  # its versions change files in place
    out = {}
    for n in (1, 2, 3):
        out[f"v{n}"] = _version(tmp_path, home, "ds", n)
        if n < 3:
            api.tag_create(home, f"ds@v{n}")
    api.branch_create(home, "ds@bob/relabel", "@v1")
    return out


def _inodes(*roots: Path) -> list[str]:
    found = subprocess.run(["find", *map(str, roots), "-printf", "%i\n"], capture_output=True,
                           text=True, check=True)  # fmt: skip
    return found.stdout.split()


def test_three_versions_at_once(
    versions: dict[str, str], home: Path, mounter: Mounter, tmp_path: Path
) -> None:
    mp = mounter("ds")
    prefix = versions["v3"][:10]
    # ls shows branches and tags, not every commit; a nested branch name nests.
    assert sorted(os.listdir(mp)) == ["@bob", "@main", "@v1", "@v2"]
    assert os.listdir(mp / "@bob") == ["relabel"]
    for shown, spec in (("@v1", "ds@v1"), ("@v2", "ds@v2"), (f"@{prefix}", f"ds@{prefix}")):
        assert sha_tree(mp / shown) == _export(home, spec, tmp_path / f"out-{spec}"), shown
    assert sha_tree(mp / "@bob" / "relabel") == sha_tree(mp / "@v1")
    assert (mp / f"@{prefix}" / "only-v3.txt").read_text() == "v3"
    # Inode numbers never collide across versions (there are no hard links in a version).
    inos = _inodes(mp / "@v1", mp / "@v2", mp / f"@{prefix}", mp / "@bob" / "relabel")
    assert len(inos) > 4 * 30 and len(set(inos)) == len(inos)
    # Read-only, every version.
    with pytest.raises(OSError) as exc:
        (mp / "@v1" / "new").write_text("x")
    assert exc.value.errno == errno.EROFS


def test_missing_names_then_made_and_daemon_survives(
    versions: dict[str, str], home: Path, mounter: Mounter
) -> None:
    mp = mounter("ds")
    before = (mp / "@v1" / "labels.csv").read_bytes()
    for bad in ("@nope", "@abc", "nope", "@bob/x", "@v1x", "@" + "0" * 40, "@heads/v1"):
        with pytest.raises(FileNotFoundError):
            os.stat(mp / bad)
    with pytest.raises(OSError) as exc:
        os.stat(mp / ("@" + "x" * 300))
    assert exc.value.errno in (errno.ENOENT, errno.ENAMETOOLONG)
    # Made after the mount, and after a miss: the miss was not cached.
    api.tag_create(home, "ds@nope", "@v2")
    assert sha_tree(mp / "@nope") == sha_tree(mp / "@v2")
    assert "@nope" in os.listdir(mp)
    assert sorted(os.listdir(mp / "@tags")) == ["nope", "v1", "v2"]
    assert (mp / "@v1" / "labels.csv").read_bytes() == before  # the daemon still serves
    assert any(m.mountpoint == str(mp) and m.alive for m in api.mounts(home))


def test_sub_path_mounts(
    versions: dict[str, str], home: Path, mounter: Mounter, tmp_path: Path
) -> None:
    mp = mounter("ds@v2:train/a")
    assert sha_tree(mp) == _export(home, "ds@v2:train/a", tmp_path / "out")
    assert sorted(os.listdir(mp)) == sorted(os.listdir(tmp_path / "out"))
    # A branch's directory mounts read-only (an overlay covers a whole version).
    mpb = mounter("ds@main:train", "mnt-main")
    with pytest.raises(OSError) as exc:
        (mpb / "a" / "new").write_text("x")
    assert exc.value.errno == errno.EROFS
    rec = next(m for m in api.mounts(home) if m.mountpoint == str(mpb))
    assert rec.read_only and rec.revspec == "ds@main:train"
    # A file, or a path that is not there: a clear error, nothing mounted.
    bad = tmp_path / "bad"
    bad.mkdir()
    for spec, code, words in (("ds@v1:labels.csv", 2, "is a file"),
                              ("ds@v1:nope", 4, "nope")):  # fmt: skip
        proc = mlgitfs(home, "mount", spec, str(bad), check=False)
        assert proc.returncode == code and words in proc.stderr, proc.stderr
        assert registry.mount_at(str(bad)) is None


def test_repos_side_by_side(
    versions: dict[str, str], home: Path, mounter: Mounter, tmp_path: Path
) -> None:
    api.init(home, "labels", "labels", "strict")
    _version(tmp_path, home, "labels", 7)
    api.tag_create(home, "labels@v7")
    api.init(home, "models", "model", "strict")
    _version(tmp_path, home, "models", 1)
    mp = mounter(("ds@v2", "labels@v7", "models"))
    assert sorted(os.listdir(mp)) == ["ds", "labels", "models"]
    assert sha_tree(mp / "ds") == _export(home, "ds@v2", tmp_path / "o-ds")
    assert sha_tree(mp / "labels") == _export(home, "labels@v7", tmp_path / "o-labels")
    assert os.listdir(mp / "models") == ["@main"]  # a repo alone: its @REF directories
    assert sha_tree(mp / "models" / "@main") == _export(home, "models@main", tmp_path / "o-m")
    inos = _inodes(mp / "ds", mp / "labels", mp / "models")
    assert len(set(inos)) == len(inos)
    with pytest.raises(FileNotFoundError):
        os.stat(mp / "other")
    rec = next(m for m in api.mounts(home) if m.mountpoint == str(mp))
    assert rec.revspec == "ds@v2 labels@v7 models" and rec.read_only and rec.commit == ""
    shown = mlgitfs(home, "mounts").stdout
    assert f"{mp}\tds@v2 labels@v7 models\t-\tro\tpid " in shown, shown
    for repo in ("labels", "models"):  # each repo of the mount counts as mounted
        err = mlgitfs(home, "repos", "rm", repo, "--yes", "--force", check=False)
        assert err.returncode == 11 and "is mounted at" in err.stderr, err.stderr
    # A repo named twice, or a ref that is not there: refused, nothing mounted.
    bad = tmp_path / "bad"
    bad.mkdir()
    for specs, code in ((("ds@v1", "ds@v2"), 2), (("ds@v1", "labels@nope"), 4),
                        (("ds", "nosuch"), 3)):  # fmt: skip
        proc = mlgitfs(home, "mount", *specs, str(bad), check=False)
        assert proc.returncode == code, proc.stderr
        assert registry.mount_at(str(bad)) is None


def test_each_version_keeps_the_kernel_caches(
    versions: dict[str, str], home: Path, mounter: Mounter
) -> None:
    """A second pass over two versions sends no readdir and no read (cached listings and
    pages, keep_cache), and no open at all with the patched pyfuse3 (no open)."""
    from mlgitfs.daemon.fuse_ops import CACHE_DIR, NO_OPEN
    from tests.test_mount import request_counts

    mp = mounter("ds")
    roots = [mp / "@v1", mp / f"@{versions['v2'][:8]}"]

    def one_pass() -> dict[str, str]:
        listing = subprocess.run(["find", *map(str, roots), "-printf", "%p %s\n"],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
        return {**sha_tree(roots[0]), **{"v2/" + k: v for k, v in sha_tree(roots[1]).items()},
                "listing": listing}  # fmt: skip

    first = one_pass()
    after_first = request_counts(home)
    assert one_pass() == first
    counts = request_counts(home)
    assert counts["read"] == after_first["read"]
    assert counts.get("lookup", 0) == after_first.get("lookup", 0)
    if CACHE_DIR:
        assert counts["readdir"] == after_first["readdir"]
    if NO_OPEN:
        assert counts.get("open", 0) <= 1


def test_a_damaged_version_fails_alone(
    versions: dict[str, str], home: Path, mounter: Mounter
) -> None:
    """A chunk of v2 that fails its check: EIO for that file of that version; every other
    version, and versions opened afterwards, still read (the daemon serves on)."""
    from mlgitfs.repo.refs import resolve
    from mlgitfs.repo.trees import file_chunks

    store = api.open_store(home)
    entry = resolve(store, "ds@v2:labels.csv").entry
    assert entry is not None
    [ref] = file_chunks(store, entry)
    with store.env.read() as txn:
        loc = store.chunks.location(txn, ref.id)
    assert loc is not None
    seg = store.chunks.segment_path(loc.segment)
    api.close_store(home)
    with open(seg, "r+b") as f:
        f.seek(loc.offset + 3)
        good = f.read(1)
        f.seek(loc.offset + 3)
        f.write(bytes([good[0] ^ 0xFF]))
    try:
        mp = mounter("ds")
        with pytest.raises(OSError) as info:
            (mp / "@v2" / "labels.csv").read_bytes()
        assert info.value.errno == errno.EIO
        assert (mp / "@v2" / "only-v2.txt").read_text() == "v2"
        assert (mp / "@v1" / "only-v1.txt").read_text() == "v1"
        assert (mp / f"@{versions['v3'][:6]}" / "only-v3.txt").read_text() == "v3"
        assert ref.id.hex()[:12] in (home / "mounts" / "daemon.log").read_text()
    finally:
        with open(seg, "r+b") as f:
            f.seek(loc.offset + 3)
            f.write(good)
