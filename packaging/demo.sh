#!/usr/bin/env bash
# The main job, end to end, on the embedded default (a local store in a temporary
# directory): installs everything, then versions a small generated dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/install.sh
exec .venv/bin/python packaging/demo.py "$@"
