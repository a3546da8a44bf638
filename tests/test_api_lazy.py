"""`mlgitfs.api` imports a verb's module only when the verb is used: every name it lists
resolves, the names it re-exports are exactly `__all__`, and importing the CLI (as
`mlgitfs merge --help` does) loads none of the verbs' machinery."""

from __future__ import annotations

import json
import subprocess
import sys

from mlgitfs import api
from mlgitfs.api import _where


def test_every_listed_name_resolves_to_its_module() -> None:
    where = _where()
    assert set(where) == set(api.__all__)
    for name in api.__all__:
        module, original = where[name]
        assert getattr(api, name) is getattr(sys.modules[module], original), name


def test_a_verb_named_like_its_module_stays_the_verb() -> None:
    import mlgitfs.api.doctor
    import mlgitfs.api.mounts

    assert callable(api.doctor) and callable(api.mounts)
    assert mlgitfs.api.doctor is api.doctor  # the package attribute is the verb


def test_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(api, "no_such_verb")


def test_importing_the_cli_imports_no_verb() -> None:
    code = (
        "import json, sys; import mlgitfs_cli.main; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('mlgitfs'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    heavy = {"mlgitfs.api.merging", "mlgitfs.repo.push", "mlgitfs.api.mounts", "mlgitfs.repo.gate"}
    assert not loaded & heavy, loaded & heavy
