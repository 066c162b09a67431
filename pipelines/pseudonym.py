"""The keyed hash that turns a patient's CNS or CPF into ``co_paciente``.

``co_paciente`` is HMAC-SHA256 over the identifier, written as 64 lower-case hex
digits like the public files. The key is configuration, never code:
``VACINA_D1_PSEUDONYM_KEY`` (``PipelineSettings.pseudonym_key``) when set; else a
random key created once in the data home (``<home>/pseudonym.key``, mode 0600)
and reused by every later run. The file is created atomically (written aside,
then hard-linked into place, which fails instead of overwriting), so two
processes starting together end up with the same key. Losing the key changes
every ``co_paciente`` from then on: keep the file (or the variable) with the data.

Which identifier wins when a record carries both: the CPF. A person has one CPF
for life, while the same person may hold several CNS numbers (provisional ones,
duplicates later merged by the CadSUS), and the CPF is becoming the SUS's single
identifier. So with the CPF the same person gets the same ``co_paciente`` in
more files; a record carrying only a CNS still hashes its CNS (the CNS↔CPF link
lives in the CadSUS, which this project does not see). The message is tagged
with the identifier's kind (``cpf:``/``cns:``), so the two number spaces never
collide.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

import polars as pl

from pipelines.validation import CNS_COLUMN, CPF_COLUMN

KEY_FILE_NAME = "pseudonym.key"
_KEY_BYTES = 32
_MIN_KEY_CHARS = 16


class Pseudonymizer:
    """``co_paciente`` from CNS/CPF with one key; callable as ``validation.validate``'s
    ``pseudonymize``: takes the normalised frame, returns the hashes (null when the
    record has neither identifier)."""

    def __init__(self, key: bytes | str):
        key_bytes = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        if len(key_bytes) < _MIN_KEY_CHARS:
            raise ValueError(f"chave de pseudonimização curta demais (mínimo {_MIN_KEY_CHARS} caracteres)")
        self._key = key_bytes

    @classmethod
    def from_settings(cls, settings=None) -> "Pseudonymizer":
        return cls(load_key(settings))

    def hash_identifier(self, kind: str, digits: str) -> str:
        """The hash of one identifier (``kind`` is ``"cpf"`` or ``"cns"``, ``digits`` already normalised)."""
        return hmac.digest(self._key, f"{kind}:{digits}".encode("ascii", "replace"), hashlib.sha256).hex()

    def __call__(self, norm: pl.DataFrame) -> pl.Series:
        if CPF_COLUMN not in norm.columns and CNS_COLUMN not in norm.columns:
            return pl.Series("co_paciente", [None] * norm.height, dtype=pl.String)
        cpf = _id_column(norm, CPF_COLUMN)
        cns = _id_column(norm, CNS_COLUMN)
        message = norm.select(
            pl.when(cpf.is_not_null()).then(pl.lit("cpf:") + cpf).otherwise(pl.lit("cns:") + cns).alias("co_paciente")
        ).to_series()
        unique = message.drop_nulls().unique().to_list()
        key = self._key
        hashes = {text: hmac.digest(key, text.encode("ascii", "replace"), hashlib.sha256).hex() for text in unique}
        return message.replace_strict(hashes, default=None, return_dtype=pl.String).alias("co_paciente")

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymizer(<chave oculta>)"


def _id_column(norm: pl.DataFrame, name: str) -> pl.Expr:
    if name not in norm.columns:
        return pl.lit(None, pl.String)
    value = pl.col(name).cast(pl.String)
    return pl.when(value.str.len_chars() > 0).then(value)


def load_key(settings=None) -> bytes:
    """The configured key, or the data home's key file (created on first use)."""
    if settings is None:
        from pipelines.settings import PipelineSettings

        settings = PipelineSettings()
    configured = settings.pseudonym_key
    if configured is not None and configured.get_secret_value().strip():
        return configured.get_secret_value().strip().encode("utf-8")
    return key_from_file(Path(settings.home) / KEY_FILE_NAME)


def key_from_file(path: Path) -> bytes:
    """Read the key file, creating it (0600, atomically) when it does not exist yet."""
    path = Path(path)
    existing = _read_key_file(path)
    if existing is not None:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    key_text = secrets.token_hex(_KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key_text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # atomic and never overwrites: the first process wins
        except FileExistsError:
            pass
        except OSError:
            # No hard links on this file system: fall back to an exclusive create.
            _create_exclusive(path, key_text)
    finally:
        tmp.unlink(missing_ok=True)
    return _wait_for_key(path)


def _create_exclusive(path: Path, key_text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key_text + "\n")


def _wait_for_key(path: Path) -> bytes:
    # With the exclusive-create fallback another process may still be writing.
    for _ in range(50):
        key = _read_key_file(path)
        if key is not None:
            return key
        time.sleep(0.02)
    raise ValueError(f"arquivo de chave de pseudonimização vazio ou ilegível: {path}")


def _read_key_file(path: Path) -> bytes | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise ValueError(f"arquivo de chave de pseudonimização ilegível: {path}") from None
    return text.encode("ascii") if text else None
