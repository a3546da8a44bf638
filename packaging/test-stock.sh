#!/usr/bin/env bash
# The FUSE tests against stock pyfuse3, as a plain `pip install` gets it (no mlgitfs patches):
# a second virtualenv, .venv-stock, with mlgitfs and its test tools, then the suites of real
# mounts (read-only and writable, local and from a remote) minus the long stress and crash
# runs, which packaging/test.sh runs against the patched build. Run after packaging/test.sh
# (it installs the system packages).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-stock/bin/python ] || python3 -m venv .venv-stock
.venv-stock/bin/python -m pip install -q --upgrade pip >/dev/null
.venv-stock/bin/python -m pip install -q -e '.[test]'
if ! .venv-stock/bin/python -c 'import pyfuse3, sys; sys.exit("+mlgitfs" in pyfuse3.__version__)'; then
    echo "test-stock.sh: .venv-stock holds a patched pyfuse3; remove .venv-stock" >&2
    exit 1
fi
.venv-stock/bin/mlgitfs doctor
exec .venv-stock/bin/python -m pytest -q -p no:cacheprovider \
    tests/test_daemon_mount.py tests/test_mount.py tests/test_writable_mount.py \
    tests/test_remote_mount.py tests/test_doctor.py "$@"
