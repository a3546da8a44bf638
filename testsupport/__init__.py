"""Support code shared by the test suite (tests/) and the benchmarks (bench/); not shipped.

- `s3server`: a real S3 server (SeaweedFS ``weed mini`` on 127.0.0.1), started and stopped
  by PID;
- `mounts`: find, stop and detach the mounts and daemons a test or benchmark started;
- `synth`: synthetic versions of up to millions of files, built through the library.

Imported from the repository root: ``python -m pytest`` and ``python -m bench`` put it on
``sys.path``; subprocesses are started with the root as their working directory or on
``PYTHONPATH``.
"""
