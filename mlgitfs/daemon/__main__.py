"""Entry point of the mount daemon: `python -m mlgitfs.daemon MOUNTPOINT --fsname ... [...]`."""

from mlgitfs.daemon.serve import daemon_main

raise SystemExit(daemon_main())
