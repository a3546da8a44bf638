"""Signed ref moves on a remote: the pusher signs each move, a fetcher checks who moved it.

A push that has a signing key (repo/keyring.py `signer`) writes each ref as its commit id
plus a ref statement (repo, ref, old, new, time, signer; store/packs.py `encode_ref`), in
the same compare-and-swap: the ref never moves without its statement, nor the reverse. A
fetch, pull or clone reads the statements with the refs and, before anything is fetched:
- refuses (nothing changed) a statement that is malformed, names another ref, repo or
  commit (`VerificationFailed`: replayed or moved), or whose known signer's signature does
  not verify (`SignatureInvalid`);
- for a move by a key neither the key ring nor the trust policy in force knows
  (repo/attestroles.py), or a move without a statement: with the setting `verify-refs` =
  ``warn`` (the default) logs it; with ``refuse`` refuses the fetch (`UnknownKey`, exit 40;
  `Unsigned`, exit 41).
Which keys hold which role is the trust policy's (issue 17 item 3); it calls `check_ref`
(repo/verify.py) with the keys it trusts for that ref.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mlgitfs.errors import UnknownKey
from mlgitfs.meta import db
from mlgitfs.meta.env import ReadTxn
from mlgitfs.model import statement as stm
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.signing import SigningKey, short_key_id
from mlgitfs.model.statement import RefMove, Statement
from mlgitfs.repo import keyring
from mlgitfs.repo.attestroles import policy_in_force
from mlgitfs.repo.verify import check_ref, trusted_keys
from mlgitfs.store.facade import Store

log = logging.getLogger(__name__)

VERIFY_REFS = "verify-refs"  # config: warn (default) or refuse
VERIFY_MODES = ("warn", "refuse")  # the first: the default

# (ref, old commit or None, new commit) -> the ref statement to write with the move, or None
RefSigner = Callable[[str, bytes | None, bytes], Statement | None]


def verify_mode(txn: ReadTxn) -> str:
    return db.get_choice(txn, VERIFY_REFS, VERIFY_MODES)


def ref_signer(store: Store, remote_repo: str) -> RefSigner | None:
    """The signer of this push's ref moves, or None when signing is off."""
    with store.env.read() as txn:
        key = keyring.signer(keyring.Keyring(store.home), txn)
    if key is None:
        return None
    return lambda ref, old, new: sign_move(key, remote_repo, ref, old, new)


def sign_move(
    key: SigningKey, remote_repo: str, ref: str, old: bytes | None, new: bytes
) -> Statement:
    move = RefMove(
        remote_repo, ref, ObjectId(old) if old is not None else None, ObjectId(new),
        time.time_ns(),
    )  # fmt: skip
    return stm.sign_ref(key, move)


def check_fetched(
    store: Store, remote_repo: str, found: dict[str, tuple[bytes, Statement | None]]
) -> list[Statement]:
    """Check the statements of the refs a fetch read (see the module note); the statements
    to attach once their commits are in the store."""
    ring = keyring.Keyring(store.home)
    with store.env.read() as txn:
        mode = verify_mode(txn)
    known = trusted_keys(ring)
    policy = policy_in_force(store)  # its identities' keys are trusted as the ring's are
    if policy is not None:
        known.update((k.key_id, k) for k in (policy.key_of(n) for n, _ in policy.keys) if k)
    keep = []
    for ref, (commit, st) in sorted(found.items()):
        check_ref(st, remote_repo, ref, ObjectId(commit), None, require=mode == "refuse")
        if st is None:
            continue
        if st.signer in known:
            check_ref(st, remote_repo, ref, ObjectId(commit), known)
        elif mode == "refuse":
            raise UnknownKey(
                f"the remote's {remote_repo}@{ref.split('/', 1)[-1]} was moved to "
                f"{short_hex(commit)} by key {short_key_id(st.signer)}, which is not trusted "
                "here (verify-refs = refuse): nothing was fetched"
            )
        else:
            log.warning(
                "%s@%s was moved to %s by key %s, which the key ring does not know",
                remote_repo, ref.split("/", 1)[-1], short_hex(commit), short_key_id(st.signer),
            )  # fmt: skip
        keep.append(st)
    return keep
