"""Keys and signed history (issue 17 item 3): ed25519 round trips, the key ring, signed
commits and ref moves, statements travelling in packs, `mlgitfs verify`, and tampering
detected with a named error each while nothing changes."""

from __future__ import annotations

import json
import logging
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.errors import CorruptObject, UsageError
from mlgitfs.meta import db, statements
from mlgitfs.model import codec
from mlgitfs.model import statement as stm
from mlgitfs.model.ids import ObjectId, from_hex
from mlgitfs.model.signing import PublicKey, SigningKey, decode_public, key_id
from mlgitfs.repo import keyring, statementsync
from mlgitfs.store import packs
from mlgitfs.store.transports import open_transport
from tests.conftest import Cli, write_tree
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.s3server import S3Server

__all__ = ["mounter"]  # a fixture

# --- signing, statements ----------------------------------------------------------------------


def test_sign_verify_round_trip_and_text_forms() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"message")
    assert key.public.verify(sig, b"message")
    assert not key.public.verify(sig, b"messagf")
    assert not key.public.verify(sig[:-1] + bytes([sig[-1] ^ 1]), b"message")
    assert not SigningKey.generate().public.verify(sig, b"message")
    assert key.key_id == key_id(key.public.raw) and len(key.key_id) == 32
    text = key.public.encode("alice")
    pub, name = decode_public(text)
    assert (pub, name) == (key.public, "alice")
    assert "private" not in repr(key) and key.encode_private() not in repr(key)
    with pytest.raises(UsageError, match="not an mlgitfs public key"):
        decode_public("ssh-ed25519 AAAA")
    with pytest.raises(UsageError, match="32 bytes"):
        decode_public("mlgitfs-ed25519 AAAA")


def test_a_remembered_signature_vouches_only_for_its_own_key_and_message() -> None:
    # verify remembers what verified (a fetch, then the trust check, ask about the same
    # statement): the memo must never let anything else through
    key, other = SigningKey.generate(), SigningKey.generate()
    sig = key.sign(b"m" * 200)
    for _ in range(2):  # the second time from the memo
        assert key.public.verify(sig, b"m" * 200)
        assert not other.public.verify(sig, b"m" * 200)
        assert not key.public.verify(sig, b"m" * 199)
        assert not key.public.verify(sig, b"m" * 200 + sig[:1])
        assert not key.public.verify(sig[:-1] + bytes([sig[-1] ^ 1]), b"m" * 200)


def test_statements_attached_in_a_batch_are_logged_in_order(tmp_path: Path) -> None:
    api.init(tmp_path, "ds", "dataset", "mutable")
    store = api.open_store(tmp_path)
    key = SigningKey.generate()
    sts = [stm.sign(key, ObjectId(bytes([i]) * 32), "commit", codec.pack([i])) for i in range(5)]
    with store.env.write() as txn:
        statements.put(txn, sts[1])  # known already: not attached nor logged again
        items = [(s.subject, s.id, s.encode()) for s in sts]
        assert statements.attach_many(txn, items) == 4
        assert statements.attach_many(txn, items) == 0
    with store.env.read() as txn:
        logged = [(subject, sid) for _, subject, sid, _ in statements.since(txn, 0)]
        assert logged == [(s.subject, s.id) for s in (sts[1], sts[0], *sts[2:])]
        assert [list(statements.of_subject(txn, s.subject)) for s in sts] == [[s] for s in sts]
    with store.env.write() as txn:  # the counter went on past the batch
        assert db.next_counter(txn, "statements") == 6
    api.close_store(tmp_path)


def test_statement_encoding_and_what_the_signature_covers() -> None:
    key = SigningKey.generate()
    cid = ObjectId(bytes(range(32)))
    st = stm.sign(key, cid, "attestation", codec.pack(["check", "schema", True]))
    again = stm.decode(st.encode())
    assert again == st and again.id == st.id and st.signed_by(key.public)
    other = ObjectId(bytes(32))
    for changed in (
        stm.Statement(other, st.kind, st.body, st.signer, st.signature),  # moved
        stm.Statement(cid, "commit", st.body, st.signer, st.signature),  # another kind
        stm.Statement(cid, st.kind, codec.pack(["x"]), st.signer, st.signature),  # body
    ):
        assert not changed.signed_by(key.public)
    for bad in (b"\x93\x01\x02\x03", st.encode()[:-1], codec.pack(["stmt", 2])):
        with pytest.raises(CorruptObject):
            stm.decode(bad)


@settings(max_examples=50, deadline=None)
@given(
    kind=st.from_regex(r"[a-z][a-z0-9-]{0,31}", fullmatch=True),
    body=st.lists(
        st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20), st.binary(max_size=40))
    ),
    subject=st.binary(min_size=32, max_size=32),
    flip=st.integers(min_value=0),
)
def test_any_statement_round_trips_and_any_flipped_byte_breaks_it(
    kind: str, body: list[object], subject: bytes, flip: int
) -> None:
    key = SigningKey.from_seed(bytes(range(32)))
    signed = stm.sign(key, ObjectId(subject), kind, codec.pack(body))
    data = signed.encode()
    assert stm.decode(data) == signed and signed.signed_by(key.public)
    i = flip % len(data)
    altered = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
    try:
        other = stm.decode(altered)
    except CorruptObject:
        return  # no longer a statement at all
    assert not other.signed_by(key.public)


# --- the key ring -----------------------------------------------------------------------------


def test_key_ring_commands(cli: Cli, tmp_path: Path) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    made = json.loads(cli("key", "generate", "--name", "alice", "--json").stdout)
    assert made["own"] and made["signing"] and made["public"].startswith("mlgitfs-ed25519 ")
    private = cli.home / "keys" / "private" / "alice.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    secret = private.read_text().split()[1]
    listed = json.loads(cli("key", "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["alice"]
    exported = cli("key", "export").stdout
    assert exported.strip() == made["public"] and secret not in exported
    assert secret not in json.dumps(listed)
    cli("key", "generate", "--name", "alice", code=8)  # the name is taken
    cli("key", "generate", "--name", "bad/name", code=6)

    other = Cli(tmp_path / "bob")
    other("init", "x", "--kind", "dataset", "--mutability", "mutable")
    (tmp_path / "alice.pub").write_text(exported)
    other("key", "import", str(tmp_path / "alice.pub"), "--name", "alice")
    other("key", "import", "-", "--name", "alice", input=exported.encode())  # same: no change
    other("key", "import", "-", "--name", "al2", input=exported.encode(), code=8)
    other("key", "import", "-", "--name", "junk", input=b"not a key\n", code=2)
    theirs = json.loads(other("key", "list", "--json").stdout)
    assert [(k["name"], k["own"], k["key_id"]) for k in theirs] == [
        ("alice", False, made["key_id"])
    ]
    other("key", "export", code=3)  # bob has no key that signs
    other("key", "remove", "alice")
    other("key", "remove", "alice", code=3)
    assert json.loads(other("key", "list", "--json").stdout) == []
    api.close_store(other.home)


# --- signed commits ---------------------------------------------------------------------------


def _import(cli: Cli, tmp_path: Path, n: int, repo: str = "ds") -> str:
    src = write_tree(tmp_path / f"src{n}", {"labels.csv": f"id,label\n{n},x\n".encode()})
    cli("import", repo, str(src), "-m", f"v{n}")
    with api.open_store(cli.home).env.read() as txn:
        head = db.get_ref(txn, repo, "heads/main")
    assert head is not None
    return bytes(head).hex()


def test_commits_signed_when_the_user_has_a_key(cli: Cli, tmp_path: Path) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    _import(cli, tmp_path, 1)
    res = cli("verify", "ds@main", code=41)  # no key yet: unsigned
    assert "no author's signature" in res.stderr
    cli("key", "generate", "--name", "alice")
    _import(cli, tmp_path, 2)
    out = json.loads(cli("verify", "ds@main", "--json").stdout)
    assert out["ok"] and out["commits"][0]["signed"]
    assert [s["kind"] for s in out["commits"][0]["statements"]] == ["commit"]
    assert out["commits"][0]["statements"][0]["signer_name"] == "alice"
    res = cli("verify", "ds@main", "--all-history", "--json", code=41)  # v1 is unsigned
    assert [c["error"] for c in json.loads(res.stdout)["commits"]] == [None, "Unsigned"]
    cli("config", "sign-commits", "false")
    _import(cli, tmp_path, 3)
    cli("verify", "ds@main", code=41)
    cli("config", "sign-commits", "maybe", code=2)
    cli("config", "sign-commits", "true")
    cli("key", "remove", "alice", input=b"n\n", code=1)  # asked, declined: kept
    cli("key", "remove", "alice", "--yes")
    src = write_tree(tmp_path / "src4", {"labels.csv": b"id,label\n4,x\n"})
    res = cli("import", "ds", str(src), "-m", "v4", code=2)  # true and no key: refused
    assert "sign-commits is true" in res.stderr
    remote = tmp_path / "remote"
    cli("remote", "add", "origin", remote.as_uri())
    res = cli("push", "ds", code=2)  # its ref move could not be signed: nothing sent
    assert "sign-commits is true" in res.stderr
    assert not (remote / "refs").exists() and not (remote / "packs").exists()


# --- push, clone, fetch -----------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    url: str
    endpoint: str | None

    def args(self) -> list[str]:
        return ["--endpoint-url", self.endpoint] if self.endpoint else []

    def keys(self, prefix: str) -> list[str]:
        t = open_transport(self.url, self.endpoint)
        try:
            return list(t.list(prefix))
        finally:
            t.close()


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    if request.param == "file":
        return Where((tmp_path / "remote").as_uri(), None)
    server: S3Server = request.getfixturevalue("s3_server")
    return Where(f"s3://{server.new_bucket()}/team", server.endpoint_url)


def _team(
    tmp_path: Path, n: int = 3, where: Where | None = None
) -> tuple[Cli, Cli, str, list[str]]:
    """alice's store with `n` signed commits pushed to a remote (file:// unless `where`);
    bob's clone."""
    where = where or Where((tmp_path / "remote").as_uri(), None)
    alice, bob = Cli(tmp_path / "alice"), Cli(tmp_path / "bob")
    alice("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    alice("key", "generate", "--name", "alice")
    ids = [_import(alice, tmp_path, i) for i in range(n)]
    alice("remote", "add", "origin", where.url, *where.args())
    alice("push", "ds")
    bob("clone", where.url, "ds", *where.args())
    return alice, bob, where.url, ids


def _done(*clis: Cli) -> None:
    """Every store a test changed ends fsck-clean."""
    for c in clis:
        report = api.fsck(c.home)
        api.close_store(c.home)
        assert report.clean, f"fsck of {c.home}: {report.damage}"


def _packs(where: Where) -> list[str]:
    return [k for k in where.keys(statementsync.PREFIX) if k.endswith(statementsync.SUFFIX)]


def _trust(src: Cli, dst: Cli, name: str) -> None:
    dst("key", "import", "-", "--name", name, input=src("key", "export").stdout.encode())


def _refs(cli: Cli) -> list[tuple[str, bytes]]:
    store = api.open_store(cli.home)
    with store.env.read() as txn:
        return [(r, bytes(o)) for r, o in db.list_refs(txn, "ds")]


def test_signatures_travel_with_the_commits(
    tmp_path: Path, where: Where, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "mlgitfs.repo.refsign")  # bob knows no key yet: warned
    alice, bob, url, ids = _team(tmp_path, 3, where)
    # one statement pack per push, not one per commit, sealed by the pusher's key
    assert len(_packs(where)) == 1 and len(where.keys("stmts/")) == 2
    res = bob("verify", "ds@main", code=40)  # signed, by a key bob does not know
    assert "not trusted here" in res.stderr
    _trust(alice, bob, "alice")
    out = json.loads(bob("verify", "ds@main", "--all-history", "--json").stdout)
    assert out["ok"] and [c["commit"] for c in out["commits"]] == ids[::-1]
    head = out["commits"][0]["statements"]
    assert sorted(s["kind"] for s in head) == ["commit", "ref"]  # the push's ref move too
    # a later push sends only what is new, in one more pack
    alice("push", "ds")  # up to date: nothing to send
    assert len(_packs(where)) == 1
    _import(alice, tmp_path, 7)
    alice("push", "ds")
    assert len(_packs(where)) == 2
    bob("pull", "ds")
    bob("verify", "ds@main", "--all-history")
    _done(alice, bob)


# --- tampering --------------------------------------------------------------------------------


def test_flipped_byte_in_a_signed_commit_is_corrupt(tmp_path: Path) -> None:
    alice, bob, url, ids = _team(tmp_path, 2)
    # local: the commit's bytes in the store change, its id (and signature) do not
    store = api.open_store(alice.home)
    cid = ObjectId(from_hex(ids[-1]))
    with store.env.read() as txn:
        data = db.get_object_bytes(txn, cid)
    assert data is not None
    flipped = data[:-3] + bytes([data[-3] ^ 0x01]) + data[-2:]
    with store.env.write() as txn:
        db.delete_object(txn, cid)
        db.put_object(txn, cid, flipped)
    api.close_store(alice.home)
    res = alice("verify", "ds@main", code=7)
    assert ids[-1][:12] in res.stderr
    with api.open_store(alice.home).env.write() as txn:  # put it back for the fsck at the end
        db.delete_object(txn, cid)
        db.put_object(txn, cid, data)
    api.close_store(alice.home)
    # remote: a byte of the meta pack holding the commit; a fresh clone refuses it
    t = open_transport(url)
    for key in [k for k in t.list("meta/") if k.endswith(".pack")]:
        raw = bytearray(t.get(key))
        raw[len(raw) // 2] ^= 0x01
        t.put(key, bytes(raw))
    carol = Cli(tmp_path / "carol")
    carol("clone", url, "ds", code=7)
    assert not (carol.home / "meta").exists() or not api.repos(carol.home)
    _done(alice, bob)


def test_unknown_key_and_statement_moved_onto_another_commit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "mlgitfs.repo.refsign")
    alice, bob, url, ids = _team(tmp_path, 2)
    _trust(alice, bob, "alice")
    bob("verify", "ds@main", "--all-history")
    # locally: alice's statement of the head attached to its parent
    store = api.open_store(bob.home)
    head, parent = ObjectId(from_hex(ids[1])), ObjectId(from_hex(ids[0]))
    with store.env.read() as txn:
        st = next(s for s in statements.of_subject(txn, head) if s.kind == "commit")
    with store.env.write() as txn:
        statements.attach(txn, parent, st.encode())
    res = bob("verify", "ds@main~1", code=38)
    assert "moved onto another commit" in res.stderr
    with store.env.write() as txn:  # bob drops the moved one: verify holds again
        statements.detach(txn, parent, st.id)
    bob("verify", "ds@main~1")
    # on the remote: a statement pack rewritten so the head's statement names the parent
    t = open_transport(url)
    forged = stm.Statement(parent, st.kind, st.body, st.signer, st.signature)
    pack, data = statementsync.build_pack([forged.encode()])
    t.put(statementsync.pack_key(pack), data)
    dave = Cli(tmp_path / "dave")  # trusts alice before he clones: the clone checks
    _trust(alice, dave, "alice")
    res = dave("clone", url, "ds", code=39)
    assert "does not verify" in res.stderr and statementsync.PREFIX in res.stderr
    assert api.repos(dave.home) == []
    carol = Cli(tmp_path / "carol")  # trusts alice only after her clone: verify finds it
    carol("clone", url, "ds")
    _trust(alice, carol, "alice")
    res = carol("verify", "ds@main~1", code=39)
    assert "does not verify" in res.stderr
    # a signature by a key nobody here trusts
    mallory = SigningKey.generate()
    carol_store = api.open_store(carol.home)
    with carol_store.env.write() as txn:
        statements.put(txn, stm.sign(mallory, head, "attestation", codec.pack(["ok"])))
    res = carol("verify", "ds@main", code=40)
    assert "not trusted here" in res.stderr
    _done(alice, bob, carol, dave)


def test_a_sealed_pack_vouches_for_its_sealers_statements_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "mlgitfs.repo.refsign")
    caplog.set_level(logging.ERROR, "mlgitfs.repo.statementsync")  # the bad seals: warned
    alice, bob, url, ids = _team(tmp_path, 2)
    t = open_transport(url)
    store = api.open_store(alice.home)
    with store.env.read() as txn:
        key = keyring.signer(keyring.Keyring(store.home), txn)
        head = ObjectId(from_hex(ids[1]))
        st = next(s for s in statements.of_subject(txn, head) if s.kind == "commit")
    assert key is not None
    (pack,) = [statementsync.parse_pack_key(k) for k in _packs(Where(url, None))]
    assert pack is not None and t.get(statementsync.seal_key(pack))  # the push sealed it
    # a forged pack (alice's statement moved onto the parent), under alice's genuine seal
    # of the other pack, and under mallory's seal: the seal does not cover it, the
    # statement is checked on its own and refused
    forged = stm.Statement(ObjectId(from_hex(ids[0])), st.kind, st.body, st.signer, st.signature)
    bad, data = statementsync.build_pack([forged.encode()])
    t.put(statementsync.pack_key(bad), data)
    for sealer in (key, SigningKey.generate()):
        seal = statementsync.seal(sealer, pack if sealer is key else bad)
        t.put(statementsync.seal_key(bad), seal)
        dave = Cli(tmp_path / f"dave-{sealer.key_id.hex()[:4]}")
        _trust(alice, dave, "alice")
        res = dave("clone", url, "ds", code=39)
        assert "does not verify" in res.stderr and api.repos(dave.home) == []
    # a seal that does not verify (a flipped byte): checked one by one, refused again
    good = statementsync.seal(key, bad)
    t.put(statementsync.seal_key(bad), good[:-1] + bytes([good[-1] ^ 1]))
    Cli(tmp_path / "erin")("clone", url, "ds")  # trusts nobody: nothing is checked
    frank = Cli(tmp_path / "frank")
    _trust(alice, frank, "alice")
    frank("clone", url, "ds", code=39)
    # alice's own valid seal vouches for what she sealed: the fetch takes her word for the
    # moved statement, and `verify` (which checks each signature) still finds it
    t.put(statementsync.seal_key(bad), good)
    grace = Cli(tmp_path / "grace")
    _trust(alice, grace, "alice")
    grace("clone", url, "ds")
    assert "does not verify" in grace("verify", "ds@main~1", code=39).stderr
    grace("verify", "ds@main")
    _done(alice, bob, grace)


def test_ref_moved_by_an_untrusted_key_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "mlgitfs.repo.refsign")
    alice, bob, url, ids = _team(tmp_path, 1)
    _trust(alice, bob, "alice")
    bob("config", "verify-refs", "refuse")
    bob("fetch", "ds")
    # mallory has write access to the bucket and a key of her own
    mallory = Cli(tmp_path / "mallory")
    mallory("clone", url, "ds")
    mallory("key", "generate", "--name", "mallory")
    _import(mallory, tmp_path, 5)
    mallory("push", "ds")
    before = _refs(bob)
    res = bob("fetch", "ds", code=40)
    assert "not trusted here" in res.stderr and "nothing was fetched" in res.stderr
    assert _refs(bob) == before
    bob("pull", "ds", code=40)
    assert _refs(bob) == before
    # a ref statement altered (its time) keeps its known signer: the signature fails
    t = open_transport(url)
    key = packs.ref_key("ds", "heads/main")
    alice_store = api.open_store(alice.home)
    with alice_store.env.read() as txn:
        good = next(
            s for s in statements.of_subject(txn, ObjectId(from_hex(ids[0]))) if s.kind == "ref"
        )
    move = stm.decode_ref_move(good)
    body = stm.RefMove(move.repo, move.ref, move.old, move.new, move.time_ns + 1).encode()
    altered = stm.Statement(good.subject, good.kind, body, good.signer, good.signature)
    t.put(key, packs.encode_ref(good.subject, altered.encode()))
    res = bob("fetch", "ds", code=39)
    assert _refs(bob) == before
    # alice's genuine statement of main replayed onto another branch
    t.put(packs.ref_key("ds", "heads/other"), packs.encode_ref(good.subject, good.encode()))
    t.put(key, packs.encode_ref(good.subject, good.encode()))
    res = bob("fetch", "ds", code=38)
    assert "replayed" in res.stderr
    assert _refs(bob) == before
    # unsigned moves are refused under verify-refs = refuse, fetched under warn
    t.put(packs.ref_key("ds", "heads/other"), packs.encode_ref(good.subject))
    bob("fetch", "ds", code=41)
    bob("config", "verify-refs", "warn")
    bob("fetch", "ds")
    _done(alice, bob, mallory)


def test_public_key_type_checks_length() -> None:
    with pytest.raises(UsageError):
        PublicKey(b"short")


def test_gc_sweeps_the_statements_of_the_commits_it_sweeps(cli: Cli, tmp_path: Path) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("key", "generate", "--name", "alice")
    cli("config", "reflog-expiry", "0")
    _import(cli, tmp_path, 1)
    cli("branch", "ds@tmp")
    src = write_tree(tmp_path / "tmp", {"x.bin": b"only on tmp"})
    cli("import", "ds@tmp", str(src), "-m", "tmp")
    store = api.open_store(cli.home)
    with store.env.read() as txn:
        tmp_head = db.get_ref(txn, "ds", "heads/tmp")
        assert tmp_head is not None and statements.count(txn) == 2
    cli("branch", "-d", "ds@tmp", "--force")
    cli("gc")
    with store.env.read() as txn:
        assert statements.of_subject(txn, tmp_head) == [] and statements.count(txn) == 1
    cli("verify", "ds@main")


@pytest.mark.fuse
def test_a_writable_mount_commit_is_signed(
    cli: Cli, home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    """The mount's daemon commits through the same path: signed by the store's key."""
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("key", "generate", "--name", "alice")
    _import(cli, tmp_path, 1)
    api.close_store(home)
    mp = mounter("ds@main")
    (mp / "new.txt").write_bytes(b"written in the mount\n")
    mlgitfs(home, "commit", str(mp), "-m", "from the mount")
    out = json.loads(mlgitfs(home, "verify", "ds@main", "--all-history", "--json").stdout)
    assert out["ok"] and len(out["commits"]) == 2
    assert all(c["signed"] for c in out["commits"])


def test_a_new_remote_of_a_removed_ones_name_gets_every_signature(tmp_path: Path) -> None:
    alice, bob, url, ids = _team(tmp_path, 2)
    alice("remote", "remove", "origin")
    other = (tmp_path / "other").as_uri()
    alice("remote", "add", "origin", other)
    alice("push", "ds")
    carol = Cli(tmp_path / "carol")
    _trust(alice, carol, "alice")
    carol("clone", other, "ds")
    out = json.loads(carol("verify", "ds@main", "--all-history", "--json").stdout)
    assert out["ok"] and [c["commit"] for c in out["commits"]] == ids[::-1]
    _done(alice, bob, carol)


def test_a_bundle_carries_the_signatures(cli: Cli, tmp_path: Path) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("key", "generate", "--name", "alice")
    ids = [_import(cli, tmp_path, i) for i in range(2)]
    bundle = tmp_path / "ds.bundle"
    cli("bundle", "ds", str(bundle))
    erin = Cli(tmp_path / "erin")
    _trust(cli, erin, "alice")
    erin("clone", str(bundle))
    out = json.loads(erin("verify", "ds@main", "--all-history", "--json").stdout)
    assert out["ok"] and [c["commit"] for c in out["commits"]] == ids[::-1]
    # an altered signature is refused before anything is restored, when erin knows the key
    store = api.open_store(cli.home)
    head = ObjectId(from_hex(ids[1]))
    with store.env.read() as txn:
        good = statements.of_subject(txn, head)[0]
    bad = stm.Statement(good.subject, good.kind, good.body, good.signer, bytes(64))
    with store.env.write() as txn:
        statements.put(txn, bad)
    cli("bundle", "ds", str(tmp_path / "bad.bundle"))
    frank = Cli(tmp_path / "frank")
    _trust(cli, frank, "alice")
    frank("clone", str(tmp_path / "bad.bundle"), code=39)
    assert api.repos(frank.home) == []
    with store.env.write() as txn:
        statements.detach(txn, head, bad.id)
    _done(erin, frank)
