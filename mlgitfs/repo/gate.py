"""Running a repo's hooks and checks at an event, on a candidate version.

A *gate* is one operation's run of the hooks that apply to its branch and events. Built-in
checks (repo/checks.py) read the candidate in this process; hook commands run against a
read-only view of the candidate (a mount of the candidate commit, or an exported directory
where FUSE is missing), made by the `ViewMaker` the caller passes in, once per gate and
only when a command is not answered from the cache.

A command runs as repo/hookrun.py describes (its environment, the changes on its stdin, its
process group and timeout, its output kept in files).

Results are cached by (the hook's definition digest, the candidate's tree id): passes of
commands, and every verdict of a built-in check (a deterministic function of both). A
timeout or a crash is never cached; nor is a command's failure (its environment may be
what failed).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mlgitfs.errors import HookRefused, PolicyError, UsageError
from mlgitfs.meta import db, hookresults
from mlgitfs.model.access import Policy
from mlgitfs.model.attestation import Attestation, PromotionAttestation
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import Commit
from mlgitfs.repo.attest import (
    Attester,
    Verified,
    check_body,
    satisfies,
    verify_all,
)
from mlgitfs.repo.attestroles import judge, policy_in_force
from mlgitfs.repo.checks import run_check
from mlgitfs.repo.diff import DiffEntry
from mlgitfs.repo.hookrun import Candidate, changes, run_command
from mlgitfs.repo.hooks import (
    BranchRule,
    ContentReader,
    Hook,
    HooksFile,
    check_candidate_file,
    load_hooks,
)
from mlgitfs.repo.protected import check_allowed
from mlgitfs.repo.staged import StagedView
from mlgitfs.store.facade import Store

log = logging.getLogger(__name__)


class ViewMaker(Protocol):
    """Makes a read-only directory holding `commit` of `repo`, for as long as it is open."""

    def open(self, repo: str, commit: ObjectId) -> AbstractContextManager[Path]: ...


@dataclass(frozen=True, slots=True)
class HookResult:
    name: str
    kind: str  # hook, check
    event: str
    status: str  # passed, failed, timed out, crashed, skipped
    code: int  # the command's exit status (-N: killed by signal N; 124: timed out)
    output: str
    cached: bool = False
    seconds: float = 0.0
    attested: str = ""  # satisfied by a valid attestation of this key (hex id): not run

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")


@dataclass
class Gate:
    """The hooks of one operation on `repo@branch`, read from `hooks` (the branch's head)."""

    store: Store
    hooks: HooksFile
    views: ViewMaker | None
    rule: BranchRule | None = None  # the branch's rule (protected, required checks)
    required: tuple[Hook, ...] = ()  # run at every pre- event, whatever their `events`
    via: str = "commit"  # the operation (see load)
    attester: Attester | None = None  # signs the passes (None: nothing is attested)
    results: list[HookResult] = field(default_factory=list)
    _pending: list[tuple[str, ObjectId, bool, str, int]] = field(default_factory=list)
    _passes: list[tuple[Hook, HookResult]] = field(default_factory=list)  # to attest
    _found: dict[ObjectId, list[Verified]] = field(default_factory=dict)  # by commit
    _policy: list[Policy | None] = field(default_factory=list)  # [the policy in force]

    @property
    def attests(self) -> bool:
        """Whether this gate's passes become attestations: a promotion, or a gate on a
        branch whose rule requires checks (docs/governance.md, "Attestations")."""
        return self.via == "promote" or bool(self.rule and self.rule.required_checks)

    def post_commit(self, c: Candidate) -> None:
        """post-commit hooks, once the branch moved: a failure is reported, never raised."""
        self.attest(c)
        self.run(c, ("post-commit",), refuse=False)
        self.flush()

    @classmethod
    def load(
        cls,
        store: Store,
        branch: str,
        head: ObjectId | None,
        views: ViewMaker | None,
        no_verify: bool = False,
        via: str = "commit",
        attester: Attester | None = None,
        rules: bool = True,
    ) -> Gate:
        """The gate of an operation on `branch`, whose hooks `head` holds (None: no hooks).
        With `no_verify`, no hook runs: PolicyError where the branch's rules forbid that.
        `via` names the operation (an import, a mount commit, a revert... a merge, a push,
        a promote): BranchProtected where the branch's rule forbids it to move the branch,
        unless `rules` is False (the caller judged the rule: a mount's policies)."""
        hooks = load_hooks(store, store.commit(head).tree) if head is not None else HooksFile()
        rule = hooks.rule(branch)
        required: tuple[Hook, ...] = ()
        if rules and rule is not None and rule.guarded:
            check_allowed(rule, branch, via)
        if via in ("merge", "promote"):
            required = tuple(hooks.required(branch))  # --no-verify never skips these
        if (via == "promote" or (via == "merge" and rule is not None and rule.guarded)) and (
            attester is None or attester.signer is None
        ):
            raise UsageError(
                f"moving {branch!r} is recorded by a signed promotion attestation and this "
                "store has no signing key (or several and none chosen): run `mlgitfs key "
                "generate` (or `mlgitfs config signing-key NAME`) first; nothing was changed"
            )
        if no_verify:
            if not hooks.allow_skip(branch):
                raise PolicyError(
                    f"--no-verify is not allowed on branch {branch!r} (allow_skip = false in "
                    ".mlgitfs/hooks.toml); nothing was changed"
                )
            hooks = HooksFile(rules=hooks.rules)
        return cls(store, hooks, views, rule, required, via, attester)

    def _applying(
        self, branch: str, events: Sequence[str], commands: bool | None, pre: bool = True
    ) -> list[Hook]:
        out: dict[str, Hook] = {}  # a hook of several of the events runs once
        for h in [*(self.required if pre else ()),
                  *(h for e in events for h in self.hooks.for_event(e, branch))]:  # fmt: skip
            if commands is None or bool(h.command) == commands:
                out.setdefault(h.name, h)
        return list(out.values())

    def record(self, repo: str, branch: str, c: Candidate, via: str) -> None:
        """Attest the checks `c` passed and, when it moved a protected `branch` (or was
        promoted), the promotion itself, naming per required check the key whose
        attestation satisfied it (after the move: docs/governance.md, its crash table)."""
        promoted: list[Attestation] = []
        if via == "promote" or (self.rule is not None and self.rule.guarded):
            assert self.attester is not None and self.attester.signer is not None  # load()
            me = self.attester.signer
            done = {r.name: r.attested or me for r in self.results if r.ok}
            checks = tuple(
                sorted({(h.name, done[h.name]) for h in self.required if h.name in done})
            )
            same = [
                v for v in self.verified(repo, c.commit)
                if v.ok and v.signer == me and isinstance(v.body, PromotionAttestation)
                and (v.body.branch, v.body.checks) == (branch, checks)
            ]  # fmt: skip
            if not same:  # promoted again on the same evidence: attested once
                promoted.append(
                    PromotionAttestation(
                        branch, via, c.commit, c.tree, c.base, checks, time.time_ns()
                    )
                )
        self.attest(c, promoted)

    def attest(self, c: Candidate, extra: Sequence[Attestation] = ()) -> None:
        """Sign and attach the passes of this gate's pre- events (when it attests), and
        `extra`; the passes are attested once."""
        passes, self._passes = self._passes, []
        if not extra and not (self.attests and passes):
            return  # most gates: nothing to sign, and no key is read
        me = self.attester.signer if self.attester is not None else None
        if self.attester is None or me is None:
            return
        bodies: list[Attestation] = []
        if self.attests:
            now = time.time_ns()
            mine = [v for v in self.verified(c.repo, c.commit) if v.signer == me]
            for h, res in passes:
                b = check_body(h, c.commit, c.tree, c.base, res.event, self.hooks.source, now)
                if not any(satisfies(v, h, self.hooks.source, c.commit, c.tree) for v in mine):
                    bodies.append(b)  # this key attested it already: not twice
        bodies.extend(extra)
        if bodies:
            self.attester.attach(c.repo, c.commit, bodies)

    def commit_steps(
        self, c: Candidate, events: tuple[str, ...]
    ) -> tuple[StagedCheck, CommandStep | None]:
        """`write_commit`'s `validate` and `gate` for a commit gated at `events`: the
        built-in checks read the staged candidate inside the commit's transaction (a refusal
        leaves nothing behind), after the candidate's own hooks file is checked to parse;
        commands run once its objects are in the store, before the branch moves (they read
        it through a view another process serves)."""
        commands = self._applying(c.branch, events, True)
        return StagedCheck(self, c, events), CommandStep(self, c, events) if commands else None

    # --- running -----------------------------------------------------------------------

    def run(
        self,
        c: Candidate,
        events: tuple[str, ...],
        reader: ContentReader | None = None,
        commands: bool | None = None,
        refuse: bool = True,
    ) -> None:
        """Run the hooks of the gate's events on `c`; HookRefused at the first failure when
        `refuse` (post- events only report)."""
        reader = reader or self.store
        todo = self._applying(c.branch, events, commands, pre=refuse)
        if not todo:
            return
        found: list[DiffEntry] | None = None
        stack: list[AbstractContextManager[Path]] = []
        view: Path | None = None
        try:
            for h in todo:
                event = next((e for e in events if h.applies(e, c.branch)), events[0])
                # A required check names the key whose attestation satisfied it: that
                # evidence first; for the rest the local cache is the cheaper look-up.
                if h in self.required:
                    res = self._attested(h, event, c) or self._cached(h, event, c)
                else:
                    res = self._cached(h, event, c)
                    res = res or (self._attested(h, event, c) if refuse else None)
                if res is None:
                    if found is None:
                        found = changes(reader, c.base_tree, c.tree)
                    if h.command:
                        if view is None:
                            view = self._view(c, stack)
                        res = self._command(h, event, c, found, view)
                    else:
                        t0 = time.monotonic()
                        v = run_check(h, reader, found)
                        status = "passed" if v.ok else "failed"
                        res = HookResult(
                            h.name, "check", event, status, 0 if v.ok else 1, v.output,
                            seconds=time.monotonic() - t0,
                        )  # fmt: skip
                        self._pending.append((h.digest, c.tree, v.ok, v.output, res.code))
                self.results.append(res)
                if refuse and res.status == "passed" and not res.attested:
                    self._passes.append((h, res))
                if not res.ok and refuse:
                    raise _refusal(res, c)
                if not res.ok:
                    log.warning("%s %s %r %s: %s", event, res.kind, h.name, res.status, res.output)
        finally:
            for cm in reversed(stack):
                cm.__exit__(None, None, None)

    def _view(self, c: Candidate, stack: list[AbstractContextManager[Path]]) -> Path:
        if self.views is None:
            raise HookRefused(
                f"hooks of {c.repo}@{c.branch} need a view of the candidate and none can be "
                "made here; nothing was changed"
            )
        cm = self.views.open(c.repo, c.commit)
        path = cm.__enter__()
        stack.append(cm)
        return path

    def verified(self, repo: str, commit: ObjectId) -> list[Verified]:
        """The attestations attached to `commit`, each verified (read once per gate)."""
        if commit not in self._found:
            tree = self.store.commit(commit).tree
            self._found[commit] = verify_all(self.attester, repo, commit, tree)
        return self._found[commit]

    def trusted(self, repo: str, commit: ObjectId, branch: str) -> list[Verified]:
        """`verified`, each judged by the trust policy in force for counting on `branch`
        (repo/attestroles.py: a signer without the role makes it invalid)."""
        if not self._policy:
            self._policy.append(policy_in_force(self.store))
        return [judge(self._policy[0], v, repo, branch) for v in self.verified(repo, commit)]

    def _attested(self, h: Hook, event: str, c: Candidate) -> HookResult | None:
        """A pass of `h` that a valid attestation on the candidate already states
        (repo/attest.py, the rule): it is not run again."""
        if self.attester is None or not self._exists(c.commit):
            return None
        for v in self.trusted(c.repo, c.commit, c.branch):
            if satisfies(v, h, self.hooks.source, c.commit, c.tree):
                out = f"attested by key {v.signer[:16]}"
                return HookResult(h.name, h.kind, event, "passed", 0, out, True, attested=v.signer)
        return None

    def _exists(self, commit: ObjectId) -> bool:
        # A merge candidate is checked inside its commit's transaction, before it exists:
        # nothing can be attached to it yet.
        with self.store.env.read() as txn:
            return db.has_object(txn, commit)

    def _cached(self, h: Hook, event: str, c: Candidate) -> HookResult | None:
        with self.store.env.read() as txn:
            hit = hookresults.get(txn, h.digest, c.tree)
        if hit is None:
            return None
        ok, output, code = hit
        status = "passed" if ok else "failed"
        return HookResult(h.name, h.kind, event, status, code, output, cached=True)

    def _command(
        self, h: Hook, event: str, c: Candidate, found: Sequence[DiffEntry], view: Path
    ) -> HookResult:
        t0 = time.monotonic()
        status, code, text = run_command(h, event, c, found, view)
        seconds = time.monotonic() - t0
        if status == "passed":
            self._pending.append((h.digest, c.tree, True, text, 0))
        log.info("%s hook %r on %s: %s in %.2fs", event, h.name, short_hex(c.tree), status, seconds)
        return HookResult(h.name, "hook", event, status, code, text, seconds=seconds)

    def flush(self) -> None:
        """Write the verdicts worth keeping to the cache (after the operation's own
        transaction, which they never share: a refusal aborts that one)."""
        if not self._pending:
            return
        with self.store.env.write() as txn:
            for digest, tree, ok, output, code in self._pending:
                hookresults.put(txn, digest, tree, ok, output, code)
        self._pending.clear()


def _refusal(res: HookResult, c: Candidate) -> HookRefused:
    what = {"failed": f"failed (exit {res.code})", "timed out": "timed out"}.get(res.status)
    if what is None:
        what = "crashed" + (
            f" (killed by {signal.Signals(-res.code).name})" if res.code < 0 else f" ({res.code})"
        )
    out = f":\n{res.output}" if res.output else " (no output)"
    cached = " (cached result)" if res.cached else ""
    return HookRefused(
        f"{res.event} {res.kind} {res.name!r} {what} on {c.repo}@{c.branch} "
        f"(candidate {short_hex(c.commit)}){cached}; nothing was changed{out}",
        res.name,
        res.event,
        res.output,
    )


@dataclass
class StagedCheck:
    gate: Gate
    candidate: Candidate
    events: tuple[str, ...]

    def __call__(self, staged: StagedView) -> None:
        self.candidate.commit = staged.commit_id
        check_candidate_file(staged, self.candidate.base_tree, self.candidate.tree)
        self.gate.run(self.candidate, self.events, staged, commands=False)


@dataclass
class CommandStep:
    gate: Gate
    candidate: Candidate
    events: tuple[str, ...]

    def __call__(self, cid: ObjectId, commit: Commit) -> None:
        self.candidate.commit = cid
        self.gate.run(self.candidate, self.events, self.gate.store, commands=True)


@dataclass(frozen=True, slots=True)
class HookOptions:
    """What an operation's caller says about hooks: how to make a view, and --no-verify."""

    views: ViewMaker | None = None
    no_verify: bool = False
    promotion: bool = False  # the operation is `mlgitfs promote`: it may move a protected branch
    attester: Attester | None = None  # signs passes and promotions (None: none are made)

    def gate(
        self, store: Store, branch: str, head: ObjectId | None, via: str = "commit",
        rules: bool = True,
    ) -> Gate:  # fmt: skip
        via = "promote" if self.promotion else via
        return Gate.load(store, branch, head, self.views, self.no_verify, via, self.attester, rules)
