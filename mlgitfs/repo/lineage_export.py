"""The lineage graph for other tools: OpenLineage run events (a lineage server such as Marquez
takes them) and Graphviz dot (for people who would rather look than read).

A version made from inputs is a run: its job is the recording whose read set it carries (or
the repo's name), its inputs the input versions with, as a custom input facet, the files read
of each, and its output the version itself. Dataset names are `REPO@COMMIT` in the namespace
`mlgitfs`; ids are stable (a run's id derives from its commit id), so sending the events twice
names the same runs.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

from mlgitfs.meta import db, readsets
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.readset import ReadSet
from mlgitfs.repo.lineage import LineageNode
from mlgitfs.store.facade import Store

NAMESPACE = "mlgitfs"
PRODUCER = "urn:mlgitfs"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
READ_SET_FACET = "mlgitfs_readSet"
READ_SET_SCHEMA = "urn:mlgitfs:facets:ReadSetInputDatasetFacet:1"


def _walk(node: LineageNode) -> Iterator[LineageNode]:
    yield node
    for child in node.children:
        yield from _walk(child)


def dataset_name(repo: str, commit: ObjectId) -> str:
    return f"{repo}@{commit.hex()}"


def _time(time_ns: int) -> str:
    t = datetime.datetime.fromtimestamp(time_ns / 1e9, tz=datetime.UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _read_set(store: Store, commit: ObjectId) -> ReadSet | None:
    with store.env.read() as txn:
        return readsets.attached(txn, commit)


def run_events(store: Store, root: LineageNode) -> list[dict[str, Any]]:
    """One COMPLETE run event per version of the upstream graph `root` made from inputs,
    upstream first, each version once."""
    events: list[dict[str, Any]] = []
    seen: set[bytes] = set()
    for node in reversed(list(_walk(root))):
        if bytes(node.commit) in seen:
            continue
        seen.add(bytes(node.commit))
        commit = store.commit(node.commit)
        if not commit.inputs:
            continue
        rs = _read_set(store, node.commit)
        files = {(i.repo, bytes(i.commit)): i.files for i in rs.inputs} if rs else {}
        inputs = []
        for repo, input_id in commit.inputs:
            ds: dict[str, Any] = {"namespace": NAMESPACE, "name": dataset_name(repo, input_id)}
            read = files.get((repo, bytes(input_id)))
            if read is not None:
                ds["inputFacets"] = {
                    READ_SET_FACET: {
                        "_producer": PRODUCER,
                        "_schemaURL": READ_SET_SCHEMA,
                        "files": [{"path": f.path, "bytesRead": f.bytes_read} for f in read],
                    }
                }
            inputs.append(ds)
        events.append({
            "eventType": "COMPLETE",
            "eventTime": _time(commit.time_ns),
            "run": {"runId": str(uuid.UUID(bytes=bytes(node.commit)[:16], version=4))},
            "job": {"namespace": NAMESPACE, "name": rs.name if rs else node.repo},
            "inputs": inputs,
            "outputs": [{"namespace": NAMESPACE, "name": dataset_name(node.repo, node.commit)}],
            "producer": PRODUCER,
            "schemaURL": SCHEMA_URL,
        })  # fmt: skip
    return events


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_SHAPES = {"dataset": "cylinder", "labels": "note", "model": "box3d"}


def dot(store: Store, roots: list[LineageNode]) -> str:
    """A Graphviz digraph of the versions in `roots` (upstream and downstream trees): an edge
    from each input to the version made from it, labelled with the files read if known."""
    nodes: dict[bytes, LineageNode] = {}
    edges: set[tuple[bytes, bytes]] = set()
    for root in roots:
        for node in _walk(root):
            nodes.setdefault(bytes(node.commit), node)
    for key, node in nodes.items():
        for _repo, input_id in store.commit(node.commit).inputs:
            if bytes(input_id) in nodes:
                edges.add((bytes(input_id), key))
    with store.env.read() as txn:
        kinds = {r.name: str(r.kind) for r in db.list_repos(txn)}
    lines = ["digraph lineage {", "  rankdir=LR;", "  node [fontname=monospace];"]
    for _, node in sorted(nodes.items(), key=lambda kv: (kv[1].repo, kv[0])):
        label = f"{node.repo}@{node.commit.hex()[:12]}"
        if node.refs:
            label += "\n" + " ".join(node.refs)
        shape = _SHAPES.get(kinds.get(node.repo, ""), "ellipse")
        name = dataset_name(node.repo, node.commit)
        lines.append(f"  {_quote(name)} [label={_quote(label)}, shape={shape}];")
    for src, dst in sorted(edges):
        rs = _read_set(store, nodes[dst].commit)
        count = None
        if rs is not None:
            count = sum(len(i.files) for i in rs.inputs if bytes(i.commit) == src)
        a = dataset_name(nodes[src].repo, nodes[src].commit)
        b = dataset_name(nodes[dst].repo, nodes[dst].commit)
        attrs = f" [label={_quote(f'{count} files read')}]" if count is not None else ""
        lines.append(f"  {_quote(a)} -> {_quote(b)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"
