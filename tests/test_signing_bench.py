"""The signing bench (bench/signsynth.py, bench/cases/signing.py) at CI size: the two
histories it builds are the same commits, one signed as `write_commit` signs them, and a
push and a clone of the signed one carry and check every signature. Speed is measured in
bench/, not here."""

from __future__ import annotations

from pathlib import Path

from bench import signsynth
from mlgitfs import api
from mlgitfs.repo.history import walk_commits
from mlgitfs.repo.keyring import Keyring
from mlgitfs.repo.refs import resolve
from mlgitfs.repo.verify import trusted_keys, verify_commits
from tests.conftest import Cli

COMMITS = 40


def test_the_signing_bench_histories(tmp_path: Path) -> None:
    plain, signed = tmp_path / "plain", tmp_path / "signed"
    signsynth.build(plain, COMMITS, sign=False)
    signsynth.build(signed, COMMITS, sign=True)
    heads = [
        resolve(api.open_store(h), f"{signsynth.REPO}@main").commit_id for h in (plain, signed)
    ]
    assert heads[0] == heads[1]  # the same commits: only the signatures differ
    remote = (tmp_path / "remote").as_uri()
    Cli(signed)("remote", "add", "origin", remote)
    Cli(signed)("push", signsynth.REPO)
    clone = Cli(tmp_path / "clone")
    exported = Cli(signed)("key", "export").stdout
    clone("key", "import", "-", "--name", "bench", input=exported.encode())
    clone("clone", remote, signsynth.REPO)
    for home in (signed, clone.home):
        store = api.open_store(home)
        trusted = trusted_keys(Keyring(store.home))
        ids = [c for c, _ in walk_commits(store, [heads[1]])]
        verdicts = verify_commits(store, ids, trusted)
        assert len(verdicts) == COMMITS and all(v.first_error() is None for v in verdicts)
        assert api.fsck(home).clean
    store = api.open_store(plain)
    assert all(not v.signed for v in verify_commits(store, [heads[0]], {}))
    for home in (plain, signed, clone.home):
        api.close_store(home)
