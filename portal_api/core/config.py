"""Portal settings: environment variables ``VACINA_D1_*`` on top of the serving ones
(data home, storage and catalog URLs), so the portal reads exactly what the pipeline
publishes with nothing configured."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from serving.settings import ServingSettings

TOKEN_KEY_FILE = "portal-token.key"


class PortalSettings(ServingSettings):
    model_config = SettingsConfigDict(env_prefix="VACINA_D1_", extra="ignore")

    # Key of the HMAC that stores tokens (personal and bearer). When unset, a random
    # key is created once in the data home; changing it invalidates every token.
    token_key: SecretStr | None = None
    personal_token_days: int = Field(90, ge=1, le=730)
    access_token_seconds: int = Field(900, ge=60, le=86_400)

    page_size_default: int = Field(10, ge=1, le=100)
    # Download-log entries shown beside each file in a listing (the rest: /files/{id}/downloads).
    log_entries_per_file: int = Field(10, ge=1, le=100)
    max_body_bytes: int = Field(64 * 1024, ge=1024)

    # A presigned S3 URL lives this long; a new one is made for every request.
    presign_seconds: int = Field(60, ge=5, le=3600)

    # "Atualizar": re-run of a day through Dagster's GraphQL API, rate-limited per user.
    dagster_graphql_url: str = "http://127.0.0.1:3000/graphql"
    dagster_location: str = "vacina_d1"
    dagster_repository: str = "__repository__"
    dagster_job: str = "d1_uf_job"
    dagster_timeout_seconds: float = Field(10.0, gt=0, le=120)
    refresh_per_hour: int = Field(3, ge=0, le=1000)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    def resolved_token_key(self) -> bytes:
        if self.token_key is not None:
            key = self.token_key.get_secret_value().encode()
            if len(key) < 32:
                raise ValueError("VACINA_D1_TOKEN_KEY precisa de pelo menos 32 caracteres")
            return key
        return _home_key(self.home / TOKEN_KEY_FILE)


def _home_key(path: Path) -> bytes:
    """A random key kept in the data home (created once, readable only by its owner)."""
    path = path.absolute()
    if path.is_file():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_hex(32).encode())
    try:
        os.link(tmp, path)  # atomic and refuses to replace: the first writer wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes().strip()
