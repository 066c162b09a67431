"""S3 (and any S3-compatible store: MinIO, Ceph RGW) behind ``serving.storage.Storage``.

- Endpoint, bucket and prefix from configuration: ``s3://bucket/prefix`` names the
  bucket and prefix; the endpoint is ``VACINA_D1_S3_ENDPOINT_URL`` when set, else
  ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (as every AWS SDK reads them),
  else AWS itself. With a custom endpoint, path-style addressing (what MinIO and
  Ceph expect without wildcard DNS).
- Checksums: ``request_checksum_calculation`` and ``response_checksum_validation``
  are ``when_required``, so stores that do not implement the newer flexible
  checksums still accept our requests. Integrity is ours: the SHA-256 of every
  object is kept in its metadata (multipart ETags are not digests) and the
  publisher verifies each object by reading it back (``Storage.sha256``).
- Large files go up in parts (``TransferConfig``: threshold and part size
  configurable, so tests exercise multipart with a small file).
- Retries: botocore's own (``standard`` mode), and around every operation ours,
  with exponential backoff and jitter, on throttling (``SlowDown``, 429, 503), on
  any 5xx and on broken connections; an interrupted download resumes with a
  ranged GET from where it stopped.
"""

from __future__ import annotations

import functools
import os
import random
import time
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    ResponseStreamingError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.storage import CHUNK, ObjectInfo, ObjectNotFound, Storage, StorageError, check_key

T = TypeVar("T")

RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestLimitExceeded",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "ServerBusy",
        "500",
        "502",
        "503",
        "504",
    }
)
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Settings(BaseSettings):
    """``VACINA_D1_S3_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="VACINA_D1_S3_", extra="ignore")

    endpoint_url: str | None = None
    region: str | None = None
    # "path", "virtual" or "auto"; default: path with a custom endpoint, auto on AWS.
    addressing_style: str | None = None
    botocore_total_attempts: int = 4  # the first try included
    retry_mode: str = "standard"
    # Our retries around each operation (on top of botocore's).
    retries: int = 6
    backoff_base_seconds: float = 0.2
    backoff_max_seconds: float = 20.0
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024
    transfer_concurrency: int = 4
    max_pool_connections: int = 32
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    @property
    def resolved_endpoint_url(self) -> str | None:
        return self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _client_error(exc: BaseException) -> ClientError | None:
    return next((e for e in _causes(exc) if isinstance(e, ClientError)), None)


def error_code(exc: BaseException) -> tuple[str | None, int | None]:
    error = _client_error(exc)
    if error is None:
        return None, None
    code = error.response.get("Error", {}).get("Code")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status


def is_retryable(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, ClientError):
            code, status = error_code(cause)
            return code in RETRYABLE_CODES or (status is not None and (status >= 500 or status == 429))
        if isinstance(cause, (BotoConnectionError, HTTPClientError, IncompleteReadError, ResponseStreamingError)):
            return True
    return False


def _describe(exc: BaseException) -> str:
    code, status = error_code(exc)
    error = _client_error(exc)
    if code and error is not None:
        message = error.response.get("Error", {}).get("Message") or ""
        return f"{code}{f' (HTTP {status})' if status else ''}{f': {message}' if message else ''}"
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


class S3Storage(Storage):
    def __init__(self, bucket: str, prefix: str = "", *, settings: S3Settings | None = None, client: Any = None):
        if not bucket:
            raise StorageError("URL S3 sem bucket (use s3://bucket/prefixo)")
        self.settings = settings or S3Settings()
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client or self._make_client()
        self.transfer = TransferConfig(
            multipart_threshold=self.settings.multipart_threshold,
            multipart_chunksize=self.settings.multipart_chunksize,
            max_concurrency=self.settings.transfer_concurrency,
            use_threads=self.settings.transfer_concurrency > 1,
            preferred_transfer_client="classic",
        )
        self.sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_url(cls, url: str, *, settings: S3Settings | None = None) -> "S3Storage":
        parsed = urlparse(url)
        if parsed.scheme != "s3":
            raise StorageError(f"não é uma URL S3: {url!r}")
        return cls(parsed.netloc, parsed.path, settings=settings)

    def _make_client(self):
        s = self.settings
        endpoint = s.resolved_endpoint_url
        style = s.addressing_style or ("path" if endpoint else "auto")
        config = Config(
            signature_version="s3v4",
            retries={"mode": s.retry_mode, "total_max_attempts": s.botocore_total_attempts},
            s3={"addressing_style": style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=s.max_pool_connections,
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
        )
        region = s.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=config)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        return min(s.backoff_max_seconds, s.backoff_base_seconds * (2**attempt)) * random.uniform(0.5, 1.0)

    def _call(self, what: str, key: str, operation: Callable[[], T]) -> T:
        """Run one S3 operation with our retries; failures become one-line StorageErrors."""
        attempt = 0
        while True:
            try:
                return operation()
            except (ClientError, BotoCoreError, boto3.exceptions.Boto3Error) as exc:
                code, _status = error_code(exc)
                if code in NOT_FOUND_CODES:
                    raise ObjectNotFound(f"objeto não encontrado: s3://{self.bucket}/{key}") from exc
                if not is_retryable(exc) or attempt >= self.settings.retries:
                    tries = f" após {attempt + 1} tentativas" if attempt else ""
                    raise StorageError(f"S3 {what} s3://{self.bucket}/{key} falhou{tries}: {_describe(exc)}") from exc
                self.sleep(self._backoff(attempt))
                attempt += 1

    # -- Storage ----------------------------------------------------------------------------

    def put_file(self, key, path, *, content_type, content_encoding=None, metadata=None) -> ObjectInfo:
        full = self._key(key)
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": dict(metadata or {})}
        if content_encoding:
            extra["ContentEncoding"] = content_encoding
        self._call(
            "upload",
            full,
            lambda: self.client.upload_file(str(path), self.bucket, full, ExtraArgs=extra, Config=self.transfer),
        )
        return ObjectInfo(key, os.path.getsize(path), dict(metadata or {}), content_type, content_encoding)

    def put_bytes(self, key, data, *, content_type, metadata=None) -> ObjectInfo:
        full = self._key(key)
        self._call(
            "put",
            full,
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ContentType=content_type, Metadata=dict(metadata or {})
            ),
        )
        return ObjectInfo(key, len(data), dict(metadata or {}), content_type, None)

    def head(self, key: str) -> ObjectInfo | None:
        full = self._key(key)
        try:
            response = self._call("head", full, lambda: self.client.head_object(Bucket=self.bucket, Key=full))
        except ObjectNotFound:
            return None
        return ObjectInfo(
            key,
            int(response["ContentLength"]),
            dict(response.get("Metadata") or {}),
            response.get("ContentType"),
            response.get("ContentEncoding"),
        )

    def iter_range(self, key, start=0, end=None, chunk_size=CHUNK) -> Iterator[bytes]:
        full = self._key(key)
        position = start
        interrupted = 0
        while end is None or position <= end:
            params: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
            if position > 0 or end is not None:
                params["Range"] = f"bytes={position}-{'' if end is None else end}"
            try:
                response = self._call("get", full, functools.partial(self.client.get_object, **params))
            except StorageError as exc:
                if error_code(exc)[0] == "InvalidRange":  # at or past the end: nothing left
                    return
                raise
            body = response["Body"]
            try:
                for chunk in body.iter_chunks(chunk_size):
                    position += len(chunk)
                    yield chunk
                return
            except (BotoCoreError, OSError) as exc:
                retryable = isinstance(exc, OSError) or is_retryable(exc)
                if not retryable or interrupted >= self.settings.retries:
                    raise StorageError(f"S3 leitura de s3://{self.bucket}/{full} interrompida: {_describe(exc)}") from exc
                self.sleep(self._backoff(interrupted))
                interrupted += 1
            finally:
                body.close()

    def delete(self, key: str) -> None:
        full = self._key(key)
        self._call("delete", full, lambda: self.client.delete_object(Bucket=self.bucket, Key=full))

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        full = self.prefix + prefix
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if token:
                params["ContinuationToken"] = token
            page = self._call("list", full, functools.partial(self.client.list_objects_v2, **params))
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def presigned_get_url(self, key, *, expires_seconds, filename=None, content_type=None) -> str | None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            safe = filename.replace('"', "")
            params["ResponseContentDisposition"] = f'attachment; filename="{safe}"'
        if content_type:
            params["ResponseContentType"] = content_type
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=int(expires_seconds))
