"""Ed25519 identities: generate, sign, verify, key ids and the text forms of keys; the only
importer of `cryptography`.

A key id (`KeyId`) is the BLAKE3-256 of the raw 32-byte public key: the same key has the
same id on every machine, and an id names exactly one key. `short_key_id` is its display
form (16 hex digits). Public keys travel as one line of text, ssh-like:
``mlgitfs-ed25519 BASE64 [NAME]``; a private key file holds ``mlgitfs-ed25519-private BASE64``
(the 32-byte seed). Nothing here logs or renders a private key.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from typing import NewType

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mlgitfs.errors import UsageError
from mlgitfs.model.ids import hash_bytes

KeyId = NewType("KeyId", bytes)  # 32 raw bytes: BLAKE3 of the raw public key

PUBLIC_LEN = 32
SEED_LEN = 32
SIGNATURE_LEN = 64
KEY_ID_LEN = 32
SHORT_KEY_ID = 16  # hex digits shown for a key id
PUBLIC_TAG = "mlgitfs-ed25519"
PRIVATE_TAG = "mlgitfs-ed25519-private"


VERIFIED_MAX = 1 << 16  # remembered good signatures (32 bytes each) before the memo restarts
_verified: set[bytes] = set()  # BLAKE3 of key + signature + message of each that verified


@functools.lru_cache(maxsize=1024)  # a statement check asks for its signer's id each time
def key_id(public_raw: bytes) -> KeyId:
    return KeyId(hash_bytes(public_raw))


@functools.lru_cache(maxsize=256)  # a fetch checks thousands of statements by a few keys
def _loaded(public_raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_raw)


def short_key_id(kid: bytes) -> str:
    return kid.hex()[:SHORT_KEY_ID]


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An ed25519 public key (raw 32 bytes)."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != PUBLIC_LEN:
            raise UsageError(f"an ed25519 public key is {PUBLIC_LEN} bytes, not {len(self.raw)}")

    @property
    def key_id(self) -> KeyId:
        return key_id(self.raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether `signature` is this key's signature of `message` (never raises on a bad
        signature or a point that is not on the curve: those are simply not valid).

        A signature that verified is remembered (by the BLAKE3 of key, signature and
        message; key and signature have fixed lengths, so the three cannot be confused)
        for the life of the process: verifying is pure, and a fetch checks each statement
        it brings and then the trust check those of a protected branch again."""
        if len(signature) != SIGNATURE_LEN:
            return False
        memo = hash_bytes(self.raw + signature + message)
        if memo in _verified:
            return True
        try:
            _loaded(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        if len(_verified) >= VERIFIED_MAX:
            _verified.clear()  # a bound, not a policy: the next check just verifies again
        _verified.add(memo)
        return True

    def encode(self, name: str | None = None) -> str:
        """The one-line text form, ``mlgitfs-ed25519 BASE64 [NAME]``."""
        text = f"{PUBLIC_TAG} {base64.b64encode(self.raw).decode()}"
        return f"{text} {name}" if name else text


def decode_public(text: str, where: str = "public key") -> tuple[PublicKey, str | None]:
    """A public key and the name its line carries (None if it has none); UsageError naming
    `where` for anything else."""
    parts = text.strip().split(maxsplit=2)
    if len(parts) < 2 or parts[0] != PUBLIC_TAG:
        raise UsageError(f"{where} is not an mlgitfs public key (`{PUBLIC_TAG} BASE64 [NAME]`)")
    raw = _b64(parts[1], where)
    if len(raw) != PUBLIC_LEN:
        raise UsageError(f"{where}: an ed25519 public key is {PUBLIC_LEN} bytes, not {len(raw)}")
    return PublicKey(raw), (parts[2].strip() if len(parts) == 3 else None)


class SigningKey:
    """An ed25519 private key. Its repr names only its key id."""

    __slots__ = ("_key", "public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = PublicKey(raw)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if len(seed) != SEED_LEN:
            raise UsageError(f"an ed25519 private key is {SEED_LEN} bytes, not {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def key_id(self) -> KeyId:
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message))

    def encode_private(self) -> str:
        """The private key file's text (write it with mode 0600, never log it)."""
        seed = self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return f"{PRIVATE_TAG} {base64.b64encode(seed).decode()}\n"

    def __repr__(self) -> str:
        return f"SigningKey({short_key_id(self.key_id)})"


def decode_private(text: str, where: str) -> SigningKey:
    parts = text.strip().split()
    if len(parts) != 2 or parts[0] != PRIVATE_TAG:
        raise UsageError(f"{where} is not an mlgitfs private key")
    return SigningKey.from_seed(_b64(parts[1], where))


def _b64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise UsageError(f"{where}: the key is not valid base64") from exc
