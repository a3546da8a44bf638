"""A commit id (or prefix) names a commit of the repo it is given with, never one of another
repo of the store; an `--input` must be a commit of the repo it names (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import AlreadyExists, RemoteError, UnknownRef
from mlgitfs.model.ids import to_hex
from mlgitfs.repo import refs
from tests.conftest import write_tree


def two_repos(home: Path, tmp_path: Path) -> tuple[str, str]:
    api.init(home, "a", "dataset", "mutable")
    api.init(home, "b", "dataset", "mutable")
    ra = api.import_dir(home, "a", write_tree(tmp_path / "sa", {"x.txt": b"a\n"}), "a1")
    rb = api.import_dir(home, "b", write_tree(tmp_path / "sb", {"y.txt": b"b\n"}), "b1")
    return ra.commit.id, rb.commit.id


@pytest.mark.parametrize("length", [6, 12, 64])
def test_commit_id_resolves_within_the_named_repo(home: Path, tmp_path: Path, length: int) -> None:
    ca, cb = two_repos(home, tmp_path)
    store = api.open_store(home)
    assert to_hex(refs.resolve(store, f"b@{cb[:length]}").commit_id) == cb
    with pytest.raises(UnknownRef, match=f"a has no branch, tag or commit '{cb[:length]}'"):
        refs.resolve(store, f"a@{cb[:length]}")
    with pytest.raises(UnknownRef):
        list(api.ls(home, f"a@{cb[:length]}"))


def test_commit_of_a_deleted_branch_still_resolves(home: Path, tmp_path: Path) -> None:
    """Its reflog keeps it in the repo's history, so deleted work can be named."""
    ca, _ = two_repos(home, tmp_path)
    api.branch_create(home, "a@side")
    side = api.import_dir(home, "a@side", write_tree(tmp_path / "s2", {"z": b"z\n"}), "side")
    api.branch_delete(home, "a@side", force=True)
    store = api.open_store(home)
    assert to_hex(refs.resolve(store, f"a@{side.commit.id[:10]}").commit_id) == side.commit.id


def test_input_must_belong_to_the_repo_it_names(home: Path, tmp_path: Path) -> None:
    ca, cb = two_repos(home, tmp_path)
    src = write_tree(tmp_path / "s3", {"x.txt": b"a2\n"})
    with pytest.raises(UnknownRef, match="b has no branch, tag or commit"):
        api.import_dir(home, "a", src, "a2", inputs=[f"b@{ca}"])
    store = api.open_store(home)
    assert to_hex(refs.resolve(store, "a@main").commit_id) == ca  # nothing changed
    done = api.import_dir(home, "a", src, "a2", inputs=[f"b@{cb[:8]}"])
    assert api.log(home, f"a@{done.commit.id}")[0].inputs == (("b", cb),)


@pytest.mark.parametrize(("first", "second"), [("feature", "feature/x"), ("feature/x", "feature")])
def test_nested_ref_names_refused_at_creation(
    home: Path, tmp_path: Path, first: str, second: str
) -> None:
    """`feature` and `feature/x` cannot coexist (a `file://` remote or git could not hold
    both): the second is refused, by branch, tag and import alike, and nothing changes."""
    two_repos(home, tmp_path)
    api.branch_create(home, f"a@{first}")
    with pytest.raises(AlreadyExists, match=f"a has a branch named '{first}'"):
        api.branch_create(home, f"a@{second}")
    with pytest.raises(AlreadyExists):
        api.import_dir(home, f"a@{second}", write_tree(tmp_path / "s4", {"q": b"q"}), "m")
    api.tag_create(home, f"a@t{first}")
    with pytest.raises(AlreadyExists, match=f"a has a tag named 't{first}'"):
        api.tag_create(home, f"a@t{second}")
    assert [b.name for b in api.branch_list(home, "a")] == sorted(["main", first])


def test_push_all_pushes_what_it_can(home: Path, tmp_path: Path) -> None:
    """A ref the remote cannot take (a `file://` remote already holding `feature/x` cannot
    hold `feature`) is reported; every other ref, main above all, is pushed."""
    url = (tmp_path / "remote").as_uri()
    other = tmp_path / "other"
    api.init(other, "ds", "dataset", "mutable")
    api.import_dir(other, "ds", write_tree(tmp_path / "s1", {"x": b"1"}), "v1")
    api.branch_create(other, "ds@feature/x")
    api.remote_add(other, "origin", url)
    api.push(other, "ds", all_refs=True)
    api.close_store(other)

    api.clone(home, url, "ds")
    api.branch_delete(home, "ds@feature/x", force=True)
    api.branch_create(home, "ds@feature")
    new = api.import_dir(home, "ds", write_tree(tmp_path / "s2", {"x": b"2"}), "v2")
    with pytest.raises(RemoteError, match="not pushed: heads/feature: ") as failed:
        api.push(home, "ds", all_refs=True)
    assert "pushed: heads/main" in failed.value.message
    remote_main = (tmp_path / "remote" / "refs" / "ds" / "heads" / "main").read_text()
    assert remote_main.strip() == new.commit.id
