#!/usr/bin/env bash
# Builds pyfuse3 with mlgitfs's patches and installs it into the given Python environment.
#
# The version is the one pyproject.toml pins (pyfuse3==X.Y.Z): the patches are made for it.
# They are applied in order, one feature each, its reason in its header:
#   01-noopen    read-only mounts let the kernel skip open and release (no-open mode)
#   02-spin      the request loop polls the FUSE fd briefly before sleeping
#   03-iov       a read answers with one writev of several buffers, without the GIL
#   04-cachedir  opendir's keep_cache makes the kernel cache a listing
# The build is marked with the local version "X.Y.Z+mlgitfs.noopen.spin.iov.cachedir", which
# the daemon reads (mlgitfs/daemon/pyfuse3_build.py) and `mlgitfs doctor` reports. With stock
# pyfuse3 every mount still works, without these gains (docs/mount.md, "Limits of the stack").
#
# Usage: bash packaging/pyfuse3/build.sh PYTHON
set -euo pipefail
python=${1:?usage: build.sh PYTHON}
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^ *"pyfuse3==\([0-9.]*\)".*/\1/p' "$here/../../pyproject.toml")
[ -n "$version" ] || { echo "build.sh: no pyfuse3==X.Y.Z pin in pyproject.toml" >&2; exit 1; }
patches=("$here"/[0-9][0-9]-*.patch)
features=$(for p in "${patches[@]}"; do basename "$p" .patch | cut -d- -f2; done | paste -sd.)
local_version="$version+mlgitfs.$features"
if "$python" -c "import pyfuse3, sys; sys.exit(0 if pyfuse3.__version__ == '$local_version' else 1)" 2>/dev/null; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip download -q --no-deps --no-binary :all: -d "$work" "pyfuse3==$version"
tar -xzf "$work/pyfuse3-$version.tar.gz" -C "$work"
for p in "${patches[@]}"; do
    patch -s -p1 -d "$work/pyfuse3-$version" < "$p"
done
SETUPTOOLS_SCM_PRETEND_VERSION="$local_version" \
    "$python" -m pip install -q --no-deps --force-reinstall "$work/pyfuse3-$version"
"$python" -c "import pyfuse3; print('pyfuse3', pyfuse3.__version__)" >&2
