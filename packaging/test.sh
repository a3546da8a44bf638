#!/usr/bin/env bash
# Installs everything (system packages, .venv with test extras) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install.sh --test
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
