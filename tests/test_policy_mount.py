"""A writable mount's policies behind one interface (vfs/policy.py, vfs/mountpolicy.py):
mutability, the protected-branch rule and hooks, each through real system calls made by real
programs on a real mount and by a commit; their order; the caller reaching every policy."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
import trio

from mlgitfs import api
from mlgitfs.daemon import messages, protocol
from mlgitfs.daemon.control import serve_control
from mlgitfs.errors import PolicyError
from mlgitfs.model.ids import InodeNo, ObjectId
from mlgitfs.repo.gate import Gate
from mlgitfs.vfs.factory import open_checkout_view
from mlgitfs.vfs.mountpolicy import mount_policies
from mlgitfs.vfs.policy import Change, OwnerOnly, Policies, Proposal, Refusal, compose
from mlgitfs.vfs.types import ROOT_INODE, Caller
from tests.conftest import write_tree
from tests.test_hooks import head, hooks_toml, runs
from tests.wmount import OLD, Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter"]  # a fixture

PROTECTED = '[[branch]]\npattern = "main"\nprotected = true\n'


def _who(caller: Caller | None) -> str:
    return "-" if caller is None else f"{caller.uid}:{caller.gid}"


class Asked:
    """A policy double that notes what it was asked and answers as told."""

    def __init__(self, name: str, log: list[str], refuse: bool = False) -> None:
        self.name, self.log, self.refuse = name, log, refuse

    def check(self, change: Change) -> Refusal | None:
        self.log.append(f"{self.name} {change.op} {_who(change.caller)}")
        return Refusal(errno.EPERM, self.name, "no") if self.refuse else None

    def admit(self, proposal: Proposal) -> Gate | None:
        self.log.append(f"{self.name} admit {_who(proposal.caller)}")
        if self.refuse:
            raise PolicyError(f"{self.name} says no")
        return None


def test_composition_asks_in_order_and_the_first_refusal_wins() -> None:
    log: list[str] = []
    policies: Policies = compose(
        Asked("a", log), Asked("b", log, refuse=True), Asked("c", log, refuse=True)
    )
    who = Caller(1000, 100)
    refusal = policies.check(Change("write", "x", True, who))
    assert refusal is not None and refusal.policy == "b"
    with pytest.raises(PolicyError, match="b says no"):
        policies.admit(Proposal("ds", "main", ObjectId(b"\0" * 32), who))
    # c was never asked; every policy asked got the caller
    assert log == ["a write 1000:100", "b write 1000:100", "a admit 1000:100", "b admit 1000:100"]


def test_owner_policy_refuses_another_users_commit() -> None:
    owner = OwnerOnly(1000)
    assert owner.admit(Proposal("ds", "main", ObjectId(b"\0" * 32), Caller(1000, 1))) is None
    with pytest.raises(PolicyError, match="only uid 1000"):
        owner.admit(Proposal("ds", "main", ObjectId(b"\0" * 32), Caller(1001, 1)))


def test_a_mounts_policies_in_their_order(home: Path, tmp_path: Path) -> None:
    from mlgitfs.meta.db import Mutability

    api.init(home, "ds", "dataset", "strict")
    store = api.open_store(home)
    got = mount_policies(store, "ds", 0, Mutability.STRICT, lambda _: False)
    names = [type(p).__name__ for p in got.policies]
    assert names == [
        "OwnerOnly",
        "MutabilityPolicy",
        "ProtectedBranchPolicy",
        "SignedByPolicy",
        "HookPolicy",
    ]


# --- through a real mount -----------------------------------------------------------------


def _make(home: Path, tmp_path: Path, mutability: str, toml: str) -> None:
    mlgitfs(home, "init", "ds", "--kind", "dataset", "--mutability", mutability)
    files: dict[str, bytes | str] = {"a.txt": "one\n", "b.txt": "two\n", "c.txt": "three\n",
                                     "d.txt": "four\n"}  # fmt: skip
    if toml:
        files[".mlgitfs/hooks.toml"] = toml
    mlgitfs(home, "import", "ds@main", str(write_tree(tmp_path / "src", files, mtime_ns=OLD)),
            "-m", "first")  # fmt: skip


def _sh(mp: Path, script: str) -> str:
    """Run one shell command in the mount: "ok", or its error as the program printed it."""
    proc = subprocess.run(["sh", "-c", script], cwd=mp, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    return "ok" if proc.returncode == 0 else proc.stderr.strip()


def _syscalls(mp: Path) -> dict[str, str]:
    """write, rename-over, truncate and unlink of committed files, by real programs."""
    _sh(mp, "echo new > new.txt")
    return {
        "write": _sh(mp, "echo more >> a.txt"),
        "rename-over": _sh(mp, "mv new.txt b.txt"),
        "truncate": _sh(mp, "truncate -s 0 c.txt"),
        "unlink": _sh(mp, "rm d.txt"),
    }


CASES = {
    # mutability strict: a committed file's content never changes (EPERM at the call)
    "mutability": ("strict", "", ("write", "rename-over", "truncate"), 0, ""),
    # a protected branch: the draft is free, the commit is refused naming the rule
    "protected": ("mutable", PROTECTED, (), 36, "branch rule 'main' in .mlgitfs/hooks.toml"),
    # a failing pre-commit hook: the draft is free, the commit is refused with its output
    "hooks": ("mutable", "HOOK", (), 34, "pre-commit hook 'probe' failed (exit 3)"),
    "none": ("mutable", "", (), 0, ""),
}


@pytest.mark.fuse
@pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason()))
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_policy_on_system_calls_and_commit(
    home: Path, tmp_path: Path, mounter: Mounter, case: str
) -> None:
    mutability, toml, refused_calls, commit_code, says = CASES[case]
    if toml == "HOOK":
        toml = hooks_toml(tmp_path, "fail", '["pre-commit"]', timeout=10)
    _make(home, tmp_path, mutability, toml)
    mp = mounter("ds@main")
    before = head(home)
    got = _syscalls(mp)
    for call, outcome in got.items():
        if call in refused_calls:
            assert "Operation not permitted" in outcome, (call, outcome)
        else:
            assert outcome == "ok", (call, outcome)
    status = json.loads(mlgitfs(home, "status", str(mp), "--json").stdout)
    refused = {(op, path) for op, path, _ in status["refused"]}
    if refused_calls:  # the reasons reach status, as the writer's program saw EPERM
        assert ("write", "a.txt") in refused and ("rename", "b.txt") in refused, status
    out = mlgitfs(home, "commit", str(mp), "-m", "from the mount", check=False)
    assert out.returncode == commit_code, out.stderr
    assert says in out.stderr
    if commit_code:
        assert head(home) == before  # nothing moved; the overlay is kept
        changed = sorted(c["path"] for c in json.loads(
            mlgitfs(home, "status", str(mp), "--json").stdout)["changes"])  # fmt: skip
        assert changed == ["a.txt", "b.txt", "c.txt", "d.txt"]  # new.txt went over b.txt
        assert (mp / "a.txt").read_text() == "one\nmore\n"
    else:
        assert head(home) != before
        assert not (mp / "d.txt").exists()
        shown = api.cat(home, "ds@main:b.txt")
        want = b"two\n" if "rename-over" in refused_calls else b"new\n"
        assert b"".join(shown) == want


@pytest.mark.fuse
@pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason()))
def test_order_on_a_mount_mutability_then_protection_then_hooks(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    """All three apply: the system call meets mutability first; the commit meets the branch
    rule before any hook runs (the hook that would fail never starts)."""
    toml = PROTECTED + hooks_toml(tmp_path, "fail", '["pre-commit"]', timeout=10)
    _make(home, tmp_path, "strict", toml)
    mp = mounter("ds@main")
    assert "Operation not permitted" in _sh(mp, "echo more >> a.txt")
    assert _sh(mp, "echo new > new.txt") == "ok"
    out = mlgitfs(home, "commit", str(mp), "-m", "direct", check=False)
    assert out.returncode == 36, out.stderr
    assert runs(tmp_path) == []  # the hook never ran


async def test_the_caller_reaches_every_policy(home: Path, tmp_path: Path) -> None:
    """A FUSE request's caller (here given as the adapter gives it) and a control request's
    socket peer (SO_PEERCRED: this process) reach the policies, at the call and at commit."""
    api.init(home, "ds", "dataset", "mutable")
    api.import_dir(home, "ds@main", write_tree(tmp_path / "src", {"a.txt": b"a\n"}), "first")
    store = api.open_store(home)
    log: list[str] = []
    view = open_checkout_view(store, "ds", "main", 1 << 20, policies=(Asked("x", log),))
    path = str(tmp_path / "c.sock")
    try:
        a = view.lookup(ROOT_INODE, b"a.txt")
        me = f"{os.getuid()}:{os.getgid()}"
        fh = await view.open(InodeNo(a.ino), os.O_WRONLY, Caller(os.getuid(), 4242))
        await view.write(fh, 0, b"b")
        view.release(fh)
        # asked at open, and at the write by the handle's caller (the kernel gives none)
        assert log == [f"x write {os.getuid()}:4242"] * 2
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_control, path, {view.ref: view}, _forget)

            def client() -> None:
                r = protocol.call(path, messages.CommitRequest("changed"), view.ref)
                assert r.commit is not None

            await trio.to_thread.run_sync(client)
            nursery.cancel_scope.cancel()
    finally:
        view.close()
    assert log[2:] == [f"x commit {me}", f"x admit {me}"]
    assert b"".join(api.cat(home, "ds@main:a.txt")) == b"b\n"


async def _forget(entries: list[tuple[int, bytes]], inodes: list[int]) -> None:
    return None
