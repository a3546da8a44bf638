"""The shape of the imports (conventions, "Shape"): no import cycle in mlgitfs or its CLI, and
each third-party library imported in its one home, where its exceptions are translated.

Read from the source with ast, nothing imported. An import inside a function counts: it
runs when the function does, and a cycle it closes is a cycle that is only put off. An
import under `if TYPE_CHECKING:` does not: it never runs.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"mlgitfs": ROOT / "mlgitfs", "mlgitfs_cli": ROOT / "cli"}

# Each library's home: one module, or a package whose whole job is that library (click is
# the CLI, pyfuse3 the FUSE adapter). trio is the concurrency runtime ("trio only"), not a
# library behind a seam: any module of mlgitfs may use it; the CLI does not.
HOMES: dict[str, tuple[str, ...]] = {
    "blake3": ("mlgitfs/model/ids.py",),
    "boto3": ("mlgitfs/store/s3.py",),
    "botocore": ("mlgitfs/store/s3.py",),
    "cryptography": ("mlgitfs/model/signing.py",),
    "fsspec": ("mlgitfs/fsspec_fs.py",),
    "lmdb": ("mlgitfs/meta/env.py",),
    "msgpack": ("mlgitfs/model/codec.py",),
    "pyarrow": ("mlgitfs/merge/parquet.py",),
    "pyfastcdc": ("mlgitfs/store/chunker.py",),
    "zstandard": ("mlgitfs/store/compress.py",),
    "rich": ("cli/render.py",),
    "click": ("cli/",),
    "pyfuse3": ("mlgitfs/daemon/",),
    "trio": ("mlgitfs/",),
}


def _modules(packages: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name → its file, for every module of `packages` (name → directory)."""
    out = {}
    for name, top in packages.items():
        for p in sorted(top.rglob("*.py")):
            parts = [name, *p.relative_to(top).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = p
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, runtime: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements in `node`; with `runtime`, not those under `if TYPE_CHECKING:`
    (its `else:` runs, so it counts)."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    elif runtime and isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.orelse:
            yield from _imports(stmt, runtime)
    else:
        for child in ast.iter_child_nodes(node):
            yield from _imports(child, runtime)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement in `module` asks for (relative ones resolved;
    `from p import x` names p.x, which is a module or else an attribute of p)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, base] if base else parts)
    return [f"{base}.{a.name}" for a in node.names] + [base]


def import_graph(packages: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the modules of `packages` it imports at run time. Importing a.b.c runs a
    and a.b first: the packages on the way are edges too."""
    modules = _modules(packages)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        tree = ast.parse(path.read_text(), str(path))
        for node in _imports(tree, runtime=True):
            for target in _targets(node, name, is_package):
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    dotted = ".".join(parts[:i])
                    if dotted in modules and dotted != name:
                        edges.add(dotted)
        parent = name.rpartition(".")[0]
        if parent in modules:
            edges.add(parent)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        todo = [iter(sorted(graph[start]))]
        state[start] = 1
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_no_import_cycle() -> None:
    graph = import_graph(PACKAGES)
    assert len(graph) > 100 and any(graph.values())
    cycle = find_cycle(graph)
    assert cycle is None, "an import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_a_deferred_import_and_skips_type_checking(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.a import x\n"
        "def f():\n    from . import c\n"
    )
    (pkg / "c.py").write_text("def g():\n    from pkg.a import y\n")
    graph = import_graph({"pkg": pkg})
    assert graph["pkg.b"] == {"pkg", "pkg.c"}  # the TYPE_CHECKING import is no edge
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (pkg / "c.py").write_text("")
    assert find_cycle(import_graph({"pkg": pkg})) is None


def _third_party() -> dict[str, set[str]]:
    """Third-party library → the files (relative to the checkout) that import it, type-only
    imports included: a type from a library couples a module to it too."""
    own = {"__future__", *PACKAGES}
    found: dict[str, set[str]] = {}
    for path in _modules(PACKAGES).values():
        for node in _imports(ast.parse(path.read_text(), str(path)), runtime=False):
            if isinstance(node, ast.ImportFrom) and node.level:
                continue
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for name in names:
                top = name.split(".")[0]
                if top not in own and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_each_third_party_library_is_imported_in_its_home() -> None:
    found = _third_party()
    assert {"lmdb", "msgpack", "click"} <= set(found)
    unknown = sorted(set(found) - set(HOMES))
    assert unknown == [], (
        f"{unknown} imported by {[sorted(found[u]) for u in unknown]}: give each new library "
        "one home module (HOMES here), where its exceptions are translated"
    )
    stray = {
        lib: sorted(f for f in files if not any(f.startswith(h) for h in HOMES[lib]))
        for lib, files in found.items()
    }
    assert {lib: fs for lib, fs in stray.items() if fs} == {}, "import it in its home only"
    for lib, homes in HOMES.items():
        if lib in found and all(h.endswith(".py") for h in homes):
            assert len(found[lib]) == 1, f"{lib} is imported in {sorted(found[lib])}"
