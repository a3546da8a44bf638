"""Real mounts of real versions, read by real programs (sha256sum, find, du, tar, ls, Python)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.daemon import registry
from tests.conftest import set_mtimes, write_tree
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter"]  # a fixture

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
OLD = 1_650_000_000_000_000_000


@pytest.fixture
def dataset(tmp_path: Path, home: Path) -> Path:
    files: dict[str, bytes | str] = {
        f"train/{c}/{i:03d}.jpg": os.urandom(1000 + 137 * i)
        for c in ("cat", "dog")
        for i in range(40)
    }
    files.update(
        {
            "big.bin": os.urandom(5 << 20) + bytes(3 << 20),
            "empty": b"",
            "labels.csv": "".join(f"{i},{i % 2}\n" for i in range(1000)),
            "latest": "->labels.csv",
            "nested/deeper/x.txt": "x",
            "emptydir/": b"",
        }
    )
    src = write_tree(tmp_path / "src", files)
    (src / "train/cat/000.jpg").chmod(0o600)
    set_mtimes(src, OLD)
    api.init(home, "ds", "dataset", "mutable")  # test_two_versions_at_once changes labels.csv
    api.import_dir(home, "ds", src, "v1")
    api.tag_create(home, "ds@v1")
    return src


def sha_tree(root: Path) -> dict[str, str]:
    out = subprocess.run(
        f"cd {root} && find . -type f -print0 | sort -z | xargs -0 sha256sum",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(reversed(line.split("  ", 1)) for line in out.splitlines())  # type: ignore[misc]


def test_every_byte_and_tool_agree(dataset: Path, mounter: Mounter) -> None:
    mp = mounter("ds@v1")
    assert sha_tree(mp) == sha_tree(dataset)

    def run(cmd: str, root: Path) -> str:
        return subprocess.run(
            f"cd {root} && {cmd}", shell=True, capture_output=True, text=True, check=True
        ).stdout

    assert run("find . | sort", mp) == run("find . | sort", dataset)
    assert run("find . -type f -printf '%P %s %T@\\n' | sort", mp) == run(
        "find . -type f -printf '%P %s %T@\\n' | sort", dataset
    )
    assert run("du -ab --apparent-size . | sort -k2", mp).count("\n") == run(
        "du -ab --apparent-size . | sort -k2", dataset
    ).count("\n")
    tar_mount = run("tar cf - --sort=name --owner=0 --group=0 --mode=a-w . | tar tvf - ", mp)
    tar_src = run("tar cf - --sort=name --owner=0 --group=0 --mode=a-w . | tar tvf - ", dataset)
    strip = lambda s: sorted(" ".join(line.split()[2:]) for line in s.splitlines())  # noqa: E731
    assert strip(tar_mount) == strip(tar_src)
    ls = run("ls -lR --time-style=+%s .", mp)
    assert "latest -> labels.csv" in ls and "-r--------" in ls  # 0o600 served without write bits
    assert os.readlink(mp / "latest") == "labels.csv"
    assert (mp / "empty").read_bytes() == b""
    assert os.listdir(mp / "emptydir") == []
    st = os.statvfs(mp)
    assert st.f_namemax == 255 and st.f_blocks > 0
    assert (mp / "big.bin").stat().st_ino == (mp / "big.bin").stat().st_ino


def test_parallel_readers_and_ranges(dataset: Path, mounter: Mounter) -> None:
    mp = mounter("ds@v1")
    want = (dataset / "big.bin").read_bytes()

    def reader(seed: int) -> bool:
        with open(mp / "big.bin", "rb") as f:
            if seed % 2:
                return f.read() == want
            ok = True
            for off in range(seed * 999, len(want), 700_001):
                f.seek(off)
                ok &= f.read(12345) == want[off : off + 12345]
            return ok

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(reader, range(4)))
    procs = [
        subprocess.Popen(["sha256sum", str(mp / "big.bin")], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    sums = {p.communicate(timeout=60)[0].split()[0] for p in procs}
    assert sums == {hashlib.sha256(want).hexdigest()}


def test_two_versions_at_once(dataset: Path, home: Path, mounter: Mounter) -> None:
    (dataset / "labels.csv").write_text("changed\n")
    (dataset / "train/dog/000.jpg").unlink()
    api.import_dir(home, "ds", dataset, "v2")
    old, new = mounter("ds@v1", "old"), mounter("ds@main", "new")
    assert (old / "labels.csv").read_text().startswith("0,0\n")
    assert (new / "labels.csv").read_text() == "changed\n"
    assert (old / "train/dog/000.jpg").exists() and not (new / "train/dog/000.jpg").exists()
    live = {m.mountpoint: m for m in api.mounts(home)}
    assert live[str(old)].revspec == "ds@v1" and live[str(new)].revspec == "ds@main"
    fsnames = {m.source for m in registry.kernel_mounts() if m.mountpoint in live}
    assert fsnames == {"mlgitfs:ds@v1", "mlgitfs:ds@main"}


def test_mutations_get_erofs(dataset: Path, mounter: Mounter) -> None:
    mp = mounter("ds@v1")
    attempts: list[Callable[[], object]] = [
        lambda: os.open(mp / "labels.csv", os.O_RDWR),
        lambda: os.open(mp / "new.txt", os.O_WRONLY | os.O_CREAT),
        lambda: os.truncate(mp / "labels.csv", 0),
        lambda: os.unlink(mp / "labels.csv"),
        lambda: os.rename(mp / "labels.csv", mp / "x.csv"),
        lambda: os.mkdir(mp / "d"),
        lambda: os.rmdir(mp / "emptydir"),
        lambda: os.symlink("x", mp / "l2"),
        lambda: os.link(mp / "labels.csv", mp / "l3"),
        lambda: os.chmod(mp / "labels.csv", 0o777),
        lambda: os.chown(mp / "labels.csv", 1, 1),
        lambda: os.utime(mp / "labels.csv", (1, 1)),
        lambda: os.setxattr(mp / "labels.csv", "user.x", b"1"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno == errno.EROFS, attempt


def test_corrupt_chunk_gives_eio_for_that_file_only(
    dataset: Path, home: Path, mounter: Mounter
) -> None:
    store = api.open_store(home)
    from mlgitfs.repo.refs import resolve
    from mlgitfs.repo.trees import file_chunks

    entry = resolve(store, "ds@v1:labels.csv").entry
    assert entry is not None
    [ref] = file_chunks(store, entry)
    with store.env.read() as txn:
        loc = store.chunks.location(txn, ref.id)
    assert loc is not None
    seg = store.chunks.segment_path(loc.segment)
    with open(seg, "r+b") as f:
        f.seek(loc.offset + 3)
        good = f.read(1)
        f.seek(loc.offset + 3)
        f.write(bytes([good[0] ^ 0xFF]))
    try:
        mp = mounter("ds@v1")
        with pytest.raises(OSError) as info:
            (mp / "labels.csv").read_bytes()
        assert info.value.errno == errno.EIO
        assert (mp / "big.bin").read_bytes() == (dataset / "big.bin").read_bytes()
        assert (mp / "nested/deeper/x.txt").read_text() == "x"
        log = (home / "mounts" / "daemon.log").read_text()
        assert ref.id.hex()[:12] in log and "labels.csv" in log
    finally:
        with open(seg, "r+b") as f:
            f.seek(loc.offset + 3)
            f.write(good)


def test_killed_daemon_gives_enotconn_then_remount(
    dataset: Path, home: Path, mounter: Mounter
) -> None:
    mp = mounter("ds@v1")
    [rec] = api.mounts(home)
    os.kill(rec.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while registry.pid_alive(rec.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # A request caught in flight while the kernel tears the connection down (the threads
    # of a killed process close the FUSE fd last) gets ECONNABORTED; any later one ENOTCONN.
    while True:
        with pytest.raises(OSError) as info:
            os.listdir(mp)
        if info.value.errno != errno.ECONNABORTED or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert info.value.errno == errno.ENOTCONN
    [dead] = api.mounts(home)  # listed as dead until unmounted
    assert dead.pid == rec.pid and not dead.alive
    mlgitfs(home, "unmount", str(mp))
    assert api.mounts(home) == []
    mounter("ds@v1")
    assert (mp / "labels.csv").read_text().startswith("0,0\n")


def test_unmount_while_a_file_is_open(dataset: Path, home: Path, mounter: Mounter) -> None:
    mp = mounter("ds@v1")
    f = open(mp / "big.bin", "rb")  # noqa: SIM115 - held open across the unmount
    try:
        busy = mlgitfs(home, "unmount", str(mp), check=False)
        assert busy.returncode == 11 and "busy" in busy.stderr
        assert f.read(10) == (dataset / "big.bin").read_bytes()[:10]
        mlgitfs(home, "unmount", "--lazy", str(mp))
        assert f.read(10) == (dataset / "big.bin").read_bytes()[10:20]
    finally:
        f.close()
    deadline = time.monotonic() + 10
    while api.mounts(home) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert registry.mount_at(str(mp)) is None


def test_mount_errors(dataset: Path, home: Path, tmp_path: Path) -> None:
    bad = mlgitfs(home, "mount", "ds@v1", str(tmp_path / "missing"), check=False)
    assert bad.returncode == 11 and "missing" in bad.stderr
    assert mlgitfs(home, "mount", "ds@nope", str(tmp_path), check=False).returncode == 4
    assert mlgitfs(home, "mount", "nope@v1", str(tmp_path), check=False).returncode == 3
    assert mlgitfs(home, "unmount", str(tmp_path), check=False).returncode == 11


def test_second_epoch_is_served_by_the_page_cache(
    dataset: Path, home: Path, mounter: Mounter
) -> None:
    from mlgitfs.daemon.fuse_ops import NO_OPEN

    mp = mounter("ds@v1")
    files = sorted(p for p in (mp / "train").rglob("*.jpg"))
    first = {p: p.read_bytes() for p in files}
    assert all(first[p] == (dataset / p.relative_to(mp)).read_bytes() for p in files)
    after_first = request_counts(home)
    # at most one read per file: files prefilled into the page cache ahead send none
    assert 0 < after_first["read"] <= len(files)
    assert {p: p.read_bytes() for p in files} == first
    counts = request_counts(home)
    assert counts["read"] == after_first["read"]  # the second pass sent no read
    assert counts.get("open", 0) == (1 if NO_OPEN else 2 * len(files))


def test_a_second_walk_sends_no_readdir(dataset: Path, home: Path, mounter: Mounter) -> None:
    from mlgitfs.daemon.fuse_ops import CACHE_DIR

    if not CACHE_DIR:
        pytest.skip("stock pyfuse3: opendir cannot ask the kernel to cache listings")
    mp = mounter("ds@v1")

    def walk() -> list[str]:
        out = subprocess.run(["find", str(mp), "-printf", "%P %s\n"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        return sorted(out.splitlines())

    first = walk()
    assert len(first) == sum(1 for _ in dataset.rglob("*")) + 1  # and the root
    after_first = request_counts(home)
    assert after_first["readdir"] > 0
    assert walk() == first
    assert request_counts(home)["readdir"] == after_first["readdir"]


def test_ioctls_get_enotty_and_the_mount_goes_on(dataset: Path, mounter: Mounter) -> None:
    """Every ioctl on a file (isatty's TCGETS above all, one per buffered open()) reaches the
    daemon, which has no ioctl handler: libfuse answers ENOSYS, the kernel turns that into
    ENOTTY ("not a terminal"); bursts of them from several threads leave the mount serving
    every read. Holds for the patched and the stock pyfuse3 (packaging/test-stock.sh)."""
    import fcntl
    import termios

    mp = mounter("ds@v1")
    files = sorted((mp / "train").rglob("*.jpg"))

    def burst(p: Path) -> bytes:
        with open(p, "rb", buffering=0) as f:
            for _ in range(40):
                with pytest.raises(OSError) as exc:
                    fcntl.ioctl(f.fileno(), termios.TCGETS, bytes(64))
                assert exc.value.errno == errno.ENOTTY
            assert not f.isatty()
            return f.read()

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(burst, files))
    assert got == [(dataset / p.relative_to(mp)).read_bytes() for p in files]
    with open(mp / "labels.csv", "rb") as f:  # buffered: isatty() on open
        assert f.read() == (dataset / "labels.csv").read_bytes()


def request_counts(home: Path) -> dict[str, int]:
    """The mount daemon's request counts so far (it logs them on SIGUSR1)."""
    [rec] = api.mounts(home)
    log = home / "mounts" / "daemon.log"
    before = log.read_text()
    os.kill(rec.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while log.read_text() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    counts: dict[str, int] = json.loads(
        log.read_text().rsplit("request counts: ", 1)[1].splitlines()[0]
    )
    return counts


def resident_bytes(path: Path) -> int:
    """Bytes of the file in the page cache, in whole pages (util-linux fincore)."""
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.split()[0])


def test_reading_one_small_file_pushes_its_directory(
    dataset: Path, home: Path, mounter: Mounter
) -> None:
    mp = mounter("ds@v1")
    names = sorted(os.listdir(mp / "train" / "dog"))  # the kernel learns the inodes
    assert len(names) > 2
    first = mp / "train" / "dog" / names[0]
    reads_before = request_counts(home).get("read", 0)
    assert first.read_bytes() == (dataset / "train" / "dog" / names[0]).read_bytes()
    others = [mp / "train" / "dog" / n for n in names[1:]]
    deadline = time.monotonic() + 20
    while request_counts(home).get("prefilled", 0) < len(others):
        assert time.monotonic() < deadline, "the directory's other files were not prefilled"
        time.sleep(0.05)
    assert request_counts(home)["read"] - reads_before <= 2  # the first file's own read(s)
    # The kernel may drop prefilled pages again at any time (this VM's DAMON pages out idle
    # page cache within seconds): only a file still whole in the page cache must not ask.
    assert any(resident_bytes(p) >= p.stat().st_size for p in others)
    reads, evicted = request_counts(home)["read"], 0
    for p in others:  # served from the page cache: no read reaches the daemon...
        evicted += resident_bytes(p) < p.stat().st_size  # ...unless reclaimed since
        assert p.read_bytes() == (dataset / p.relative_to(mp)).read_bytes()
    assert request_counts(home)["read"] - reads <= 2 * evicted


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping the kernel's inode cache needs root")
def test_inodes_the_kernel_forgets_are_let_go(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    files = {f"d{d:02d}/f{i:03d}.txt": f"{d}/{i}\n" for d in range(20) for i in range(150)}
    src = write_tree(tmp_path / "many", files)
    api.init(home, "many", "dataset", "strict")
    api.import_dir(home, "many", src, "v1")
    api.tag_create(home, "many@v1")
    mp = mounter("many@v1")
    walked = subprocess.run(["find", str(mp), "-type", "f", "-printf", "%i %P\n"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    numbers = dict(reversed(line.split(" ", 1)) for line in walked.splitlines())
    assert len(numbers) == len(files)
    assert os.statvfs(mp).f_files >= len(files)  # the nodes the daemon holds
    open(mp / "d03/f007.txt", "rb").close()
    pinned = os.open(mp / "d04/f008.txt", os.O_RDONLY)  # an open file stays held
    try:
        deadline = time.monotonic() + 30
        while os.statvfs(mp).f_files > 100:
            assert time.monotonic() < deadline, os.statvfs(mp).f_files
            Path("/proc/sys/vm/drop_caches").write_text("2\n")  # dentries and inodes
            time.sleep(0.2)
        assert os.read(pinned, 100) == b"4/8\n"
        # Looked up again: the same inode numbers and bytes as before the kernel forgot.
        again = subprocess.run(["find", str(mp), "-type", "f", "-printf", "%i %P\n"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert dict(reversed(line.split(" ", 1)) for line in again.splitlines()) == numbers
        assert (mp / "d19/f149.txt").read_text() == "19/149\n"
    finally:
        os.close(pinned)
