"""Signed statements travelling with their commits: statement packs on a remote.

A push uploads, as ONE object, the statements the remote lacks whose subject it holds
(`stmts/<id>.spack`), after the meta packs (so every subject is visible first) and before
the refs move (so a fetcher that sees a ref sees its commits' signatures). A fetch lists
`stmts/`, reads the packs it has not read before, checks each and attaches their statements.
Statements are small (about 250 bytes), so 10,000 signed commits cost one PUT of ~2.5 MB,
not 10,000 requests.

Pack format 1: canonical msgpack ``["spack", 1, [statement encoding, ...]]`` followed by a
32-byte BLAKE3 trailer of those bytes; its id (in the key) is the BLAKE3 of the whole object.
A reader checks the id, the trailer and every statement's encoding before it keeps any; a
pack that fails is skipped with a warning and not recorded as read (a repaired or re-pushed
one is read next time). A fetch checks every statement whose signer the key ring knows, and
refuses the fetch (`SignatureInvalid`, no tracking ref moved) when one fails; statements by
keys it does not know are kept as they came, and `mlgitfs verify` (repo/verify.py) judges
them once their keys are imported.

Seals: a push with a signing key writes, before the pack, `stmts/<pack id>.sseal`, its
signature of the pack id (which covers every byte of every statement in the pack). A fetch
that trusts the sealer checks that one signature instead of one per statement for the
statements the sealer signed (a clone of 10,000 commits: one ed25519 check, not 10,000);
others in the pack are checked one by one. A seal that is of another pack, by an unknown
key, malformed or failing is ignored, and the pack checked statement by statement: a bad
seal costs time, never trust. A seal killed before its pack is an orphan, harmless.

Crash states: killed during the pack's PUT, the remote has no pack or a truncated one (it
fails its check): the rerun sends the statements again (they were not marked as on the
remote) and a fetch skips the bad one. Killed after the PUT, before the local marks: the
rerun sends a pack of the same id again. Killed after the pack, before the ref CAS: the
statements' subjects are visible there, no ref moved; harmless, a rerun finds them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mlgitfs.errors import CorruptObject, MlgitError
from mlgitfs.meta import remotes as remote_meta
from mlgitfs.meta import statements
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, from_hex, hash_bytes, short_hex, to_hex
from mlgitfs.model.signing import KEY_ID_LEN, SIGNATURE_LEN, KeyId, SigningKey
from mlgitfs.model.statement import Statement, decode
from mlgitfs.repo import keyring
from mlgitfs.repo.verify import Trusted, check_signature
from mlgitfs.store import packs
from mlgitfs.store.facade import Store
from mlgitfs.store.remote import RemoteTransport

log = logging.getLogger(__name__)

PREFIX = "stmts/"
SUFFIX = ".spack"
SEAL_SUFFIX = ".sseal"  # the pusher's signature of a pack, beside it
SEAL_TAG = "sseal"
SEALED_TAG = "mlgitfs-statement-pack"  # what a seal's signature is made over, first
MAX_SEAL = 4 << 10
KIND = "stmts"  # the kind under which read packs are recorded (meta/remotes.py)
TAG = "spack"
FORMAT = 1
MAX_PACK = 256 << 20  # bytes of one statement pack a reader accepts
READERS = 8


def pack_key(pack: bytes) -> str:
    return f"{PREFIX}{to_hex(pack)}{SUFFIX}"


def parse_pack_key(key: str) -> bytes | None:
    name = key.removeprefix(PREFIX)
    if not key.startswith(PREFIX) or not name.endswith(SUFFIX):
        return None
    try:
        return from_hex(name.removesuffix(SUFFIX))
    except CorruptObject:
        return None


def build_pack(encodings: list[bytes]) -> tuple[bytes, bytes]:
    """(pack id, bytes) of a statement pack."""
    body = codec.pack([TAG, FORMAT, encodings])
    data = body + hash_bytes(body)
    return hash_bytes(data), data


def seal_key(pack: bytes) -> str:
    return f"{PREFIX}{to_hex(pack)}{SEAL_SUFFIX}"


def _sealed_message(pack: bytes, signer: bytes) -> bytes:
    return codec.pack([SEALED_TAG, FORMAT, bytes(pack), bytes(signer)])


def seal(key: SigningKey, pack: bytes) -> bytes:
    """A pack's seal: the pusher's signature of its id (so of every byte of every statement
    in it), ``["sseal", 1, pack id, signer key id, signature]``."""
    signer = key.key_id
    sig = key.sign(_sealed_message(pack, signer))
    return codec.pack([SEAL_TAG, FORMAT, bytes(pack), bytes(signer), sig])


def sealed_by(pack: bytes, data: bytes, trusted: Trusted) -> KeyId | None:
    """The trusted key whose valid seal `data` is of `pack`; None for anything else (a seal
    of another pack, by an unknown key, malformed or not verifying: the pack's statements
    are then checked one by one, so a bad seal costs time, never trust)."""
    try:
        v = codec.unpack_canonical(data, seal_key(pack))
    except CorruptObject:
        return None
    if not (isinstance(v, list) and len(v) == 5 and v[0] == SEAL_TAG and v[1] == FORMAT):
        return None
    _, _, of, signer, sig = v
    if of != pack or not (isinstance(signer, bytes) and len(signer) == KEY_ID_LEN):
        return None
    key = trusted.get(KeyId(signer))
    if key is None or not (isinstance(sig, bytes) and len(sig) == SIGNATURE_LEN):
        return None
    if not key.verify(sig, _sealed_message(pack, signer)):
        log.warning("the seal of statement pack %s does not verify: its statements are "
                    "checked one by one", short_hex(pack))  # fmt: skip
        return None
    return KeyId(signer)


def read_pack(pack: bytes, data: bytes, key: str) -> list[Statement]:
    """The statements of a pack, every check passed (CorruptObject naming the key otherwise)."""
    if hash_bytes(data) != pack:
        raise CorruptObject(key, "the statement pack does not hash to the id in its key")
    body, trailer = data[:-ID_LEN], data[-ID_LEN:]
    if len(data) <= ID_LEN or hash_bytes(body) != trailer:
        raise CorruptObject(key, "the statement pack's trailer does not match its contents")
    v = codec.unpack_canonical(body, key)
    if not (isinstance(v, list) and len(v) == 3 and v[0] == TAG and v[1] == FORMAT):
        raise CorruptObject(key, "not a format-1 statement pack")
    if not isinstance(v[2], list) or not all(isinstance(e, bytes) for e in v[2]):
        raise CorruptObject(key, "a statement pack holds a list of encoded statements")
    return [decode(e, f"statement {i} of {key}") for i, e in enumerate(v[2])]


def push_statements(
    store: Store, t: RemoteTransport, remote: str, subject_on_remote: Callable[[bytes], bool]
) -> int:
    """Upload, in one pack, the statements learned since the remote's cursor that it lacks
    and whose subject it holds; returns how many. Statements of commits not on the remote
    wait (the cursor stops before the first of them) for the push that sends their commit."""
    with store.env.read() as txn:
        start = last = statements.cursor(txn, remote)
        pending = []
        for seq, subject, sid, data in statements.since(txn, start):
            last = seq
            if not statements.on_remote(txn, remote, sid):
                pending.append((seq, subject, sid, data))
    send: list[tuple[bytes, bytes]] = []
    waiting: int | None = None
    for seq, subject, sid, data in pending:
        if subject_on_remote(subject):
            send.append((sid, data))
        elif waiting is None:
            waiting = seq
    if send:
        with store.env.read() as txn:
            key = keyring.signer(keyring.Keyring(store.home), txn)
        pack, data = build_pack([d for _, d in send])
        if key is not None:  # before the pack: a reader that sees the pack sees its seal
            t.put(seal_key(pack), seal(key, pack))
        t.put(pack_key(pack), data)
    with store.env.write() as txn:
        statements.mark_on_remote(txn, remote, [sid for sid, _ in send])
        statements.set_cursor(txn, remote, last if waiting is None else waiting - 1)
    return len(send)


Fetched = list[tuple[bytes, list[Statement]]]  # (pack id, its statements), checked


def read_statements(
    store: Store, t: RemoteTransport, remote: str, trusted: Trusted | None = None
) -> Fetched:
    """Read and check the statement packs of the remote not read before, writing nothing
    (a fetch runs this beside its history walk, which mostly waits on I/O). A statement
    signed by a key of `trusted` whose signature fails is refused (`SignatureInvalid`):
    the fetch stops before anything is attached, no tracking ref moves. Statements by other
    keys are kept unjudged."""
    with store.env.read() as txn:
        known = remote_meta.known_packs(txn, remote, KIND)
    listed = list(t.list(PREFIX))
    seals = set(listed)
    wanted = [(p, k) for k in listed if (p := parse_pack_key(k)) and p not in known]
    trusted = trusted or {}

    def read(item: tuple[bytes, str]) -> tuple[bytes, list[Statement] | None, KeyId | None]:
        pack, key = item
        try:
            sts = read_pack(pack, packs.get_capped(t, key, MAX_PACK), key)
        except MlgitError as exc:
            log.warning("statement pack %s skipped: %s", short_hex(pack), exc)
            return pack, None, None
        sealer = None
        if seal_key(pack) in seals and trusted:
            try:
                sealer = sealed_by(pack, packs.get_capped(t, seal_key(pack), MAX_SEAL), trusted)
            except MlgitError as exc:
                log.warning("the seal of statement pack %s unread: %s", short_hex(pack), exc)
        return pack, sts, sealer

    with ThreadPoolExecutor(READERS, thread_name_prefix="mlgitfs-stmts") as pool:
        read_all = [r for r in pool.map(read, wanted) if r[1] is not None]
    got: Fetched = [(pack, sts) for pack, sts, _ in read_all if sts is not None]
    for (pack, sts), sealer in zip(got, [r[2] for r in read_all], strict=True):
        for st in sts:
            if st.signer == sealer:
                continue  # its bytes are what the trusted sealer signed (the seal's id)
            key = trusted.get(st.signer)
            if key is not None and not st.signed_by(key):  # the message only for a failure
                where = f"{st.kind} statement {short_hex(st.id)} in {pack_key(pack)}"
                check_signature(st, {st.signer: key}, where)  # raises SignatureInvalid
    return got


def attach_fetched(store: Store, remote: str, got: Fetched) -> int:
    """Attach what `read_statements` read (their commits are in the store by now) and record
    the packs as read; returns how many statements were new to the store."""
    # each statement encoded and hashed once, outside the write transaction
    encoded = [[(st.subject, hash_bytes(d), d) for st in sts for d in (st.encode(),)]
               for _, sts in got]  # fmt: skip
    new = 0
    with store.env.write() as txn:
        for (pack, sts), items in zip(got, encoded, strict=True):
            new += statements.attach_many(txn, items)
            statements.mark_on_remote(txn, remote, [sid for _, sid, _ in items])
            remote_meta.put_pack(txn, remote, KIND, pack, len(sts))
    return new


def fetch_statements(
    store: Store, t: RemoteTransport, remote: str, trusted: Trusted | None = None
) -> int:
    """`read_statements` then `attach_fetched`."""
    return attach_fetched(store, remote, read_statements(store, t, remote, trusted))


def attach(store: Store, sts: list[Statement], remote: str | None = None) -> None:
    """Attach statements read or written beside refs to their subjects; `remote` holds them
    already (in its refs), so no statement pack carries them there again."""
    with store.env.write() as txn:
        statements.put_many(txn, sts)
        if remote is not None:
            statements.mark_on_remote(txn, remote, [st.id for st in sts])
