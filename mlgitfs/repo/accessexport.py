"""The trust policy as S3 policy documents: one IAM identity policy per identity, for AWS
(`aws-iam`) or as a SeaweedFS identity configuration (`seaweedfs`, the `s3.json` that
`weed s3 -config` / `weed mini -s3.config` reads: identities whose attached policies are
the same documents).

What each role may do on the remote's keys (PREFIX is the remote's prefix; R a repo glob,
B a branch pattern of the grant):

- reader: read mlgitfs.toml, packs/*, meta/*, stmts/*, access/*, gc/*, refs/R/*, repos/R,
  retention/R, expired/R, erasures/R; list the bucket
- writer: also write packs/*, meta/*, stmts/*, tmp/probe-*, repos/R, refs/R/tags/*, and
  write and delete refs/R/heads/B
- maintainer: also write retention/R and erasures/R (an erasure makes every clone refuse
  those bytes: a maintainer's decision, like the rules of what is kept)
- admin: also write access/* (the policy object) and mlgitfs.toml, and run remote gc
  (write gc/* and expired/*, delete packs/*, meta/*, stmts/*, gc/*)

Protected branches (repo/access.py) are denied explicitly (Deny beats Allow in both stores)
to every identity whose grants there are below maintainer, so a writer of `*` cannot move
`main` while a maintainer grant on `main` still can. The AWS documents also deny any ref,
repo record, policy or config write that carries neither If-None-Match nor If-Match (the
`s3:if-none-match` / `s3:if-match` condition keys), so refs move only by compare-and-swap.
SeaweedFS evaluates no such keys: there the condition is left out (a Null condition on a
key it never sets would deny every write), and docs/governance.md says what that costs.

S3 resource patterns are coarser than ours: `*` in a resource crosses `/`, so a grant on
`dev/*` allows `dev/a/b` in the store; the client's checks hold the exact pattern.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlgitfs.errors import UsageError
from mlgitfs.model.access import Grant, Policy, Role
from mlgitfs.repo.access import matches

FORMATS = ("aws-iam", "seaweedfs")
IAM_VERSION = "2012-10-17"
POLICY_PREFIX = "mlgitfs-"
SHARED_READS = ("mlgitfs.toml", "packs/*", "meta/*", "stmts/*", "access/*", "gc/*")
SHARED_WRITES = ("packs/*", "meta/*", "stmts/*")  # content-addressed, checked on read
GC_WRITES = ("gc/*", "expired/*")  # remote gc (admins): its lease, records and expiry lists
GC_DELETES = ("packs/*", "meta/*", "stmts/*", "gc/*")
PROBE = "tmp/probe-*"  # `remote add` proves conditional writes on a scratch key here
PUT, DELETE, GET, LIST = "s3:PutObject", "s3:DeleteObject", "s3:GetObject", "s3:ListBucket"


@dataclass(frozen=True, slots=True)
class Target:
    bucket: str
    prefix: str  # "" or ends with "/"

    def obj(self, key: str) -> str:
        return f"arn:aws:s3:::{self.bucket}/{self.prefix}{key}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"


def _resource_glob(glob: str) -> str:
    # `**` and `*` both become S3's `*` (which crosses "/": see the module docstring)
    return glob.replace("**", "*")


def _allow(actions: list[str], resources: list[str], sid: str) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": sorted(set(resources))}


def _covers(grants: tuple[Grant, ...], repo: str, branch: str, role: Role) -> bool:
    return any(
        g.role >= role and matches(g.repo, repo) and matches(g.branch, branch) for g in grants
    )


def statements(
    policy: Policy,
    identity: str,
    protected: Mapping[str, tuple[str, ...]],
    target: Target,
    conditional: bool,
) -> list[dict[str, Any]]:
    """The IAM statements of `identity`'s grants; `conditional`: require If-None-Match or
    If-Match on the writes that must be compare-and-swap (AWS only)."""
    grants = policy.of(identity)
    if not grants:
        raise UsageError(f"{identity} holds no grant in the policy")
    t = target
    repos = sorted({_resource_glob(g.repo) for g in grants})
    reads = [t.obj(k) for k in SHARED_READS]
    for r in repos:
        reads += [t.obj(f"refs/{r}/*"), t.obj(f"repos/{r}"), t.obj(f"retention/{r}")]
        reads += [t.obj(f"expired/{r}"), t.obj(f"erasures/{r}")]
    # ListBucket on the whole bucket, unconditioned: without it (or with an s3:prefix
    # condition, which a HEAD does not carry) a missing key answers 403, not 404, and
    # "absent" could not be told from "denied".
    out = [_allow([GET], reads, "Read"), _allow([LIST], [t.bucket_arn], "List")]
    writes = [g for g in grants if g.role >= Role.WRITER]
    if not writes:
        return out
    puts = [t.obj(k) for k in SHARED_WRITES]
    refs = []
    for g in writes:
        r = _resource_glob(g.repo)
        puts += [t.obj(f"repos/{r}"), t.obj(f"refs/{r}/tags/*")]
        refs.append(t.obj(f"refs/{r}/heads/{_resource_glob(g.branch)}"))
        if g.role >= Role.MAINTAINER:
            puts += [t.obj(f"retention/{r}"), t.obj(f"erasures/{r}")]
        if g.role >= Role.ADMIN:
            puts += [t.obj("access/*"), t.obj("mlgitfs.toml"), *map(t.obj, GC_WRITES)]
    deletes = list(refs)
    if any(g.role >= Role.ADMIN for g in writes):
        deletes += map(t.obj, GC_DELETES)
    out += [
        _allow([PUT], puts + refs, "Write"),
        _allow([DELETE], deletes, "Delete"),
        _allow([GET, PUT, DELETE], [t.obj(PROBE)], "Probe"),
    ]
    denied = [
        t.obj(f"refs/{repo}/heads/{_resource_glob(pattern)}")
        for repo, patterns in sorted(protected.items())
        for pattern in patterns
        if any(matches(g.repo, repo) for g in writes)
        and not _covers(grants, repo, pattern, Role.MAINTAINER)
    ]
    if denied:
        out.append(
            {"Sid": "ProtectedBranches", "Effect": "Deny", "Action": [PUT, DELETE],
             "Resource": sorted(set(denied))}
        )  # fmt: skip
    if conditional:
        cas = [t.obj(k) for k in ("refs/*", "repos/*", "retention/*", "access/*", "mlgitfs.toml")]
        out.append(
            {
                "Sid": "CompareAndSwapOnly",
                "Effect": "Deny",
                "Action": [PUT],
                "Resource": cas,
                "Condition": {"Null": {"s3:if-none-match": "true", "s3:if-match": "true"}},
            }
        )
    return out


def document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": IAM_VERSION, "Statement": statements}


def export(
    policy: Policy,
    protected: Mapping[str, tuple[str, ...]],
    target: Target,
    fmt: str,
    credentials: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """`aws-iam`: {"policies": {identity: IAM policy document}}. `seaweedfs`: an s3.json
    ({"identities": [...], "policies": [...]}), each identity with the credentials given for
    it in `credentials` (identity -> (access key, secret key)), else none."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    if not policy.grants:
        raise UsageError("the access policy grants nothing: grant roles first")
    if not target.bucket:
        raise UsageError("no bucket to export for: give --bucket or an s3:// remote")
    aws = fmt == "aws-iam"
    docs = {
        ident: document(statements(policy, ident, protected, target, conditional=aws))
        for ident in policy.identities
    }
    if aws:
        return {"policies": docs}
    creds = credentials or {}
    unknown = sorted(set(creds) - set(docs))
    if unknown:
        raise UsageError(f"credentials for identities the policy does not name: {unknown}")
    return {
        "identities": [
            {
                "name": ident,
                "credentials": [{"accessKey": creds[ident][0], "secretKey": creds[ident][1]}]
                if ident in creds
                else [],
                "policyNames": [POLICY_PREFIX + ident],
            }
            for ident in docs
        ],
        "policies": [
            {"name": POLICY_PREFIX + ident, "content": json.dumps(doc, sort_keys=True)}
            for ident, doc in docs.items()
        ],
    }
