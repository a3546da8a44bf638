"""The S3 remote transport: objects under ``s3://BUCKET/PREFIX`` on AWS or any S3-compatible store.

The only module of mlgitfs that imports boto3/botocore; their exceptions are translated here:

    NoSuchBucket                          -> RemoteNotFound
    403, missing or rejected credentials  -> RemoteDenied
    refused, timed out, broken connection -> RemoteUnreachable
    missing key on get/get_range          -> RemoteKeyMissing   (head, get_with_etag: None)
    412, 404 on If-Match, 409 conflict    -> PreconditionFailed (conditional puts only)
    anything else                         -> RemoteError

Credentials, region and endpoint come from the standard AWS chain (environment, profiles,
``AWS_ENDPOINT_URL``) unless ``endpoint_url`` is passed. Messages name the bucket, the key and
the endpoint, never credentials.

A conditional PUT whose reply is lost is retried by botocore, and the retry then fails its own
precondition: after PreconditionFailed a caller re-reads the key, and may find its own write.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import boto3
from boto3 import exceptions as b3e
from botocore import exceptions as bce
from botocore.config import Config

from mlgitfs.errors import (
    PreconditionFailed,
    RemoteDenied,
    RemoteError,
    RemoteKeyMissing,
    RemoteNotFound,
    RemoteUnreachable,
)
from mlgitfs.store.remote import ObjectInfo, TransportOptions, check_key, check_prefix, run_probe

log = logging.getLogger(__name__)
T = TypeVar("T")

_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AccountProblem",
    }
)
_MISSING_KEY_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3Transport:
    """A :class:`~mlgitfs.store.remote.RemoteTransport` over one S3 bucket and prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        options: TransportOptions | None = None,
    ) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self._bucket_seen = False  # set once the bucket is known to exist (see head)
        opts = options or TransportOptions()
        self.deadline = opts.deadline
        config = Config(
            max_pool_connections=opts.max_pool_connections,
            connect_timeout=opts.connect_timeout,
            read_timeout=opts.read_timeout,
            retries={"mode": "standard", "max_attempts": opts.max_attempts},
            tcp_keepalive=True,
            # S3-compatible stores differ in support of the newer default CRC trailers;
            # our objects are checked against their ids above this layer anyway
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # an explicit endpoint is usually S3-compatible: path style works everywhere
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        try:
            session = boto3.session.Session()
            self._client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)
        except bce.ProfileNotFound as exc:
            raise RemoteDenied(f"AWS profile not found: {exc.kwargs.get('profile')}") from exc
        except (bce.BotoCoreError, ValueError) as exc:
            # ValueError: a malformed endpoint URL; don't echo it, it may carry credentials
            raise RemoteError(
                f"cannot set up S3 access for s3://{bucket}: {type(exc).__name__}"
            ) from exc
        self._endpoint = _strip_userinfo(str(self._client.meta.endpoint_url))

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}"
        if "amazonaws.com" in self._endpoint:
            return where
        return f"{where} at {self._endpoint}"

    def close(self) -> None:
        self._client.close()

    # reads

    def _bounded(self, op: str, key: str, call: Callable[[], T]) -> T:
        """Run one read within the overall deadline (`TransportOptions.deadline`): a stalled
        server held a read for botocore's 5 tries of 60 s. The call runs on a thread of its
        own, left to botocore's timeouts when the deadline passes (a daemon thread: it never
        keeps a finished command alive)."""
        box: list[tuple[bool, Any]] = []
        done = threading.Event()

        def run() -> None:
            try:
                box.append((True, call()))
            except BaseException as exc:  # handed to the caller's thread below
                box.append((False, exc))
            finally:
                done.set()

        threading.Thread(target=run, name="mlgitfs-s3-read", daemon=True).start()
        if not done.wait(self.deadline):
            raise RemoteUnreachable(
                f"{self.describe()} did not answer {op} of {key or '/'} within "
                f"{self.deadline:g} s (the remote deadline: MLGITFS_REMOTE_DEADLINE)"
            )
        ok, value = box[0]
        if not ok:
            raise value
        return cast(T, value)

    def get(self, key: str) -> bytes:
        return self._bounded("get", key, lambda: self._get(key))

    def _get(self, key: str) -> bytes:
        k = self._key(key)
        with self._errors("get", key):
            resp = self._client.get_object(Bucket=self.bucket, Key=k)
            return bytes(resp["Body"].read())

    def get_range(self, key: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError(f"bad range start={start} length={length}")
        return self._bounded("get", key, lambda: self._get_range(key, start, length))

    def _get_range(self, key: str, start: int, length: int) -> bytes:
        k = self._key(key)
        if length == 0:
            if self.head(key) is None:
                raise self._missing(key)
            return b""
        with self._errors("get", key):
            try:
                resp = self._client.get_object(
                    Bucket=self.bucket, Key=k, Range=f"bytes={start}-{start + length - 1}"
                )
            except bce.ClientError as exc:
                if _status(exc) == 416:  # start at or past the end (or an empty object)
                    return b""
                raise
            data = bytes(resp["Body"].read())
        if "ContentRange" not in resp:
            data = data[start : start + length]  # a server that ignored Range sent it all
        return data

    def head(self, key: str) -> ObjectInfo | None:
        return self._bounded("head", key, lambda: self._head(key))

    def _head(self, key: str) -> ObjectInfo | None:
        k = self._key(key)
        with self._errors("head", key):
            try:
                resp = self._client.head_object(Bucket=self.bucket, Key=k)
            except bce.ClientError as exc:
                if _status(exc) != 404:
                    raise
                # HEAD has no body, so a missing bucket looks like a missing key: ask once
                self._check_bucket()
                return None
        return ObjectInfo(size=int(resp["ContentLength"]), etag=str(resp["ETag"]))

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        return self._bounded("get", key, lambda: self._get_with_etag(key))

    def _get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        try:
            with self._errors("get", key):
                resp = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
                return bytes(resp["Body"].read()), str(resp["ETag"])
        except RemoteKeyMissing:
            return None

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)  # here, not in the generator: a bad prefix fails at the call
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        cut = len(self.prefix)
        with self._errors("list", prefix or "/"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            pages_left = iter(pages)
            while True:
                page = self._bounded("list", prefix, lambda: next(pages_left, None))
                if page is None:
                    return
                for obj in page.get("Contents", ()):
                    yield str(obj["Key"])[cut:]

    # writes

    def put(self, key: str, data: bytes) -> None:
        k = self._key(key)
        with self._errors("put", key):
            self._client.put_object(Bucket=self.bucket, Key=k, Body=data)

    def put_if_absent(self, key: str, data: bytes) -> str:
        k = self._key(key)
        with self._errors("put", key, conditional=True):
            resp = self._client.put_object(Bucket=self.bucket, Key=k, Body=data, IfNoneMatch="*")
        return str(resp["ETag"])

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        k = self._key(key)
        with self._errors("put", key, conditional=True):
            resp = self._client.put_object(Bucket=self.bucket, Key=k, Body=data, IfMatch=etag)
        return str(resp["ETag"])

    def delete(self, key: str) -> None:
        k = self._key(key)
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=k)

    def probe_conditional_writes(self) -> bool:
        try:
            return run_probe(self)
        except RemoteError as exc:
            cause = exc.__cause__
            if isinstance(cause, bce.ClientError) and _status(cause) in (400, 501):
                # NotImplemented / an unknown header refused: no conditional writes here
                log.info("%s refuses conditional writes: %s", self.describe(), _code(cause))
                return False
            raise

    # internals

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _missing(self, key: str) -> RemoteKeyMissing:
        return RemoteKeyMissing(key, f"no object {key} in {self.describe()}")

    def _check_bucket(self) -> None:
        if self._bucket_seen:
            return
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except bce.ClientError as exc:
            if _status(exc) == 404:
                raise self._no_bucket() from exc
            raise
        self._bucket_seen = True

    def _no_bucket(self) -> RemoteNotFound:
        return RemoteNotFound(f"bucket {self.bucket} does not exist ({self.describe()})")

    @contextlib.contextmanager
    def _errors(self, op: str, key: str, conditional: bool = False) -> Iterator[None]:
        """Translate botocore's exceptions for one call on ``key`` (see the module docstring)."""
        where = f"{self.describe()} key {key}"
        try:
            yield
        except RemoteError:
            raise
        except bce.ClientError as exc:
            code, status = _code(exc), _status(exc)
            if code == "NoSuchBucket":
                raise self._no_bucket() from exc
            if status == 403 or code in _DENIED_CODES:
                raise RemoteDenied(
                    f"access denied: {op} {where} ({code}); check the AWS credentials "
                    "and their permissions"
                ) from exc
            if conditional and (
                status in (404, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict")
            ):
                # some servers (SeaweedFS) check the precondition before the bucket
                with self._errors("head bucket", key):
                    self._check_bucket()
                raise PreconditionFailed(f"conditional {op} of {where} lost ({code})") from exc
            if status == 404 and code in _MISSING_KEY_CODES and op != "list":
                raise self._missing(key) from exc
            if status == 501 and conditional:
                raise RemoteError(f"{self.describe()} does not support conditional writes") from exc
            raise translate(exc, op, where, self._endpoint) from exc
        except (bce.BotoCoreError, b3e.Boto3Error) as exc:
            raise translate(exc, op, where, self._endpoint) from exc


def translate(exc: Exception, op: str, where: str, endpoint: str) -> RemoteError:
    """The RemoteError for any exception of boto3 or botocore (see the module docstring);
    the caller chains it. `where` names the remote and key, `endpoint` the S3 endpoint."""
    name = type(exc).__name__
    if isinstance(exc, bce.ClientError):
        code, status = _code(exc), _status(exc)
        if code == "NoSuchBucket":
            return RemoteNotFound(f"{op} {where}: the bucket does not exist ({code})")
        if status == 403 or code in _DENIED_CODES:
            return RemoteDenied(
                f"access denied: {op} {where} ({code}); check the AWS credentials and their "
                "permissions"
            )
        if status in (404, 416):
            return RemoteKeyMissing(where, f"{op} {where}: no such object ({code})")
        if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return PreconditionFailed(f"conditional {op} of {where} lost ({code})")
        return RemoteError(f"{op} {where} failed: {code or name} (HTTP {status})")
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return RemoteDenied(
            f"no usable AWS credentials for {where} (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        )
    if isinstance(exc, bce.CredentialRetrievalError | bce.ProfileNotFound | bce.NoAuthTokenError):
        return RemoteDenied(f"AWS credentials could not be loaded for {where} ({name})")
    if isinstance(exc, bce.ConnectionError | bce.HTTPClientError | bce.IncompleteReadError):
        return RemoteUnreachable(
            f"cannot reach the S3 endpoint {endpoint} ({name}) for {op} of {where}"
        )
    if isinstance(exc, bce.ResponseStreamingError):
        return RemoteUnreachable(
            f"the S3 endpoint {endpoint} broke off a reply ({name}): {op} {where}"
        )
    # Any other botocore or boto3 error: a configuration or client-side failure. Its text
    # may carry parameters, never credentials, but stays out: the type names the problem.
    return RemoteError(f"{op} {where} failed: {name}")


def _code(exc: bce.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: bce.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _strip_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()
