"""The folder's small local state: which version of each day's file is on disk.

``<dest>/.vacina-d1/estado.json``, rewritten atomically (temp file + rename) after
each file, so a run cut at any point leaves a state that describes the folder.
A re-run compares the listing with it and downloads nothing that is already there.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

STATE_DIR = ".vacina-d1"
FORMAT_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class State:
    def __init__(self, dest: Path):
        self.dest = dest
        self.dir = dest / STATE_DIR
        self.path = self.dir / "estado.json"
        self.partial_dir = self.dir / "parcial"
        self.files: dict[str, dict] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                data = {}  # an unreadable state only costs a re-check of the files
            self.files = dict(data.get("arquivos", {}))

    @staticmethod
    def key(operation: str, day) -> str:
        return f"{operation}/{day}"

    def entry(self, operation: str, day) -> dict | None:
        return self.files.get(self.key(operation, day))

    def local_path(self, entry: dict) -> Path:
        # Stored with "/" so one state reads the same on Windows and Linux.
        return self.dest.joinpath(*entry["caminho"].split("/"))

    def is_current(self, remote) -> bool:
        """The same version is on disk, whole (size checked; the SHA-256 was on arrival)."""
        entry = self.entry(remote.operation, remote.day)
        if entry is None or entry.get("sha256") != remote.sha256:
            return False
        path = self.local_path(entry)
        try:
            return path.stat().st_size == remote.size
        except OSError:
            return False

    def record(self, remote, relative: str, when: str) -> None:
        self.files[self.key(remote.operation, remote.day)] = {
            "id": remote.id, "versao": remote.version, "sha256": remote.sha256, "bytes": remote.size,
            "registros": remote.rows, "nome": remote.name, "caminho": relative, "baixado_em": when,
        }
        self.save()

    def save(self) -> None:
        payload = {"versao_formato": FORMAT_VERSION, "arquivos": dict(sorted(self.files.items()))}
        atomic_write_bytes(self.path, json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8"))


class FolderLock:
    """One sync per folder at a time: an OS lock on ``.vacina-d1/trava`` (released by
    the OS if the process dies, so a crash leaves no stale lock)."""

    def __init__(self, dest: Path):
        self.path = dest / STATE_DIR / "trava"
        self.handle = None

    def __enter__(self) -> "FolderLock":
        from vacina_d1_client.errors import FolderBusy

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+b")
        try:
            if os.name == "nt":
                import msvcrt

                self.handle.seek(0)
                msvcrt.locking(self.handle.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.close()
            raise FolderBusy(f"outra execução do vacina-d1 sync está usando {self.path.parent.parent}; tente mais tarde") from None
        return self

    def __exit__(self, *exc) -> None:
        if os.name == "nt":
            import msvcrt

            self.handle.seek(0)
            try:
                msvcrt.locking(self.handle.fileno(), msvcrt.LK_UNLCK, 1)
            except OSError:
                pass
        self.handle.close()  # closing releases flock
