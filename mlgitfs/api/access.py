"""Roles and access: the store's trust policy, edited and exported as S3 policy documents
(docs/governance.md, "Roles and access")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgitfs.api._common import open_store
from mlgitfs.errors import UsageError
from mlgitfs.meta import access as access_db
from mlgitfs.model.access import Grant, Policy, Role
from mlgitfs.model.ids import to_hex
from mlgitfs.model.signing import short_key_id
from mlgitfs.repo import access, accessexport, remotes, trust
from mlgitfs.store.remote import parse_remote_url


@dataclass(frozen=True, slots=True)
class GrantItem:
    identity: str
    role: str
    repo: str
    branch: str
    key: str = ""  # the short id of the identity's key in the policy ("" for none)


@dataclass(frozen=True, slots=True)
class AccessResult:
    seq: int  # the policy's version (0: never edited)
    digest: str  # of this version ("" for none)
    prev: str  # digest of the version it replaced
    grants: tuple[GrantItem, ...]
    protected: dict[str, tuple[str, ...]]  # repo -> protected branch patterns (branch rules)
    added: tuple[GrantItem, ...] = ()
    removed: tuple[GrantItem, ...] = ()


@dataclass(frozen=True, slots=True)
class AccessExportResult:
    format: str
    bucket: str
    prefix: str
    document: dict[str, Any]


def _items(grants: tuple[Grant, ...], policy: Policy) -> tuple[GrantItem, ...]:
    def key(identity: str) -> str:
        k = policy.key_of(identity)
        return short_key_id(k.key_id) if k is not None else ""

    return tuple(
        GrantItem(g.identity, g.role.label, g.repo, g.branch, key(g.identity)) for g in grants
    )


def _result(
    policy: Policy,
    protected: dict[str, tuple[str, ...]],
    added: tuple[Grant, ...] = (),
    removed: tuple[Grant, ...] = (),
) -> AccessResult:
    return AccessResult(
        policy.seq,
        to_hex(policy.digest) if policy.seq else "",
        to_hex(policy.prev),
        _items(policy.grants, policy),
        protected,
        _items(added, policy),
        _items(removed, policy),
    )


def access_show(home: Path | None, remote: str | None = None) -> AccessResult:
    """The store's policy (or the version of `remote`'s trusted here), and the protected
    branch patterns of each repo's branch rules."""
    store = open_store(home)
    policy = access.load(store)
    if remote is not None:
        rec = remotes.choose(store, remote)
        with store.env.read() as txn:
            signed = access_db.trusted(txn, rec.name)
        policy = signed.policy if signed is not None else Policy()
    return _result(policy, access.protected_patterns(store))


@dataclass(frozen=True, slots=True)
class AccessPublishResult:
    remote: str
    seq: int
    digest: str
    published: bool  # False: the remote held these grants already


def access_publish(home: Path | None, remote: str | None = None) -> AccessPublishResult:
    """Publish the store's policy as the remote's next version, signed by this store's
    signing key (an admin of the remote's current version)."""
    store = open_store(home)
    rec = remotes.choose(store, remote)
    t = store.remote.transport(rec)
    policy, new = trust.publish(store, rec, t)
    return AccessPublishResult(rec.name, policy.seq, to_hex(policy.digest), new)


def access_grant(
    home: Path | None, identity: str, role: str, repo: str = "*", branch: str = "**"
) -> AccessResult:
    """Give IDENTITY ROLE on the repos matching `repo` and the branches matching `branch`."""
    store = open_store(home)
    edit = access.grant(store, identity, Role.parse(role), repo, branch)
    return _result(edit.policy, {}, edit.added, edit.removed)


def access_revoke(
    home: Path | None,
    identity: str,
    role: str | None = None,
    repo: str | None = None,
    branch: str | None = None,
) -> AccessResult:
    """Remove IDENTITY's grants (only those of `role`, `repo` and `branch` when given)."""
    store = open_store(home)
    edit = access.revoke(store, identity, Role.parse(role) if role else None, repo, branch)
    return _result(edit.policy, {}, edit.added, edit.removed)


def _credentials(path: Path | None) -> dict[str, tuple[str, str]] | None:
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read credentials file {path}: {exc}") from exc
    out: dict[str, tuple[str, str]] = {}
    if isinstance(doc, dict):
        for ident, cred in doc.items():
            if not isinstance(cred, dict) or not all(
                isinstance(cred.get(k), str) and cred[k] for k in ("accessKey", "secretKey")
            ):
                raise UsageError(
                    f"{path}: the credentials of {ident!r} need accessKey and secretKey strings"
                )
            out[ident] = (cred["accessKey"], cred["secretKey"])
        return out
    raise UsageError(f"{path}: expected {{identity: {{accessKey, secretKey}}}}")


def access_export(
    home: Path | None,
    fmt: str,
    remote: str | None = None,
    bucket: str | None = None,
    prefix: str | None = None,
    credentials: Path | None = None,
) -> AccessExportResult:
    """The policy as S3 policy documents for the remote's bucket and prefix (or those
    given); repo names are the remote's (a clone under another local name is mapped)."""
    store = open_store(home)
    policy = access.load(store)
    protected = access.protected_patterns(store)
    if bucket is None or remote is not None:
        rec = remotes.choose(store, remote)
        url = parse_remote_url(rec.url)
        if url.scheme != "s3" and bucket is None:
            raise UsageError(f"remote {rec.name} ({rec.url}) is not on S3: give --bucket")
        protected = {rec.remote_repo(name): pats for name, pats in protected.items()}
        if bucket is None:
            bucket = url.bucket
            prefix = url.prefix if prefix is None else prefix
    prefix = (prefix or "").strip("/")
    prefix = prefix + "/" if prefix else ""
    target = accessexport.Target(bucket, prefix)
    doc = accessexport.export(policy, protected, target, fmt, _credentials(credentials))
    return AccessExportResult(fmt, bucket, prefix, doc)
