"""Remotes of a store: adding (reachability, format and conditional-write checks), listing,
removing, and choosing the remote a command talks to.

A remote's record lives in LMDB ("remotes", see meta/remotes.py): URL, optional endpoint,
whether the remote enforces conditional writes (If-None-Match / If-Match), and the map of
local repo names to names on the remote (a clone may rename). No credential is ever stored:
S3 access comes from the standard AWS chain at each use.
"""

from __future__ import annotations

import logging
import re

from mlgitfs.errors import (
    AlreadyExists,
    InvalidName,
    PreconditionFailed,
    RemoteDenied,
    RemoteError,
    UnknownRepo,
    UsageError,
)
from mlgitfs.meta import access as access_db
from mlgitfs.meta import db
from mlgitfs.meta import remotes as remote_records
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model.ids import short_hex
from mlgitfs.store import packs
from mlgitfs.store.facade import Store
from mlgitfs.store.remote import RemoteTransport, parse_remote_url
from mlgitfs.store.transports import open_transport

log = logging.getLogger(__name__)

DEFAULT_REMOTE = "origin"
TRACKING = "remotes"  # remote-tracking refs: REPO NUL remotes/NAME/heads/BRANCH in "refs"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_remote_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InvalidName(
            f"invalid remote name {name[:80]!r}: use letters, digits, '.', '_' and '-'"
        )
    return name


def tracking_ref(remote: str, ref: str) -> str:
    """The local remote-tracking ref of a remote's `heads/B` or `tags/T`."""
    return f"{TRACKING}/{remote}/{ref}"


def no_conditional_writes(rec: RemoteRecord) -> RemoteError:
    return RemoteError(
        f"remote {rec.name} ({rec.url}) does not enforce conditional writes (a second create "
        "of a scratch key succeeded), so two pushers could both move one branch and lose "
        "commits; pushes to it are refused. Use a store with If-None-Match/If-Match support "
        "(AWS S3, SeaweedFS, MinIO) and run 'mlgitfs remote remove' + 'remote add' again"
    )


_checked: set[tuple[str, str]] = set()  # (store home, remote) pairs already checked here


def check_config(store: Store, rec_url: str, t: RemoteTransport, create: bool) -> None:
    """Check the remote's `mlgitfs.toml` against the store; write it if absent and `create`.

    Once per process and remote: the file is written once and never changes."""
    if (str(store.home), t.describe()) in _checked:
        return
    _check_config(store, rec_url, t, create)
    _checked.add((str(store.home), t.describe()))


def _check_config(store: Store, rec_url: str, t: RemoteTransport, create: bool) -> None:
    got = packs.get_capped_with_etag(t, packs.CONFIG_KEY, packs.RECORD_CAP)
    if got is None:
        if not create:
            raise RemoteError(f"{rec_url} is not an mlgitfs remote (no {packs.CONFIG_KEY})")
        try:
            t.put_if_absent(packs.CONFIG_KEY, packs.render_config(store.params))
            return
        except PreconditionFailed:  # another store initialized it meanwhile: check theirs
            got = packs.get_capped_with_etag(t, packs.CONFIG_KEY, packs.RECORD_CAP)
            if got is None:
                raise RemoteError(f"{rec_url}: {packs.CONFIG_KEY} appeared and vanished") from None
    fmt, params = packs.parse_config(got[0], rec_url)
    if fmt != packs.REMOTE_FORMAT:
        raise RemoteError(
            f"{rec_url} has remote format {fmt}; this mlgitfs reads {packs.REMOTE_FORMAT}"
        )
    if params != store.params:
        raise RemoteError(
            f"{rec_url} uses chunker parameters {params.as_list()}, the store at {store.home} "
            f"{store.params.as_list()}: their chunks would never match, so it is refused"
        )


def add(store: Store, name: str, url: str, endpoint_url: str | None = None) -> RemoteRecord:
    """Check the remote answers and enforces preconditions, then record it."""
    check_remote_name(name)
    parse_remote_url(url)
    with store.env.read() as txn:
        if remote_records.has_remote(txn, name):
            raise AlreadyExists(f"remote {name!r} already exists")
    t = open_transport(url, endpoint_url)
    try:
        conditional = _probe(t)
        check_config(store, url, t, create=conditional is True)
    finally:
        t.close()
    rec = RemoteRecord(name, url, endpoint_url, conditional)
    with store.env.write() as txn:
        remote_records.add_remote(txn, rec)
    return rec


def _probe(t: RemoteTransport) -> bool | None:
    """Whether the remote enforces conditional writes; None when these credentials may not
    write the probe's scratch key (a reader's clone): `writable` probes before a push."""
    try:
        return t.probe_conditional_writes()  # also proves the bucket is reachable
    except RemoteDenied as exc:
        log.info("%s: cannot probe conditional writes (%s)", t.describe(), exc.message)
        return None


def writable(store: Store, rec: RemoteRecord) -> RemoteRecord:
    """`rec` if its remote enforces conditional writes, probed now when `remote add` could
    not (RemoteDenied when these credentials may not write there); else refused."""
    if rec.conditional_writes is None:
        t = open_transport(rec.url, rec.endpoint_url)
        try:
            ok = t.probe_conditional_writes()
        finally:
            t.close()
        rec = RemoteRecord(rec.name, rec.url, rec.endpoint_url, ok, rec.repos)
        with store.env.write() as txn:
            remote_records.put_remote(txn, rec)
    if not rec.conditional_writes:
        raise no_conditional_writes(rec)
    return rec


def list_all(store: Store) -> list[RemoteRecord]:
    with store.env.read() as txn:
        return remote_records.list_remotes(txn)


def remove(store: Store, name: str) -> RemoteRecord:
    """Forget a remote, its cached indexes and its remote-tracking refs (the remote stays)."""
    with store.env.write() as txn:
        rec = remote_records.get_remote(txn, name)
        for repo in db.list_repos(txn):
            for ref, oid in list(db.list_refs(txn, repo.name, f"{TRACKING}/{name}/")):
                db.set_ref(txn, repo.name, ref, None, oid, f"remote remove {name}")
        remote_records.remove_remote(txn, name)
        access_db.forget(txn, name)  # its trusted policy and pin: a new remote starts afresh
    return rec


def choose(store: Store, name: str | None) -> RemoteRecord:
    """The named remote; else the only one; else `origin`."""
    with store.env.read() as txn:
        if name is not None:
            return remote_records.get_remote(txn, check_remote_name(name))
        recs = remote_records.list_remotes(txn)
    if len(recs) == 1:
        return recs[0]
    for r in recs:
        if r.name == DEFAULT_REMOTE:
            return r
    if not recs:
        raise UsageError(
            f"the store at {store.home} has no remote: add one with 'mlgitfs remote add NAME URL'"
        )
    names = ", ".join(r.name for r in recs)
    raise UsageError(f"several remotes ({names}) and none is 'origin': name the remote")


def _check_clone_source(store: Store, url: str, endpoint_url: str | None, repo: str) -> None:
    """Before a clone records anything or writes to the remote: it is an mlgitfs remote
    holding `repo` (a mistyped URL fails here, with no directory or record left behind)."""
    t = open_transport(url, endpoint_url)
    try:
        _check_config(store, url, t, create=False)
        if t.head(packs.repo_key(repo)) is None:
            raise UnknownRepo(f"{t.describe()} has no repo {repo!r}")
    finally:
        t.close()


def for_clone(
    store: Store, name: str, url: str, endpoint_url: str | None, local: str, remote_repo: str
) -> tuple[RemoteRecord, bool]:
    """The remote a clone uses, and whether it was added for it: an existing record with
    the same URL, or a new one once the URL is known to hold the repo."""
    with store.env.read() as txn:
        existing = remote_records.find_remote(txn, check_remote_name(name))
    if existing is None:
        _check_clone_source(store, url, endpoint_url, remote_repo)
        rec = add(store, name, url, endpoint_url)
    else:
        rec = existing
        if (rec.url, rec.endpoint_url) != (url, endpoint_url):
            raise AlreadyExists(
                f"remote {name!r} exists with another URL ({rec.url}); clone with --remote NAME"
            )
    if local != remote_repo and rec.remote_repo(local) != remote_repo:
        repos = tuple(sorted({**dict(rec.repos), local: remote_repo}.items()))
        rec = RemoteRecord(rec.name, rec.url, rec.endpoint_url, rec.conditional_writes, repos)
        with store.env.write() as txn:
            remote_records.put_remote(txn, rec)
    return rec, existing is None


def describe_move(old: bytes | None, new: bytes | None) -> str:
    return f"{short_hex(old) if old else 'nothing'} to {short_hex(new) if new else 'nothing'}"
