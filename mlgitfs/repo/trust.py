"""The trust policy on a remote: a chain of signed versions only an admin can extend
(docs/governance.md, "The policy object").

Keys of the remote (under its prefix):

    access/policy            the current version (model/access.py SignedPolicy)
    access/versions/N        every version before it, N zero-padded (write-once)

A version N+1 holds ``prev`` = the digest of version N and is signed by the key of an admin
of version N; version 1 has no ``prev`` and is signed by an admin of itself. A store keeps
the version it verified last per remote (meta/access.py) and accepts a newer one only
through that chain: an older version (a replay), another version of the same number, or a
removed policy is `PolicyRollback`; a version signed by anyone but an admin of the version
before it, or not chained to it, is `PolicyUnauthorized`. The first version a store sees is
trusted on first use, unless the remote was cloned with `--trust KEYID`: then some version
of the chain must be signed by that key.

Publishing (ordering, so that a reader always finds the versions between its own and the
current one):
1. read and verify the current version N (as a fetch does);
2. write `access/versions/N` from it if absent (a publisher killed after step 3 left it out);
3. move `access/policy` to N+1 by compare-and-swap on the ETag read in step 1 (lost: the
   policy changed meanwhile, `ConflictError`, nothing of ours is visible);
4. write `access/versions/N+1` if absent (a kill here is repaired by the next step 2).
"""

from __future__ import annotations

import contextlib
import logging
import re

from mlgitfs.errors import (
    ConflictError,
    NotFound,
    PolicyRollback,
    PolicyUnauthorized,
    PreconditionFailed,
    RemoteKeyMissing,
    UsageError,
)
from mlgitfs.meta import access as access_db
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model.access import Policy, SignedPolicy
from mlgitfs.model.signing import short_key_id
from mlgitfs.repo import keyring
from mlgitfs.repo.access import admins
from mlgitfs.store import packs
from mlgitfs.store.facade import Store
from mlgitfs.store.remote import RemoteTransport

log = logging.getLogger(__name__)

POLICY_KEY = "access/policy"
POLICY_CAP = 4 << 20  # a policy larger than this is refused before it is read


def version_key(seq: int) -> str:
    return f"access/versions/{seq:010d}"


def _read(t: RemoteTransport, key: str) -> tuple[SignedPolicy, str] | None:
    got = packs.get_capped_with_etag(t, key, POLICY_CAP)
    if got is None:
        return None
    return SignedPolicy.decode(got[0], f"{t.describe()} {key}"), got[1]


def check_successor(prev: Policy | None, signed: SignedPolicy, seq: int) -> Policy:
    """The policy `signed` carries, once it is version `seq` chained to `prev` (None: the
    first version) and signed by an admin of `prev` (of itself for the first)."""
    new = signed.policy
    what = f"access policy version {new.seq}"
    if new.seq != seq:
        raise PolicyUnauthorized(f"{what} stands where version {seq} should: the chain is broken")
    want = prev.digest if prev is not None else b""
    if new.prev != want:
        raise PolicyUnauthorized(
            f"{what} does not name version {seq - 1} as the one it replaces: it was not made "
            "from it"
        )
    authority = prev if prev is not None else new
    by = f"version {seq - 1}" if prev is not None else "itself"
    ident = authority.identity_of(signed.signer)
    if ident is None:
        raise PolicyUnauthorized(
            f"{what} is signed by key {short_key_id(signed.signer)}, which is the key of no "
            f"identity of {by}"
        )
    if ident not in admins(authority):
        raise PolicyUnauthorized(f"{what} is signed by {ident}, who is not an admin of {by}")
    key = authority.key_of(ident)
    if key is None or not signed.signed_by(key):
        raise PolicyUnauthorized(f"{what}: the signature by {ident} does not verify")
    return new


def verify_remote(
    t: RemoteTransport, trusted: SignedPolicy | None, pin: bytes | None
) -> tuple[SignedPolicy | None, str | None]:
    """The remote's current policy version (and its ETag), verified against `trusted` (the
    version trusted here, None: none yet) and `pin`; (None, None) when the remote has none
    and nothing is trusted."""
    got = _read(t, POLICY_KEY)
    if got is None:
        if trusted is None:
            return None, None
        raise PolicyRollback(
            f"{t.describe()} no longer holds an access policy; version {trusted.policy.seq} is "
            "trusted here: a policy is replaced only by an admin's newer version"
        )
    latest, etag = got
    seq = latest.policy.seq
    if trusted is not None:
        mine = trusted.policy
        if seq < mine.seq:
            raise PolicyRollback(
                f"{t.describe()} holds access policy version {seq}, older than version "
                f"{mine.seq} trusted here: a replayed policy is refused"
            )
        if seq == mine.seq:
            if latest.encoded != trusted.encoded:
                raise PolicyRollback(
                    f"{t.describe()} holds another access policy version {seq} than the one "
                    "trusted here: a policy is replaced only by an admin's newer version"
                )
            return trusted, etag
    prev = trusted.policy if trusted is not None else None
    pinned = pin is None or trusted is not None
    for n in range((prev.seq if prev is not None else 0) + 1, seq + 1):
        if n == seq:
            signed = latest
        else:
            found = _read(t, version_key(n))
            if found is None:
                raise PolicyUnauthorized(
                    f"{t.describe()} lacks access policy version {n} ({version_key(n)}): the "
                    f"chain to version {seq} cannot be checked"
                )
            signed = found[0]
        prev = check_successor(prev, signed, n)
        pinned = pinned or signed.signer == pin
    if not pinned:
        assert pin is not None
        raise PolicyUnauthorized(
            f"no version of the access policy of {t.describe()} is signed by the pinned key "
            f"{short_key_id(pin)} (clone --trust)"
        )
    return latest, etag


def pin_key(store: Store, text: str) -> bytes:
    """The key id `text` names: 64 hex digits, or the name of a key of the key ring."""
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        return bytes(keyring.Keyring(store.home).get(text).key_id)
    except (NotFound, UsageError):
        raise UsageError(
            f"--trust {text!r} is neither a key id (64 hex digits) nor a key of the key ring"
        ) from None


def pin(store: Store, rec: RemoteRecord, key_id: bytes) -> None:
    """Some version of `rec`'s policy must be signed by `key_id` before any is trusted."""
    with store.env.write() as txn:
        access_db.set_pin(txn, rec.name, key_id)


def fetch_policy(store: Store, rec: RemoteRecord, t: RemoteTransport) -> SignedPolicy | None:
    """The remote's policy, verified against what this store trusts for `rec` (not yet
    recorded: `adopt` does once the history that came with it passed)."""
    with store.env.read() as txn:
        trusted = access_db.trusted(txn, rec.name)
        pin = access_db.pin(txn, rec.name)
    return verify_remote(t, trusted, pin)[0]


def adopt(store: Store, rec: RemoteRecord, signed: SignedPolicy, mine: bool = False) -> None:
    """Trust `signed` for `rec` from now on. It becomes the local policy when that has no
    edits of its own (it is empty, or the version trusted before), or when `mine` (this
    store just published it)."""
    with store.env.write() as txn:
        before = access_db.trusted(txn, rec.name)
        local = access_db.get(txn)
        access_db.set_trusted(txn, rec.name, signed)
        unedited = local.seq == 0 or (before is not None and local.encode() == before.encoded)
        if mine or unedited:
            access_db.put(txn, signed.policy)
        elif local.encode() != signed.encoded:
            log.warning(
                "%s holds access policy version %d; the local policy has edits not published "
                "(mlgitfs access publish replaces it)", rec.name, signed.policy.seq,
            )  # fmt: skip


def publish(store: Store, rec: RemoteRecord, t: RemoteTransport) -> tuple[Policy, bool]:
    """Publish the local policy as the remote's next version, signed by the store's signing
    key (an admin of the current version; of the new one for the first). Returns the
    version and whether it is new (False: the remote holds the same grants already)."""
    with store.env.read() as txn:
        key = keyring.signer(keyring.Keyring(store.home), txn)
        draft = access_db.get(txn)
        trusted = access_db.trusted(txn, rec.name)
        pin = access_db.pin(txn, rec.name)
    if key is None:
        raise UsageError("publishing the access policy needs a signing key (mlgitfs key generate)")
    if not draft.grants:
        raise UsageError("the access policy grants nothing: grant roles first")
    current, etag = verify_remote(t, trusted, pin)
    base = current.policy if current is not None else None
    if base is not None and (base.grants, base.keys) == (draft.grants, draft.keys):
        assert current is not None
        adopt(store, rec, current, mine=True)
        return base, False
    new = Policy(
        draft.grants, base.seq + 1 if base else 1, base.digest if base else b"", draft.keys
    )
    if not any(new.key_of(a) is not None for a in admins(new)):
        raise UsageError(
            "the access policy names no admin with a key: published, nobody could ever change "
            "it again (grant admin to an identity of the key ring); nothing was published"
        )
    authority = base if base is not None else new
    ident = authority.identity_of(key.key_id)
    if ident is None or ident not in admins(authority):
        who = ident or f"key {short_key_id(key.key_id)}"
        raise PolicyUnauthorized(
            f"{who} is not an admin of access policy version {authority.seq} of "
            f"{t.describe()}: only an admin's signature can change it; nothing was published"
        )
    signed = SignedPolicy.sign(key, new)
    if current is not None and base is not None:
        _put_absent(t, version_key(base.seq), current.encode())
    try:
        if etag is None:
            t.put_if_absent(POLICY_KEY, signed.encode())
        else:
            t.put_if_match(POLICY_KEY, signed.encode(), etag)
    except (PreconditionFailed, RemoteKeyMissing) as exc:
        raise ConflictError(
            f"the access policy of {t.describe()} changed while publishing: publish again "
            "(it builds on the new version); nothing was published"
        ) from exc
    _put_absent(t, version_key(new.seq), signed.encode())
    adopt(store, rec, signed, mine=True)
    return new, True


def _put_absent(t: RemoteTransport, key: str, data: bytes) -> None:
    with contextlib.suppress(PreconditionFailed):  # written before: versions never change
        t.put_if_absent(key, data)
