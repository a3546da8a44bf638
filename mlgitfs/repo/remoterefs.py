"""Deleting a ref on a remote (`push --delete`): the only ref removal a remote sees.

Order: read the remote ref with its ETag; refuse, unless forced, when it is not where this
store last saw it (its remote-tracking ref: someone pushed since, and deleting would drop
work we have never seen) or when it is the default branch; delete the key; then drop the
remote-tracking ref (one LMDB transaction, recorded in the reflog). The objects stay on the
remote for remote gc. Neither S3 nor a `file://` directory offers a delete conditional on
the ETag everywhere, so a push that lands between the read and the delete is deleted with
the ref (its objects stay, and the pusher's remote-tracking ref still names them: pushing
again restores it). A crash after the delete and before the local update leaves a stale
remote-tracking ref, which the next fetch removes.
"""

from __future__ import annotations

from mlgitfs.errors import NotFastForward, UnknownRef, UnsafeOperation
from mlgitfs.meta import db
from mlgitfs.model.ids import short_hex
from mlgitfs.model.revspec import BRANCH_QUALIFIER, DEFAULT_BRANCH, TAG_QUALIFIER
from mlgitfs.repo import remotes
from mlgitfs.repo.sync import RefUpdate, SyncOutcome, read_ref, set_tracking
from mlgitfs.store import packs
from mlgitfs.store.facade import Store


def delete_remote_ref(
    store: Store, repo: str, name: str, remote: str | None, force: bool = False
) -> SyncOutcome:
    """Delete branch (or tag) `name` of `repo` on the remote."""
    rec = remotes.choose(store, remote)
    with store.env.read() as txn:
        db.get_repo(txn, repo)
    t = store.remote.transport(rec)
    remotes.check_config(store, rec.url, t, create=False)
    remote_repo = rec.remote_repo(repo)
    if name.startswith((BRANCH_QUALIFIER, TAG_QUALIFIER)):
        names = [name]
    else:
        names = [BRANCH_QUALIFIER + name, TAG_QUALIFIER + name]
    for ref in names:
        current, _ = read_ref(t, packs.ref_key(remote_repo, ref))
        if current is not None:
            break
    else:
        raise UnknownRef(f"remote {rec.name} has no branch or tag {repo}@{name}")
    label = ref.split("/", 1)[1]
    if not force:
        if ref == BRANCH_QUALIFIER + DEFAULT_BRANCH:
            raise UnsafeOperation(
                f"{repo}@{label} is the default branch: clones of {repo} from {rec.name} "
                "check it out; delete it with --force"
            )
        with store.env.read() as txn:
            known = db.get_ref(txn, repo, remotes.tracking_ref(rec.name, ref))
        if known != current:
            seen = "never fetched" if known is None else f"last seen at {short_hex(known)}"
            raise NotFastForward(
                f"remote {repo}@{label} is at {short_hex(current)} ({seen} here): fetch and "
                "look first, or delete with --force"
            )
    t.delete(packs.ref_key(remote_repo, ref))
    set_tracking(store, repo, rec.name, {ref: None})
    out = SyncOutcome(rec.name, repo)
    out.updates.append(RefUpdate(ref, current, None, "deleted"))
    return out
