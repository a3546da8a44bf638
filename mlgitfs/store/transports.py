"""Opening the transport a remote URL names: the one module that knows every transport.

The seam (`RemoteTransport`) and URL parsing live in ``mlgitfs.store.remote``, which the
transports import; this module imports them, so no transport and the seam import each other.
"""

from __future__ import annotations

from mlgitfs.errors import UsageError
from mlgitfs.store.filestore import FileTransport
from mlgitfs.store.remote import RemoteTransport, TransportOptions, parse_remote_url


def open_transport(
    url: str, endpoint_url: str | None = None, options: TransportOptions | None = None
) -> RemoteTransport:
    """The transport for a remote URL. ``endpoint_url`` (S3 only) overrides the AWS chain's."""
    parsed = parse_remote_url(url)
    opts = options or TransportOptions()
    if parsed.scheme == "file":
        if endpoint_url is not None:
            raise UsageError("an endpoint URL applies to s3:// remotes only")
        assert parsed.path is not None
        return FileTransport(parsed.path)
    # imported here so that boto3 loads only for S3 remotes
    from mlgitfs.store.s3 import S3Transport

    return S3Transport(parsed.bucket, parsed.prefix, endpoint_url=endpoint_url, options=opts)
