"""The trust policy applied to the version a mount serves (docs/governance.md, "Trusted
history", "On a mount").

A mount serves refs of the store, whose history was judged when it was fetched: under
`trust = refuse` a fetch that breaks the remote's policy moves nothing, and under `warn` it
records each breach against its commit (meta/trustbreaches.py). So a mount does not verify
signatures again: it looks up the breaches recorded for its repo and, when there are any,
walks the served commit's history down to the lowest of them (generation numbers bound the
walk). A breach of scope `history` (a commit that breaks the policy) counts when the served
commit contains it; one of scope `version` (a ref moved by a key without the role) only when
it is the served commit itself, as a fresh clone of a later, rightful move would judge it.

Under `refuse` a version carrying a breach is not mounted (`TrustViolation`, exit 44); under
`warn` each is logged and the mount goes ahead; `off` checks nothing. History that reached
the store while `trust` was `off`, or before breaches were recorded, was never judged, and a
mount does not judge it either.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from mlgitfs.errors import TrustViolation
from mlgitfs.meta import trustbreaches
from mlgitfs.meta.trustbreaches import Breach
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.repo.graph import ensure_generations
from mlgitfs.repo.trustcheck import SHOWN, trust_mode
from mlgitfs.store.facade import Store

log = logging.getLogger(__name__)


def breaches_in(store: Store, found: dict[bytes, Breach], commit: ObjectId) -> list[str]:
    """The problems of `found` that the version `commit` carries (see the module note)."""
    out: list[str] = []
    own = found.get(bytes(commit))
    if own is not None:
        out += [*own.history, *own.version]
    history = {k: b for k, b in found.items() if b.history and k != bytes(commit)}
    if not history:
        return out
    floor = min(b.generation for b in history.values())
    ensure_generations(store, [commit])  # its ancestors have theirs too (graph.py)
    seen = {bytes(commit)}
    todo = [bytes(commit)]
    while todo:
        for p in store.commit(ObjectId(todo.pop())).parents:
            raw = bytes(p)
            if raw in seen:
                continue
            seen.add(raw)
            if raw in history:
                out += history[raw].history
            # below the lowest breach nothing can lead to one
            if ensure_generations(store, [p])[raw] > floor:
                todo.append(raw)
    return out


def check_served(store: Store, repo: str, commits: Iterable[ObjectId], what: str) -> None:
    """Judge the versions `commits` of `repo` a mount of `what` would serve by the breaches
    fetches recorded: `TrustViolation` under `trust = refuse`, logged under `warn`."""
    with store.env.read() as txn:
        mode = trust_mode(txn)
        found = trustbreaches.of_repo(txn, repo) if mode != "off" else {}
    if not found:
        return  # the common case: one empty scan
    problems: list[str] = []
    shown = list(dict.fromkeys(commits))
    for c in shown:
        problems += [p for p in breaches_in(store, found, c) if p not in problems]
    if not problems:
        return
    served = ", ".join(short_hex(c) for c in shown)
    if mode == "refuse":
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        raise TrustViolation(
            f"{what} ({served}) carries history that breaks the access policy of the remote "
            f"it was fetched from: {'; '.join(problems[:SHOWN])}{more}; nothing was mounted "
            "(it was fetched under trust = warn; `mlgitfs config trust warn` mounts it all "
            "the same)"
        )
    for p in problems:
        log.warning("%s: %s (trust = warn: mounted all the same)", what, p)
