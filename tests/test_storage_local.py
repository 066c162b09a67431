import hashlib

import pytest

from serving.storage import LocalStorage, ObjectNotFound, StorageError
from serving.stores import open_storage


def test_local_storage_roundtrip_ranges_and_metadata(tmp_path):
    store = open_storage(str(tmp_path / "store"))
    assert isinstance(store, LocalStorage)
    data = bytes(range(256)) * 5000
    source = tmp_path / "x.bin"
    source.write_bytes(data)
    info = store.put_file("d1/2026/x.csv.gz", source, content_type="text/csv", content_encoding="gzip", metadata={"sha256": "abc"})
    assert info.size == len(data)
    head = store.head("d1/2026/x.csv.gz")
    assert head.metadata == {"sha256": "abc"} and head.content_encoding == "gzip"
    assert store.get_bytes("d1/2026/x.csv.gz") == data
    assert b"".join(store.iter_range("d1/2026/x.csv.gz", 100, 199, chunk_size=7)) == data[100:200]
    assert b"".join(store.iter_range("d1/2026/x.csv.gz", len(data) - 3)) == data[-3:]
    assert store.sha256("d1/2026/x.csv.gz") == hashlib.sha256(data).hexdigest()
    assert list(store.list_keys("d1/")) == ["d1/2026/x.csv.gz"]
    assert store.presigned_get_url("d1/2026/x.csv.gz", expires_seconds=60) is None
    store.delete("d1/2026/x.csv.gz")
    assert store.head("d1/2026/x.csv.gz") is None
    with pytest.raises(ObjectNotFound):
        store.get_bytes("d1/2026/x.csv.gz")


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "", "dir/", "a b"])
def test_local_storage_refuses_unsafe_keys(tmp_path, key):
    store = LocalStorage(tmp_path)
    with pytest.raises(StorageError):
        store.put_bytes(key, b"x", content_type="text/plain")


def test_file_url_and_unknown_scheme(tmp_path):
    assert isinstance(open_storage(f"file://{tmp_path}"), LocalStorage)
    with pytest.raises(StorageError):
        open_storage("ftp://host/x")
