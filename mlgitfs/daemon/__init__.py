"""The FUSE daemon: serves an `FsView` over pyfuse3 + trio, one daemon per mount.

The only importer of pyfuse3. Modules:

- `fuse_ops`: the pyfuse3 `Operations` adapter (translation only, every handler guarded);
- `mount`: `mount()`, `unmount()` and the daemon entry point (`python -m mlgitfs.daemon`);
- `registry`: live mount records under the store's `mounts/` dir, `list_mounts()`.

Nothing is imported here, so `registry` can be used without loading pyfuse3.
"""
