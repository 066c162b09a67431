"""Object storage behind one small interface: a local directory or S3.

Keys are ``/``-separated relative paths (``d1/2026/11/21/...``). Objects are
immutable once written: a new version of a file gets a new key, so a reader of
an older version is never disturbed and a failed publication leaves nothing
half-written under a key anyone lists.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator
from urllib.parse import urlparse

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

    def presigned_get_url(
        self, key: str, *, expires_seconds: int, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        """A short-lived URL a client can download from directly, or None when the
        backend has no such thing (the local directory: the API streams instead)."""
        return None

    def sha256(self, key: str) -> str:
        """SHA-256 of the stored bytes, read back from the store (not trusted from metadata)."""
        digest = hashlib.sha256()
        for chunk in self.iter_range(key):
            digest.update(chunk)
        return digest.hexdigest()


class LocalStorage(Storage):
    """A directory: each object a file, its metadata in a sidecar JSON. Writes go
    to a temporary file that is fsynced and renamed, so an object appears whole."""

    META_SUFFIX = ".meta.json"

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = str(self.root)

    def path_of(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write_atomically(self, target: Path, fill) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_file(self, key, path, *, content_type, content_encoding=None, metadata=None) -> ObjectInfo:
        target = self.path_of(key)
        meta = {"content_type": content_type, "content_encoding": content_encoding, "metadata": metadata or {}}

        def copy(handle: BinaryIO) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, handle, CHUNK)

        try:
            # The sidecar first: an object file without its sidecar never exists.
            self._write_atomically(target.with_name(target.name + self.META_SUFFIX), lambda h: h.write(json.dumps(meta).encode()))
            self._write_atomically(target, copy)
        except OSError as exc:
            raise StorageError(f"não foi possível gravar {key} em {self.root}: {exc.strerror or exc}") from exc
        return ObjectInfo(key, target.stat().st_size, dict(metadata or {}), content_type, content_encoding)

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


def open_storage(url: str) -> Storage:
    """The store a URL names: a directory path, ``file:///path`` or ``s3://bucket/prefix``."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        from serving.s3 import S3Storage

        return S3Storage.from_url(url)
    if parsed.scheme in ("", "file"):
        return LocalStorage(parsed.path if parsed.scheme == "file" else url)
    raise StorageError(f"armazenamento não suportado: {url!r} (use um diretório, file:// ou s3://)")
