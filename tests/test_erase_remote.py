"""Erase in a store with a remote (issue 16 item 5): the remote's packs still hold the erased
bytes, and a read of the erased file must not fetch them back (that would silently undo the
erase). Against file:// and SeaweedFS: push, erase locally, read through the CLI and a
read-only mount -> FileErased (exit 35; EIO with the erasure in the daemon log), and no file
of the local store holds the marker afterwards; a file not erased still reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.meta import erasures
from mlgitfs.store.facade import Store
from tests.conftest import Cli, write_tree
from tests.test_cli_refs import _id
from tests.test_erase import _holding, _secret
from tests.test_sync import Remote, remote
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter", "remote"]


def _daemon_logs(home: Path) -> str:
    return "\n".join(p.read_text() for p in (home / "mounts").rglob("*.log"))


def test_erased_file_is_not_fetched_back_from_a_remote(
    home: Path, cli: Cli, tmp_path: Path, remote: Remote, mounter: Mounter
) -> None:
    small_m, big_m = b"MARKER-SMALL-3b9e1d", b"MARKER-BIG-a4c27f"
    src = write_tree(tmp_path / "src", {"secret.csv": _secret(small_m, 120_000),
                                        "big.bin": _secret(big_m, 5 << 20),
                                        "notes.txt": "fine\n"})  # fmt: skip
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("push", "ds")
    head = _id(cli, "ds")
    cli("erase", "ds", "secret.csv", "big.bin", "-m", "request 7", "--yes")
    api.close_store(home)
    assert _holding(home, small_m) == [] and _holding(home, big_m) == []
    if remote.url.startswith("file:"):  # the remote keeps them: a remote erase is not built
        assert _holding(Path(remote.url.removeprefix("file://")), small_m)
    store = Store.open(home)
    with store.env.read() as txn:
        assert len(erasures.erased_chunk_ids(txn)) >= 3  # secret.csv's chunk, big.bin's chunks
    api.close_store(home)

    for path in ("secret.csv", "big.bin"):
        err = cli("cat", f"ds:{path}", code=35).stderr
        assert f"ds@{head[:12]}:{path}" in err and "erasure 1" in err and "request 7" in err
    assert "erasure 1" in cli("export", "ds", str(tmp_path / "ex"), code=35).stderr
    assert cli("cat", "ds:notes.txt").stdout == "fine\n"
    cli("prefetch", "ds")  # the erased chunks are not brought back ahead either
    api.close_store(home)
    assert _holding(home, small_m) == [] and _holding(home, big_m) == []

    if fuse_skip_reason() is None:
        mp = mounter(f"ds@{head}", "ro")
        assert (mp / "notes.txt").read_text() == "fine\n"
        for path in ("secret.csv", "big.bin"):
            with pytest.raises(OSError) as caught:
                (mp / path).read_bytes()
            assert caught.value.errno == 5  # EIO
        mlgitfs(home, "unmount", str(mp))
        logs = _daemon_logs(home)
        assert "erasure 1" in logs and "big.bin" in logs and "secret.csv" in logs
        assert _holding(home, small_m) == [] and _holding(home, big_m) == []
    report = api.fsck(home)
    api.close_store(home)
    assert report.clean, report.damage
    assert report.erased == 2
