"""Signed statements: a signer's claim about one commit (its *subject*), of a *kind*.

Kinds in use: ``commit`` (the author signs the commit it made), ``ref`` (a pusher moved a
ref on a remote to the subject), ``attestation`` (a check passed on the subject). The body is
canonical msgpack whose meaning the kind defines; for ``commit`` and ``ref`` it is built and
read here.

What a signature covers (`signed_message`): the kind, the subject (the commit id: the
BLAKE3 of the commit's bytes, so the whole commit), the body and the signer's key id, in a
tagged canonical array. So a statement cannot be moved onto another commit, given another
kind or body, or claimed by another key without its signature failing.

Encoding (format 1): canonical msgpack ``["stmt", 1, subject, kind, body, signer,
signature]``; a statement's id is the BLAKE3 of that encoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlgitfs.errors import CorruptObject
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, ObjectId, hash_bytes, short_hex
from mlgitfs.model.objects import Commit
from mlgitfs.model.signing import KEY_ID_LEN, SIGNATURE_LEN, KeyId, PublicKey, SigningKey

TAG = "stmt"
FORMAT = 1
SIGNED_TAG = "mlgitfs-statement"
COMMIT = "commit"
REF = "ref"
ATTESTATION = "attestation"
MAX_BODY = 64 << 10  # a statement is small: a body over this is refused
_KIND_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")

StatementId = bytes  # 32 raw bytes: BLAKE3 of the statement's encoding


def signed_message(subject: bytes, kind: str, body: bytes, signer: bytes) -> bytes:
    """The bytes a statement's signature is made over."""
    return codec.pack([SIGNED_TAG, FORMAT, kind, bytes(subject), bytes(body), bytes(signer)])


@dataclass(frozen=True, slots=True)
class Statement:
    subject: ObjectId  # the commit it is about
    kind: str
    body: bytes  # canonical msgpack, meaning set by `kind`
    signer: KeyId
    signature: bytes

    def message(self) -> bytes:
        return signed_message(self.subject, self.kind, self.body, self.signer)

    def encode(self) -> bytes:
        return codec.pack(
            [TAG, FORMAT, bytes(self.subject), self.kind, self.body, bytes(self.signer),
             self.signature]
        )  # fmt: skip

    @property
    def id(self) -> StatementId:
        return hash_bytes(self.encode())

    def signed_by(self, key: PublicKey) -> bool:
        """Whether `key` is the signer and the signature is its signature of this statement."""
        return key.key_id == self.signer and key.verify(self.signature, self.message())


def decode(data: bytes, what: str = "statement") -> Statement:
    """A statement from its encoding; CorruptObject naming `what` for anything malformed."""
    v = codec.unpack_canonical(data, what)
    if not isinstance(v, list) or len(v) != 7 or v[0] != TAG or v[1] != FORMAT:
        raise CorruptObject(what, "not a format-1 statement")
    _, _, subject, kind, body, signer, signature = v
    if not (isinstance(subject, bytes) and len(subject) == ID_LEN):
        raise CorruptObject(what, "its subject is not a 32-byte commit id")
    if not (isinstance(kind, str) and _KIND_RE.match(kind)):
        raise CorruptObject(what, "its kind is not a short lowercase word")
    if not (isinstance(body, bytes) and len(body) <= MAX_BODY):
        raise CorruptObject(what, f"its body is not bytes of at most {MAX_BODY}")
    codec.unpack_canonical(body, f"{what} body")
    if not (isinstance(signer, bytes) and len(signer) == KEY_ID_LEN):
        raise CorruptObject(what, "its signer is not a 32-byte key id")
    if not (isinstance(signature, bytes) and len(signature) == SIGNATURE_LEN):
        raise CorruptObject(what, "its signature is not 64 bytes")
    return Statement(ObjectId(subject), kind, body, KeyId(signer), signature)


def sign(key: SigningKey, subject: ObjectId, kind: str, body: bytes) -> Statement:
    if not _KIND_RE.match(kind):
        raise ValueError(f"statement kind {kind!r} is not a short lowercase word")
    signer = key.key_id
    return Statement(
        subject, kind, body, signer, key.sign(signed_message(subject, kind, body, signer))
    )


# --- commit statements ----------------------------------------------------------------------


def commit_body(commit: Commit) -> bytes:
    """What an author's signature of a commit says beside its id: the tree and the author."""
    return codec.pack([COMMIT, bytes(commit.tree), commit.author])


def sign_commit(key: SigningKey, cid: ObjectId, commit: Commit) -> Statement:
    return sign(key, cid, COMMIT, commit_body(commit))


def commit_body_problem(st: Statement, commit: Commit) -> str | None:
    """Why a commit statement's body does not describe `commit`, or None."""
    if st.body != commit_body(commit):
        return (
            f"its body does not match commit {short_hex(st.subject)} (tree and author "
            "differ from what was signed)"
        )
    return None


# --- ref statements -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefMove:
    """A ref statement's body: who moved `ref` of `repo` on a remote from `old` to `new`."""

    repo: str  # the repo's name on the remote
    ref: str  # heads/BRANCH or tags/TAG
    old: ObjectId | None
    new: ObjectId
    time_ns: int

    def encode(self) -> bytes:
        old = bytes(self.old) if self.old is not None else None
        return codec.pack([REF, self.repo, self.ref, old, bytes(self.new), self.time_ns])


def decode_ref_move(st: Statement) -> RefMove:
    what = f"ref statement {short_hex(st.id)}"
    v = codec.unpack_canonical(st.body, what)
    try:
        tag, repo, ref, old, new, time_ns = v
        ok = (
            tag == REF and isinstance(repo, str) and isinstance(ref, str)
            and (old is None or (isinstance(old, bytes) and len(old) == ID_LEN))
            and isinstance(new, bytes) and len(new) == ID_LEN and isinstance(time_ns, int)
        )  # fmt: skip
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise CorruptObject(what, "its body is not [ref, repo, ref, old, new, time]")
    return RefMove(repo, ref, ObjectId(old) if old is not None else None, ObjectId(new), time_ns)


def sign_ref(key: SigningKey, move: RefMove) -> Statement:
    return sign(key, move.new, REF, move.encode())
