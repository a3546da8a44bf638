"""Attestations in the store: signed statements of kind "attestation" (model/statement.py)
in the statements database (meta/statements.py), signed with the store's signing key and
checked against its key ring (repo/keyring.py). They travel with their commits as every
statement does (repo/statementsync.py); repo/attest.py says what they mean.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mlgitfs.meta import statements
from mlgitfs.model.attestation import STATEMENT_KIND, Attestation
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.signing import KeyId, SigningKey
from mlgitfs.model.statement import Statement, sign
from mlgitfs.repo.attest import Attester, Signed
from mlgitfs.repo.keyring import Keyring, KnownKey, configured_key
from mlgitfs.store.facade import Store

log = logging.getLogger(__name__)


@dataclass
class StoreAttester:
    """The `Attester` of a store: the key that signs its commits signs (`mlgitfs config
    signing-key`, else its only private key; none: nothing is attested here), whether or
    not commits are signed; the keys of its key ring are believed. Keys are read on first
    use."""

    store: Store
    ring: Keyring
    _key: SigningKey | None = None
    _known: dict[KeyId, KnownKey] | None = None
    _looked: bool = False

    @property
    def key(self) -> SigningKey | None:
        if not self._looked:
            self._looked = True
            own = self.ring.own()
            with self.store.env.read() as txn:
                name = configured_key(txn)
            if name is None and len(own) == 1:
                name = own[0].name
            elif name is None and own:
                log.warning(
                    "the key ring holds several private keys and none is chosen (`mlgitfs "
                    "config signing-key NAME`): nothing is attested"
                )
            self._key = self.ring.signing_key(name) if name is not None else None
        return self._key

    @property
    def known(self) -> dict[KeyId, KnownKey]:
        if self._known is None:
            self._known = self.ring.by_id()
        return self._known

    @property
    def signer(self) -> str | None:
        key = self.key
        return key.key_id.hex() if key is not None else None

    def attach(self, repo: str, commit: ObjectId, bodies: Sequence[Attestation]) -> None:
        key = self.key
        assert key is not None  # callers ask `signer` first
        sts = [sign(key, commit, STATEMENT_KIND, b.encode()) for b in bodies]
        with self.store.env.write() as txn:
            statements.put_many(txn, sts)
        log.info("attested %d on %s with key %s", len(sts), short_hex(commit), self.signer)

    def signed(self, repo: str, commit: ObjectId) -> list[Signed]:
        with self.store.env.read() as txn:
            found = statements.of_subject(txn, commit)
        return [self._signed(st, commit) for st in found if st.kind == STATEMENT_KIND]

    def _signed(self, st: Statement, commit: ObjectId) -> Signed:
        known = self.known.get(st.signer)
        ok = known is not None and st.signed_by(known.public)
        return Signed(
            st.id.hex(), commit, st.subject, st.signer.hex(), st.body, known is not None, ok
        )


def attester_of(store: Store) -> Attester:
    """The attester of `store` (its key ring under its home)."""
    return StoreAttester(store, Keyring(store.home))
