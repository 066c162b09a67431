"""The S3 backend against a real HTTP S3 endpoint on loopback (moto's server),
with a real HTTP proxy injecting throttling, 5xx and cut downloads."""

from __future__ import annotations

import hashlib
import os
import urllib.request

import pytest

from serving.s3 import S3Settings, S3Storage
from serving.storage import ObjectNotFound, StorageError
from serving.stores import open_storage
from tests.s3_proxy import FaultyProxy


def storage_at(endpoint: str, bucket: str, prefix: str = "pfx", **settings) -> S3Storage:
    return S3Storage(bucket, prefix, settings=S3Settings(endpoint_url=endpoint, **settings))


def test_roundtrip_ranges_listing_metadata_and_presigned_get(s3_bucket, tmp_path):
    endpoint, bucket = s3_bucket
    store = storage_at(endpoint, bucket)
    data = os.urandom(300_000)
    source = tmp_path / "x.csv.gz"
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    info = store.put_file("d1/2026/11/21/x.csv.gz", source, content_type="application/gzip", metadata={"sha256": digest})
    assert info.size == len(data)
    head = store.head("d1/2026/11/21/x.csv.gz")
    assert head.size == len(data) and head.metadata == {"sha256": digest} and head.content_type == "application/gzip"
    assert store.get_bytes("d1/2026/11/21/x.csv.gz") == data
    assert b"".join(store.iter_range("d1/2026/11/21/x.csv.gz", 1000, 1999, chunk_size=77)) == data[1000:2000]
    assert b"".join(store.iter_range("d1/2026/11/21/x.csv.gz", len(data) - 5)) == data[-5:]
    assert store.sha256("d1/2026/11/21/x.csv.gz") == digest
    store.put_bytes("d1/2026/11/21/a.json", b"{}", content_type="application/json")
    store.put_bytes("d1/2026/11/22/b.json", b"{}", content_type="application/json")
    assert list(store.list_keys("d1/2026/11/21/")) == ["d1/2026/11/21/a.json", "d1/2026/11/21/x.csv.gz"]
    assert len(list(store.list_keys())) == 3
    # The prefix is really a prefix in the bucket.
    raw = store.client.list_objects_v2(Bucket=bucket)["Contents"]
    assert all(item["Key"].startswith("pfx/d1/") for item in raw)

    url = store.presigned_get_url(
        "d1/2026/11/21/x.csv.gz", expires_seconds=60, filename="x_2026-11-21.csv.gz", content_type="application/gzip"
    )
    assert "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url) as response:
        assert response.read() == data
        assert response.headers["Content-Type"] == "application/gzip"
        assert 'filename="x_2026-11-21.csv.gz"' in response.headers["Content-Disposition"]

    store.delete("d1/2026/11/21/x.csv.gz")
    assert store.head("d1/2026/11/21/x.csv.gz") is None
    with pytest.raises(ObjectNotFound):
        store.get_bytes("d1/2026/11/21/x.csv.gz")
    store.delete("d1/2026/11/21/x.csv.gz")  # no error when already gone


def test_empty_object_and_unsafe_keys(s3_bucket, tmp_path):
    store = storage_at(*s3_bucket)
    store.put_bytes("vazio.txt", b"", content_type="text/plain")
    assert store.get_bytes("vazio.txt") == b"" and store.sha256("vazio.txt") == hashlib.sha256(b"").hexdigest()
    assert list(store.iter_range("vazio.txt", 0, None)) == []
    for key in ("../escape", "/abs", "a/../../b", "dir/"):
        with pytest.raises(StorageError):
            store.put_bytes(key, b"x", content_type="text/plain")


def test_multipart_upload_keeps_our_sha256_and_reads_back(s3_bucket, tmp_path):
    endpoint, bucket = s3_bucket
    mb = 1024 * 1024
    store = storage_at(endpoint, bucket, multipart_threshold=5 * mb, multipart_chunksize=5 * mb)
    data = os.urandom(11 * mb)
    source = tmp_path / "grande.bin"
    source.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    store.put_file("grande.bin", source, content_type="application/gzip", metadata={"sha256": digest})
    etag = store.client.head_object(Bucket=bucket, Key="pfx/grande.bin")["ETag"].strip('"')
    assert etag.endswith("-3"), etag  # three parts: the ETag is no digest of the bytes
    assert store.head("grande.bin").metadata["sha256"] == digest
    assert store.sha256("grande.bin") == digest


def test_aws_endpoint_url_is_honoured(s3_bucket, monkeypatch):
    endpoint, bucket = s3_bucket
    monkeypatch.delenv("VACINA_D1_S3_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = open_storage(f"s3://{bucket}/via-env")
    assert isinstance(store, S3Storage) and store.client.meta.endpoint_url == endpoint
    store.put_bytes("k.txt", b"ok", content_type="text/plain")
    assert store.get_bytes("k.txt") == b"ok" and store.url == f"s3://{bucket}/via-env"


def test_explicit_endpoint_setting_wins(s3_bucket, monkeypatch):
    endpoint, bucket = s3_bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("VACINA_D1_S3_ENDPOINT_URL", endpoint)
    store = open_storage(f"s3://{bucket}")
    store.put_bytes("k.txt", b"ok", content_type="text/plain")
    assert store.get_bytes("k.txt") == b"ok"


@pytest.mark.parametrize("status,code", [(503, "SlowDown"), (500, "InternalError"), (503, "ServiceUnavailable")])
def test_throttling_and_5xx_are_retried_with_backoff(s3_bucket, tmp_path, status, code):
    endpoint, bucket = s3_bucket
    with FaultyProxy(endpoint) as proxy:
        # botocore's own retries off: what is proven here is ours.
        store = storage_at(proxy.url, bucket, botocore_total_attempts=1, retries=5, backoff_base_seconds=0.01)
        sleeps: list[float] = []
        store.sleep = sleeps.append
        proxy.failures = [(status, code)] * 3
        store.put_bytes("r.txt", b"dados", content_type="text/plain")
        assert proxy.failures_sent == 3 and len(sleeps) == 3
        assert sleeps[0] < sleeps[2] and all(s <= 0.04 for s in sleeps)  # exponential, capped by the base here
        proxy.failures = [(status, code)] * 2
        assert store.get_bytes("r.txt") == b"dados"
        proxy.failures = [(status, code)] * 2
        source = tmp_path / "f.bin"
        source.write_bytes(b"x" * 1000)
        store.put_file("f.bin", source, content_type="application/octet-stream")
        assert store.head("f.bin").size == 1000
        # Beyond our retries: one clear line.
        proxy.failures = [(status, code)] * 20
        with pytest.raises(StorageError) as info:
            store.put_bytes("r2.txt", b"x", content_type="text/plain")
        assert code in str(info.value) and "6 tentativas" in str(info.value) and "\n" not in str(info.value)


def test_botocore_retries_also_absorb_throttling(s3_bucket):
    endpoint, bucket = s3_bucket
    with FaultyProxy(endpoint) as proxy:
        store = storage_at(proxy.url, bucket, botocore_total_attempts=4, retries=0)
        proxy.failures = [(503, "SlowDown")] * 2
        store.put_bytes("b.txt", b"ok", content_type="text/plain")
        assert proxy.failures_sent == 2


def test_cut_download_resumes_with_a_ranged_get(s3_bucket):
    endpoint, bucket = s3_bucket
    data = os.urandom(200_000)
    with FaultyProxy(endpoint) as proxy:
        store = storage_at(proxy.url, bucket, botocore_total_attempts=1, backoff_base_seconds=0.01)
        store.put_bytes("c.bin", data, content_type="application/octet-stream")
        proxy.truncate_gets = 1
        proxy.requests.clear()
        assert store.get_bytes("c.bin") == data
        gets = [path for method, path in proxy.requests if method == "GET"]
        assert len(gets) == 2


def test_non_retryable_errors_fail_at_once(s3_bucket):
    endpoint, _bucket = s3_bucket
    store = storage_at(endpoint, "balde-que-nao-existe", retries=5)
    sleeps: list[float] = []
    store.sleep = sleeps.append
    with pytest.raises(StorageError) as info:
        store.put_bytes("x.txt", b"x", content_type="text/plain")
    assert "NoSuchBucket" in str(info.value) and sleeps == []
