"""The store's key ring: the user's signing keys and the public keys it knows, by name.

Files under the store home (one line each, model/signing.py's text forms):

    keys/              mode 0700
      private/NAME.key the user's private keys (mode 0600; never read by anything else)
      public/NAME.pub  every known public key, the user's own included

A name is a short word (letters, digits, ``.``, ``_``, ``-``, ``@``). A key id names one
key: importing a key under a second name, or another key under a taken name, is refused.
Which key signs and whether commits are signed are settings of the store (`mlgitfs config
signing-key`, `sign-commits`: auto signs when the store has a signing key).
Files are written tmp + fsync + rename; nothing here logs a private key.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.errors import AlreadyExists, InvalidName, NotFound, UsageError
from mlgitfs.meta import db
from mlgitfs.meta.env import ReadTxn
from mlgitfs.model.signing import (
    KeyId,
    PublicKey,
    SigningKey,
    decode_private,
    decode_public,
    short_key_id,
)
from mlgitfs.store.durable import fsync_dir

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
SIGNING_KEY = "signing-key"  # config: the name of the key that signs (default: the only one)
SIGN_COMMITS = "sign-commits"  # config: auto (default), true, false
SIGN_MODES = ("auto", "true", "false")  # the first: the default


@dataclass(frozen=True, slots=True)
class KnownKey:
    name: str
    public: PublicKey
    own: bool  # the store holds its private key

    @property
    def key_id(self) -> KeyId:
        return self.public.key_id

    @property
    def short_id(self) -> str:
        return short_key_id(self.key_id)


def check_key_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InvalidName(
            f"invalid key name {name[:80]!r}: use up to 64 letters, digits, '.', '_', '-' or "
            "'@', starting with a letter or digit"
        )
    return name


class Keyring:
    """The key ring of the store at `home` (its directories are made on first write)."""

    def __init__(self, home: Path) -> None:
        self.root = home / "keys"
        self.private_dir = self.root / "private"
        self.public_dir = self.root / "public"

    # --- reading ---

    def known(self) -> list[KnownKey]:
        if not self.public_dir.is_dir():
            return []
        out = []
        for path in sorted(self.public_dir.glob("*.pub")):
            name = path.name.removesuffix(".pub")
            pub, _ = decode_public(path.read_text(encoding="utf-8"), f"key file {path.name}")
            out.append(KnownKey(name, pub, (self.private_dir / f"{name}.key").is_file()))
        return out

    def get(self, name: str) -> KnownKey:
        check_key_name(name)
        for k in self.known():
            if k.name == name:
                return k
        raise NotFound(f"no key named {name!r} in the key ring ({self._names()})")

    def by_id(self) -> dict[KeyId, KnownKey]:
        return {k.key_id: k for k in self.known()}

    def own(self) -> list[KnownKey]:
        return [k for k in self.known() if k.own]

    def signing_key(self, name: str) -> SigningKey:
        path = self.private_dir / f"{check_key_name(name)}.key"
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise NotFound(f"the key ring has no private key named {name!r}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the private key {name!r}: {exc}") from exc
        key = decode_private(text, f"private key {name!r}")
        if key.key_id != self.get(name).key_id:
            raise UsageError(f"the private key {name!r} does not match its public key file")
        return key

    # --- writing ---

    def generate(self, name: str) -> KnownKey:
        check_key_name(name)
        self._check_free(name)
        key = SigningKey.generate()
        self._write(self.private_dir / f"{name}.key", key.encode_private(), 0o600)
        self._write(self.public_dir / f"{name}.pub", key.public.encode(name) + "\n", 0o644)
        return KnownKey(name, key.public, True)

    def import_public(self, text: str, name: str, where: str) -> KnownKey:
        """Know the public key in `text` as `name`; importing the same key under the same
        name again changes nothing."""
        check_key_name(name)
        pub, _ = decode_public(text, where)
        for k in self.known():
            if k.key_id == pub.key_id:
                if k.name == name:
                    return k
                raise AlreadyExists(f"that key ({k.short_id}) is already known as {k.name!r}")
        self._check_free(name)
        self._write(self.public_dir / f"{name}.pub", pub.encode(name) + "\n", 0o644)
        return KnownKey(name, pub, False)

    def remove(self, name: str) -> KnownKey:
        """Forget a key (and its private key, if the store holds it)."""
        known = self.get(name)
        with contextlib.suppress(FileNotFoundError):
            (self.private_dir / f"{name}.key").unlink()
        (self.public_dir / f"{name}.pub").unlink()
        fsync_dir(self.public_dir)
        return known

    def _check_free(self, name: str) -> None:
        if (self.public_dir / f"{name}.pub").exists() or (
            self.private_dir / f"{name}.key"
        ).exists():
            raise AlreadyExists(f"the key ring already has a key named {name!r}")

    def _names(self) -> str:
        names = [k.name for k in self.known()]
        return "known: " + ", ".join(names) if names else "it is empty"

    def _write(self, path: Path, text: str, mode: int) -> None:
        self.root.mkdir(mode=0o700, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # whatever the umask says
            os.write(fd, text.encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)


# --- which key signs --------------------------------------------------------------------------


def sign_mode(txn: ReadTxn) -> str:
    return db.get_choice(txn, SIGN_COMMITS, SIGN_MODES)


def configured_key(txn: ReadTxn) -> str | None:
    value = db.get_config(txn, SIGNING_KEY)
    return value if isinstance(value, str) and value else None


def signer(ring: Keyring, txn: ReadTxn) -> SigningKey | None:
    """The key that signs this store's commits and ref moves, or None when signing is off
    (`sign-commits` false, or auto and the store holds no private key). With `true` and no
    key, UsageError: a setting that asks for signatures must not be met silently."""
    mode = sign_mode(txn)
    if mode == "false":
        return None
    name = configured_key(txn)
    if name is None:
        own = ring.own()
        if not own:
            if mode == "true":
                raise UsageError(
                    "sign-commits is true but the key ring has no private key: run "
                    "`mlgitfs key generate`, or `mlgitfs config sign-commits auto`"
                )
            return None
        if len(own) > 1:
            names = ", ".join(k.name for k in own)
            raise UsageError(
                f"the key ring holds several private keys ({names}): choose one with "
                "`mlgitfs config signing-key NAME`"
            )
        name = own[0].name
    return ring.signing_key(name)
