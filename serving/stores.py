"""Which store a URL names: the one place that knows every backend.

``serving.storage`` (the interface and the local directory) and ``serving.s3``
(which builds on that interface) never need each other's factory: a caller that
only has a URL asks here.
"""

from __future__ import annotations

from urllib.parse import urlparse

from serving.storage import LocalStorage, Storage, StorageError


def open_storage(url: str) -> Storage:
    """The store a URL names: a directory path, ``file:///path`` or ``s3://bucket/prefix``."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from serving.s3 import S3Storage  # boto3 is loaded only when S3 is used

        return S3Storage.from_url(url)
    if parsed.scheme in ("", "file"):
        return LocalStorage(parsed.path if parsed.scheme == "file" else url)
    raise StorageError(f"armazenamento não suportado: {url!r} (use um diretório, file:// ou s3://)")
