"""Object storage behind one small interface: a local directory or S3.

Keys are ``/``-separated relative paths (``d1/2026/11/21/...``). Objects are
immutable once written: a new version of a file gets a new key, so a reader of
an older version is never disturbed and a failed publication leaves nothing
half-written under a key anyone lists.
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

CHUNK = 1024 * 1024
_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")


class StorageError(Exception):
    """The store failed or refused (after retries): one line saying what and where."""


class ObjectNotFound(StorageError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    content_encoding: str | None = None
    # SHA-256 of the stored bytes, when the store hashed them itself as it stored them
    # on a local disk (a read-back would only read the same page cache again).
    sha256_stored: str | None = None


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root or be ambiguous."""
    path = PurePosixPath(key)
    if not key or not _SAFE_KEY.match(key) or ".." in path.parts or key.endswith("/"):
        raise StorageError(f"chave de objeto inválida: {key!r}")
    return key


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Storage(abc.ABC):
    """Where published objects live."""

    url: str

    @abc.abstractmethod
    def put_file(
        self,
        key: str,
        path: str | os.PathLike,
        *,
        content_type: str,
        content_encoding: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectInfo:
        """Store a local file under ``key`` (whole or not at all)."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str, metadata: dict[str, str] | None = None) -> ObjectInfo:
        with tempfile.NamedTemporaryFile(prefix="vacina-d1-", delete=False) as handle:
            handle.write(data)
        try:
            return self.put_file(key, handle.name, content_type=content_type, metadata=metadata)
        finally:
            os.unlink(handle.name)

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """The object's size and metadata, or None when there is no such object."""

    @abc.abstractmethod
    def iter_range(self, key: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The object's bytes from ``start`` to ``end`` inclusive (HTTP Range semantics)."""

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_range(key))

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (no error when it does not exist)."""

    @abc.abstractmethod
    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under a prefix, in lexicographic order."""

    def temporary_files(self, prefix: str = "") -> Iterator[tuple[str, int, float]]:
        """Half-written objects an interrupted write left behind: (name, size, mtime).
        Nothing on stores whose writes are atomic by themselves (S3)."""
        return iter(())

    def delete_temporary(self, name: str) -> None:
        """Remove one of ``temporary_files``."""
        return None  # stores without temporaries have nothing to remove

    def presigned_get_url(
        self, key: str, *, expires_seconds: int, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        """A short-lived URL a client can download from directly, or None when the
        backend has no such thing (the local directory: the API streams instead)."""
        return None

    def deferred_sync(self) -> contextlib.AbstractContextManager[None]:
        """Writes inside may skip their own syncs; on exit everything they wrote is
        durable. Stores whose every write is durable (S3) have nothing to defer."""
        return contextlib.nullcontext()

    def sha256(self, key: str) -> str:
        """SHA-256 of the stored bytes, read back from the store (not trusted from metadata)."""
        digest = hashlib.sha256()
        for chunk in self.iter_range(key):
            digest.update(chunk)
        return digest.hexdigest()


def _syncfs(path: Path) -> None:
    """Make everything written to the filesystem holding ``path`` durable: data,
    inodes and the renamed names, in one call (Linux ``syncfs``; else ``sync``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syncfs(fd) == 0:
                return
        except (AttributeError, OSError):
            pass
        os.sync()
    finally:
        os.close(fd)


class LocalStorage(Storage):
    """A directory: each object a file, its metadata in a sidecar JSON. An object is
    written under a temporary name and renamed, so it appears whole.

    Durability: each write fsyncs its file, except inside ``deferred_sync``, where
    a day's thousands of objects are written without and one ``syncfs`` at the end
    makes all of them (and their names) durable — before the catalog commit that
    makes them visible. ``put_file`` hashes the bytes it stores (``sha256_stored``),
    and a file on the same filesystem is hard-linked (written in place, renamed)
    instead of copied."""

    META_SUFFIX = ".meta.json"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = str(self.root)
        self._deferred = 0
        self._lock = threading.Lock()

    def path_of(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[None]:
        with self._lock:
            self._deferred += 1
        try:
            yield
        finally:
            with self._lock:
                self._deferred -= 1
            _syncfs(self.root)

    def _sync_each(self) -> bool:
        return self._deferred == 0

    def _write_atomically(self, target: Path, fill) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                fill(handle)
                handle.flush()
                if self._sync_each():
                    os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _link_atomically(self, target: Path, source: Path) -> bool:
        """``source`` under ``target`` without copying it (a hard link, renamed into
        place); False when the filesystem cannot (another device, no hard links)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            os.link(source, tmp)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                return False
            raise
        try:
            if self._sync_each():
                with open(tmp, "rb") as handle:
                    os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True

    def put_file(self, key, path, *, content_type, content_encoding=None, metadata=None) -> ObjectInfo:
        target = self.path_of(key)
        meta = {"content_type": content_type, "content_encoding": content_encoding, "metadata": metadata or {}}
        digest = hashlib.sha256()

        def copy(handle: BinaryIO) -> None:
            with open(path, "rb") as source:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    handle.write(chunk)

        try:
            # The sidecar first: an object file without its sidecar never exists.
            self._write_atomically(target.with_name(target.name + self.META_SUFFIX), lambda h: h.write(json.dumps(meta).encode()))
            if self._link_atomically(target, Path(path)):
                with open(target, "rb") as stored:
                    while chunk := stored.read(CHUNK):
                        digest.update(chunk)
            else:
                self._write_atomically(target, copy)
        except OSError as exc:
            raise StorageError(f"não foi possível gravar {key} em {self.root}: {exc.strerror or exc}") from exc
        return ObjectInfo(
            key, target.stat().st_size, dict(metadata or {}), content_type, content_encoding, sha256_stored=digest.hexdigest()
        )

    def head(self, key: str) -> ObjectInfo | None:
        target = self.path_of(key)
        if not target.is_file():
            return None
        sidecar = target.with_name(target.name + self.META_SUFFIX)
        meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        return ObjectInfo(
            key,
            target.stat().st_size,
            meta.get("metadata", {}),
            meta.get("content_type"),
            meta.get("content_encoding"),
        )

    def iter_range(self, key, start=0, end=None, chunk_size=CHUNK) -> Iterator[bytes]:
        target = self.path_of(key)
        try:
            handle = open(target, "rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"objeto não encontrado: {key}") from None
        with handle:
            handle.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                chunk = handle.read(chunk_size if remaining is None else min(chunk_size, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, key: str) -> None:
        target = self.path_of(key)
        target.unlink(missing_ok=True)
        target.with_name(target.name + self.META_SUFFIX).unlink(missing_ok=True)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        keys = []
        for path in self.root.rglob("*"):
            if not path.is_file() or path.name.endswith(self.META_SUFFIX) or path.name.startswith("."):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                keys.append(key)
        yield from sorted(keys)

    def temporary_files(self, prefix: str = "") -> Iterator[tuple[str, int, float]]:
        base = self.root / prefix if prefix else self.root
        if not base.is_dir():
            return
        for path in base.rglob(".*.tmp"):  # _write_atomically's mkstemp names
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if path.is_file():
                yield path.relative_to(self.root).as_posix(), stat.st_size, stat.st_mtime

    def delete_temporary(self, name: str) -> None:
        path = (self.root / name).resolve()
        if self.root not in path.parents or not path.name.startswith(".") or not path.name.endswith(".tmp"):
            raise StorageError(f"não é um temporário do armazenamento: {name!r}")
        path.unlink(missing_ok=True)
