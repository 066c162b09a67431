"""Portal settings: environment variables ``VACINA_D1_*`` on top of the serving ones
(data home, storage and catalog URLs), so the portal reads exactly what the pipeline
publishes with nothing configured."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

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

    # -- issue 11: under load, attack and faults ------------------------------------------
    # Database connections of each worker process: a request holds at most one at a
    # time, and none while bytes stream; a request waiting longer than the timeout for
    # one gets 503.
    db_pool_size: int = Field(5, ge=1, le=200)
    db_max_overflow: int = Field(10, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(30.0, gt=0, le=300)
    # Behind nginx: the URI prefix of an ``internal`` location aliasing the local store.
    # Set, a download of the stored file answers with X-Accel-Redirect (nginx sends the
    # bytes, with Range) after the portal has authorised and logged it. S3 ignores it.
    accel_redirect_prefix: str | None = Field(None, pattern=r"^/[A-Za-z0-9._/-]*/$")
    # Request headers (request line included) larger than this get 431 before they are
    # read whole (the server protocol counts them; see portal_api.core.limits).
    max_header_bytes: int = Field(16 * 1024, ge=1024, le=1024 * 1024)
    # POST /token: attempts per minute per client_id and per address (429 beyond).
    token_attempts_per_minute: int = Field(10, ge=1, le=10_000)
    # Holder-transfer claims (POST /credenciais/titularidade) per user per day.
    holder_claims_per_day: int = Field(5, ge=1, le=1000)

    # -- issue 6: the credential-request workflow ------------------------------------------
    # Which credentials this instance serves files to: a production instance only
    # produção credentials (homologação ones authenticate but see no file).
    served_environment: Literal["producao", "homologacao"] = "producao"
    # The client address: the socket peer, unless it is one of these proxies (addresses or
    # CIDRs, comma-separated or JSON); then the rightmost untrusted hop of this header.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    forwarded_header: str = Field("X-Forwarded-For", pattern=r"^[A-Za-z0-9-]{1,64}$")
    # PEM roots (and intermediate ACs) certificates must chain to: a directory of
    # .pem/.crt/.cer files or one bundle. ICP-Brasil's in production; unset, no
    # certificate can be accepted.
    trust_store: Path | None = None
    # A CNES tbEstabelecimento dump (same variable as the pipeline's); unset, the shipped table.
    cnes_table: Path | None = None
    evidence_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024)
    evidence_max_files: int = Field(10, ge=1, le=100)
    drafts_per_user: int = Field(20, ge=1, le=1000)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: list[str]) -> list[str]:
        from portal_api.core.ip_ranges import parse_networks

        parse_networks(value)  # a bad entry stops the start-up with its name
        return value

    @property
    def trusted_proxy_networks(self):
        from portal_api.core.ip_ranges import parse_networks

        return parse_networks(self.trusted_proxies)

    @property
    def upload_max_bytes(self) -> int:
        """Body limit of the upload routes: one evidence file plus the multipart envelope."""
        return self.evidence_max_bytes + 64 * 1024

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
