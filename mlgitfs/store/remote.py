"""The remote transport seam: move opaque objects to and from a remote, by key.

A remote is an S3 bucket/prefix (``s3://BUCKET/PREFIX``, see ``mlgitfs.store.s3``) or a local
directory (``file:///DIR``, see ``mlgitfs.store.filestore``). Both implement
:class:`RemoteTransport`; what the objects mean (packs, metadata, refs) is decided above.

Semantics every implementation keeps (tests/test_remote_transport.py holds them together):

- Keys are relative to the remote's prefix, ``/``-separated, checked by :func:`check_key`.
- ``get`` of a missing key raises :class:`~mlgitfs.errors.RemoteKeyMissing`; ``head`` and
  ``get_with_etag`` return None instead, for callers that expect absence.
- ETags are opaque strings: compare them, hand them back to ``put_if_match``, never parse them.
- ``put_if_absent`` creates only if absent; ``put_if_match`` replaces only the version named by
  the etag and never creates. A lost race of either raises
  :class:`~mlgitfs.errors.PreconditionFailed`.
- ``list`` yields every key that starts with the prefix, once each, in no promised order: AWS
  and the file transport give ascending UTF-8 order, but SeaweedFS lists directory by
  directory (``a/b`` before ``a-b``). Sort if order matters.
- Failures are :class:`~mlgitfs.errors.RemoteError` subclasses: ``RemoteNotFound`` (no bucket),
  ``RemoteDenied``, ``RemoteUnreachable``, or plain ``RemoteError``.

All methods block; trio callers run them with ``trio.to_thread.run_sync``. Implementations are
safe to call from many threads at once.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from mlgitfs.errors import InvalidName, PreconditionFailed, UsageError

MAX_KEY_BYTES = 1024  # the S3 limit; the prefix counts too, so keys stay well under it
PROBE_PREFIX = "tmp/probe-"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What ``head`` knows about an object without reading it."""

    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Network knobs of a transport; the file transport ignores them."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 5  # total tries of one request, first included
    # Overall seconds one read may take, tries included: a stalled server gives a clear
    # error (a mount read EIO) after this, not after max_attempts x read_timeout.
    deadline: float = field(default_factory=lambda: remote_deadline())
    max_pool_connections: int = 32


class RemoteTransport(Protocol):
    """Opaque objects at keys under one remote prefix. See the module docstring for the rules."""

    def describe(self) -> str:
        """The remote for messages: its URL (and endpoint), never credentials."""
        ...

    def get(self, key: str) -> bytes:
        """The whole object; RemoteKeyMissing if there is none."""
        ...

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start``; fewer only where the object ends sooner (b"" past
        its end). RemoteKeyMissing if there is no object."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """Size and etag of the object, or None if there is none."""
        ...

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """The object and the etag of exactly those bytes, or None if there is none."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write unconditionally (content-addressed objects: idempotent)."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create the object; PreconditionFailed if it exists. Returns the new etag."""
        ...

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Replace the object if its etag is still ``etag``; PreconditionFailed if it changed or
        is gone (never creates). Returns the new etag."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; removing a missing key is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix), lazily paginated; order is
        not promised."""
        ...

    def probe_conditional_writes(self) -> bool:
        """Whether the remote enforces If-None-Match and If-Match (checked on a scratch key)."""
        ...

    def close(self) -> None:
        """Release connections; the transport is not used afterwards."""
        ...


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid object key, else raise InvalidName.

    Segments must be non-empty and must not start with ``.`` (so no ``.``/``..`` and no hidden
    names: the file transport keeps its temporary and lock files there); no NUL or backslash,
    no leading or trailing ``/``.
    """
    if not isinstance(key, str) or not key:
        raise InvalidName(f"invalid remote key {key!r}: empty")
    _check_segments(key, key.split("/"), what="key")
    return key


def check_prefix(prefix: str) -> str:
    """Return a listing prefix if valid: like a key, but may be empty or end with ``/``."""
    if not isinstance(prefix, str):
        raise InvalidName(f"invalid remote prefix {prefix!r}")
    if prefix:
        segments = prefix.split("/")
        if segments[-1] == "":
            segments.pop()  # "refs/" lists a directory-like prefix
        # the last segment may be partial ("packs/ab"), but never a dot name
        _check_segments(prefix, segments, what="prefix")
    return prefix


def _check_segments(whole: str, segments: list[str], what: str) -> None:
    if "\x00" in whole or "\\" in whole:
        raise InvalidName(f"invalid remote {what} {whole!r}: NUL or backslash")
    if len(whole.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidName(f"invalid remote {what} {whole[:80]!r}...: longer than {MAX_KEY_BYTES}")
    for seg in segments:
        if not seg:
            raise InvalidName(f"invalid remote {what} {whole!r}: empty segment or leading '/'")
        if seg.startswith("."):
            raise InvalidName(f"invalid remote {what} {whole!r}: segment {seg!r} starts with '.'")


def run_probe(transport: RemoteTransport) -> bool:
    """The shared body of ``probe_conditional_writes``: a scratch key written with preconditions
    that must fail. Errors other than the expected PreconditionFailed propagate."""
    key = PROBE_PREFIX + uuid.uuid4().hex
    etag = transport.put_if_absent(key, b"probe 1")
    try:
        try:
            transport.put_if_absent(key, b"probe 2")
            return False  # If-None-Match: * ignored: the object was overwritten
        except PreconditionFailed:
            pass
        stale = etag + "0" if not etag.endswith('"') else etag[:-1] + '0"'
        try:
            transport.put_if_match(key, b"probe 3", stale)
            return False  # If-Match ignored
        except PreconditionFailed:
            pass
        got = transport.get_with_etag(key)
        return got is not None and got[0] == b"probe 1"
    finally:
        transport.delete(key)


@dataclass(frozen=True, slots=True)
class RemoteURL:
    """A parsed remote URL: ``scheme`` is "s3" (bucket, prefix) or "file" (path)."""

    scheme: str
    bucket: str = ""
    prefix: str = ""  # "" or ends with "/"
    path: Path | None = None


def parse_remote_url(url: str) -> RemoteURL:
    """Parse ``s3://BUCKET[/PREFIX]`` or ``file:///ABSOLUTE/DIR``; refuse anything else."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise UsageError(f"remote URL {url!r}: no query or fragment allowed")
    if parts.scheme == "s3":
        if "@" in parts.netloc:
            # don't echo it: what precedes '@' may be a secret
            raise UsageError("remote URL: credentials do not belong in an s3:// URL")
        bucket = parts.netloc
        if not _valid_bucket(bucket):
            raise UsageError(f"remote URL {url!r}: {bucket!r} is not a valid S3 bucket name")
        prefix = parts.path.strip("/")
        if prefix:
            try:
                check_key(prefix)
            except InvalidName as exc:
                raise UsageError(f"remote URL {url!r}: invalid prefix ({exc})") from exc
            prefix += "/"
        return RemoteURL("s3", bucket=bucket, prefix=prefix)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"remote URL {url!r}: file:// URLs name a local path (file:///DIR)")
        path = unquote(parts.path)
        if not path.startswith("/") or "\x00" in path:
            raise UsageError(f"remote URL {url!r}: file:// needs an absolute path (file:///DIR)")
        return RemoteURL("file", path=Path(path))
    raise UsageError(f"remote URL {url!r}: expected s3://BUCKET/PREFIX or file:///DIR")


def _valid_bucket(name: str) -> bool:
    ok = set("abcdefghijklmnopqrstuvwxyz0123456789.-")
    return (
        3 <= len(name) <= 63
        and set(name) <= ok
        and name[0].isalnum()
        and name[-1].isalnum()
        and ".." not in name
    )


DEFAULT_DEADLINE = 120.0


def remote_deadline() -> float:
    """`MLGITFS_REMOTE_DEADLINE` (seconds), else 120."""
    raw = os.environ.get("MLGITFS_REMOTE_DEADLINE")
    if raw is None:
        return DEFAULT_DEADLINE
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"MLGITFS_REMOTE_DEADLINE={raw!r}: expected seconds") from None
    if not value > 0:
        raise UsageError(f"MLGITFS_REMOTE_DEADLINE={raw!r}: must be more than 0")
    return value
