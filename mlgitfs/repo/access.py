"""Roles in use: editing the store's trust policy, what a grant allows, which branches are
protected (docs/governance.md, "Roles and access").

A grant's repo glob and branch pattern are matched whole, as branch rule patterns are
(`*` and `?` within a segment, `**` across). Protected branches come from the repo's branch
rules only (`[[branch]]` with `protected` or `merges_only` in `.mlgitfs/hooks.toml`): a
branch is protected by the rule of its own head, so a repo's protected patterns are those of
the rules in the heads of all its branches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mlgitfs.errors import NotFound
from mlgitfs.meta import access as access_db
from mlgitfs.meta import db
from mlgitfs.model.access import Grant, Policy, Role, check_glob, check_identity
from mlgitfs.model.ids import ObjectId
from mlgitfs.repo.hooks import load_hooks
from mlgitfs.repo.keyring import Keyring
from mlgitfs.repo.mergerules import glob_pattern
from mlgitfs.store.facade import Store


def matches(glob: str, name: str) -> bool:
    return glob_pattern(glob, anywhere=False).match(name) is not None


def role_of(policy: Policy, identity: str, repo: str, branch: str | None = None) -> Role | None:
    """The highest role `identity` holds on `repo` (and `branch`, when given); None: none."""
    roles = [
        g.role
        for g in policy.of(identity)
        if matches(g.repo, repo) and (branch is None or matches(g.branch, branch))
    ]
    return max(roles) if roles else None


def may_move(policy: Policy, identity: str, repo: str, branch: str, protected: bool) -> bool:
    """Whether `identity` may move `repo@branch`: a writer an unprotected branch, a
    maintainer (or admin) any."""
    role = role_of(policy, identity, repo, branch)
    need = Role.MAINTAINER if protected else Role.WRITER
    return role is not None and role >= need


def admins(policy: Policy) -> tuple[str, ...]:
    return tuple(sorted({g.identity for g in policy.grants if g.role is Role.ADMIN}))


def load(store: Store) -> Policy:
    with store.env.read() as txn:
        return access_db.get(txn)


@dataclass(frozen=True, slots=True)
class Edit:
    policy: Policy  # the new version
    added: tuple[Grant, ...]
    removed: tuple[Grant, ...]


def grant(store: Store, identity: str, role: Role, repo: str, branch: str) -> Edit:
    """Give `identity` `role` on repo glob `repo` and branch pattern `branch`; a grant of
    another role on the same globs is replaced (one role per identity and scope). When the
    key ring knows a key of that name, the policy binds the identity to it (its signatures
    prove the identity); else the identity is one only the object store knows."""
    key = next((k.public for k in Keyring(store.home).known() if k.name == identity), None)
    new = Grant(
        check_identity(identity), role, check_glob(repo, "repo"), check_glob(branch, "branch")
    )
    with store.env.write() as txn:
        old = access_db.get(txn)
        same = tuple(
            g for g in old.grants if (g.identity, g.repo, g.branch) == (identity, repo, branch)
        )
        keys = old.keys if key is None else old.with_key(identity, key)
        if same == (new,) and keys == old.keys:
            return Edit(old, (), ())
        policy = old.successor(tuple(g for g in old.grants if g not in same) + (new,), keys)
        access_db.put(txn, policy)
    return Edit(policy, (new,), same)


def revoke(
    store: Store,
    identity: str,
    role: Role | None = None,
    repo: str | None = None,
    branch: str | None = None,
) -> Edit:
    """Remove `identity`'s grants (those of `role`, `repo` glob and `branch` pattern, when
    given: the globs are compared as written, not matched). NotFound when none is held."""
    check_identity(identity)
    with store.env.write() as txn:
        old = access_db.get(txn)
        gone = tuple(
            g
            for g in old.of(identity)
            if (role is None or g.role is role)
            and (repo is None or g.repo == repo)
            and (branch is None or g.branch == branch)
        )
        if not gone:
            what = " ".join(
                x
                for x in (
                    role.label if role else "",
                    f"repo {repo}" if repo else "",
                    f"branch {branch}" if branch else "",
                )
                if x
            )
            raise NotFound(
                f"{identity} holds no grant{' of ' + what if what else ''}; nothing was changed"
            )
        policy = old.successor(tuple(g for g in old.grants if g not in gone))
        access_db.put(txn, policy)
    return Edit(policy, (), gone)


def protected_patterns(
    store: Store, repos: Iterable[str] | None = None
) -> dict[str, tuple[str, ...]]:
    """For each repo of the store (or of `repos`): the patterns of the guarded branch rules
    in the heads of its branches, sorted (a repo without any maps to ())."""
    with store.env.read() as txn:
        names = [r.name for r in db.list_repos(txn)] if repos is None else list(repos)
        heads = {
            name: sorted({ObjectId(o) for _, o in db.list_refs(txn, name, "heads/")})
            for name in names
        }
    out: dict[str, tuple[str, ...]] = {}
    for name, commits in heads.items():
        found: set[str] = set()
        trees = {store.commit(c).tree for c in commits}
        for tree in trees:
            found.update(r.pattern for r in load_hooks(store, tree).rules if r.guarded)
        out[name] = tuple(sorted(found))
    return out
