import errno
import hashlib
import os

import pytest

from serving.storage import LocalStorage, ObjectNotFound, StorageError
from serving.stores import open_storage


def test_local_storage_roundtrip_ranges_and_metadata(tmp_path):
    store = open_storage(str(tmp_path / "store"))
    assert isinstance(store, LocalStorage)
    data = bytes(range(256)) * 5000
    source = tmp_path / "x.bin"
    source.write_bytes(data)
    info = store.put_file(
        "d1/2026/x.csv.gz", source, content_type="text/csv", content_encoding="gzip", metadata={"sha256": "abc"}
    )
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


def _counting(monkeypatch):
    from serving import storage as storage_module

    calls = {"fsync": 0, "syncfs": 0}
    real_fsync, real_syncfs = os.fsync, storage_module._syncfs

    def fsync(fd):
        calls["fsync"] += 1
        real_fsync(fd)

    def syncfs(path):
        calls["syncfs"] += 1
        real_syncfs(path)

    monkeypatch.setattr(storage_module.os, "fsync", fsync)
    monkeypatch.setattr(storage_module, "_syncfs", syncfs)
    return calls


def test_deferred_sync_writes_many_objects_with_one_filesystem_sync(tmp_path, monkeypatch):
    store = LocalStorage(tmp_path / "store")
    sources = []
    for i in range(20):
        source = tmp_path / f"f{i}.csv.gz"
        source.write_bytes(os.urandom(1000 + i))
        sources.append(source)
    calls = _counting(monkeypatch)
    with store.deferred_sync():
        infos = [store.put_file(f"d1/x/{i}.gz", s, content_type="application/gzip") for i, s in enumerate(sources)]
        assert calls == {"fsync": 0, "syncfs": 0}
    assert calls == {"fsync": 0, "syncfs": 1}
    for info, source in zip(infos, sources):
        assert store.get_bytes(info.key) == source.read_bytes()
        assert info.sha256_stored == hashlib.sha256(source.read_bytes()).hexdigest() == store.sha256(info.key)
    # Outside the batch every write is durable on its own.
    store.put_file("d1/x/sozinho.gz", sources[0], content_type="application/gzip")
    assert calls["fsync"] == 2 and calls["syncfs"] == 1  # the sidecar and the object


def test_an_object_from_another_filesystem_is_copied_and_hashed_as_written(tmp_path, monkeypatch):
    from serving import storage as storage_module

    def no_link(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(storage_module.os, "link", no_link)
    store = LocalStorage(tmp_path / "store")
    source = tmp_path / "a.csv.gz"
    source.write_bytes(b"conteudo" * 1000)
    info = store.put_file("d1/y/a.gz", source, content_type="application/gzip")
    source.write_bytes(b"mudou")  # a copy: the stored object does not change with the source
    assert store.get_bytes("d1/y/a.gz") == b"conteudo" * 1000
    assert info.sha256_stored == hashlib.sha256(b"conteudo" * 1000).hexdigest()
    assert not [p for p in (tmp_path / "store").rglob("*.tmp")]
