"""The FUSE daemon: serves an `FsView` over pyfuse3 + trio, one daemon process per mount.

The only importer of pyfuse3. Modules:

- `fuse_ops`: the pyfuse3 `Operations` adapter (translation only, every handler guarded);
- `mount`: the caller's side, `mount()` and `unmount()` (does not import pyfuse3);
- `serve`: the daemon process, `python -m mlgitfs.daemon` (`daemon_main`);
- `registry`: live mount records under the store's `mounts/` dir, `list_mounts()`.

Nothing is imported here, so `mount` and `registry` can be used without loading pyfuse3.
"""
