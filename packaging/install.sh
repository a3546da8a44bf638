#!/usr/bin/env bash
# Installs what mlgitfs needs on a fresh Debian/Ubuntu machine: the FUSE 3 system packages,
# then a virtualenv in .venv with mlgitfs and its `tables` extra (pyarrow, for row-level merges
# of Parquet files), and, with --test, its test tools.
# Usage: bash packaging/install.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(fuse3 libfuse3-dev pkg-config gcc patch)
# A Python without venv or headers (Debian's own) needs them from packages too.
python3 -c 'import ensurepip, sysconfig, os, sys
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
    2>/dev/null || pkgs+=(python3-venv python3-dev)
# Test tools: stress-ng and fio run against writable mounts (tests/test_writable_stress.py).
if [ "${1:-}" = "--test" ]; then
    pkgs+=(stress-ng fio)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing system packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "${1:-}" = "--test" ]; then
    .venv/bin/python -m pip install -q -e '.[test,tables]'
else
    .venv/bin/python -m pip install -q -e '.[tables]'
fi
# pyfuse3 3.5.0 with mlgitfs's patches: faster mounts (packaging/pyfuse3/build.sh; `mlgitfs doctor`).
bash packaging/pyfuse3/build.sh .venv/bin/python \
    || echo "warning: could not build the patched pyfuse3; mounts use stock pyfuse3" >&2
echo "mlgitfs installed in .venv (.venv/bin/mlgitfs)" >&2
