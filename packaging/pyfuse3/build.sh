#!/usr/bin/env bash
# Builds and installs pyfuse3 with mlgitfs.patch into the given Python environment.
#
# Why: a read-only mount serves immutable data, so it can let the kernel skip open and
# release altogether (answer open with ENOSYS once): a second training epoch then sends no
# request at all to the daemon. The kernel sends reads with fh 0 in that mode, and stock
# pyfuse3 passes only fh to `read`; the patch passes the inode instead of a zero fh.
# The patch also adds `pyfuse3.set_spin(ns)`: after each request, poll the FUSE fd that long
# before sleeping in trio, so a request that follows at once (a loader's next file) skips a
# sleep and a wake-up (mlgitfs/daemon/serve.py SPIN_NS). And `read` may return a list of
# buffers, sent with one writev (fuse_reply_iov) instead of being joined into a fresh copy;
# the kernel's copy of a reply runs without the GIL, so chunk loaders run meanwhile. And
# `opendir` may return a FileInfo: keep_cache then also sets cache_readdir
# (FOPEN_CACHE_DIR), so the kernel keeps an immutable directory's listing and a second
# walk sends no readdir. The build is marked with the local version
# "+mlgitfs.noopen.spin.iov.cachedir", which the daemon checks (mlgitfs/daemon/fuse_ops.py
# NO_OPEN, REPLY_IOV, CACHE_DIR); with stock pyfuse3 every mount still works, with one open
# and release per file opened, no polling and listings read again on every walk.
#
# Usage: bash packaging/pyfuse3/build.sh PYTHON
set -euo pipefail
python=${1:?usage: build.sh PYTHON}
here=$(cd "$(dirname "$0")" && pwd)
version=3.5.0
if "$python" -c "import pyfuse3, sys; sys.exit(0 if pyfuse3.__version__ == '$version+mlgitfs.noopen.spin.iov.cachedir' else 1)" 2>/dev/null; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip download -q --no-deps --no-binary :all: -d "$work" "pyfuse3==$version"
tar -xzf "$work/pyfuse3-$version.tar.gz" -C "$work"
patch -s -p1 -d "$work/pyfuse3-$version" < "$here/mlgitfs.patch"
SETUPTOOLS_SCM_PRETEND_VERSION="$version+mlgitfs.noopen.spin.iov.cachedir" \
    "$python" -m pip install -q --no-deps --force-reinstall "$work/pyfuse3-$version"
"$python" -c "import pyfuse3; print('pyfuse3', pyfuse3.__version__)" >&2
