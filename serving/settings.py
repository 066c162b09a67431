"""Where published data lives: the data home, the object storage and the catalog.

Read from environment variables (``VACINA_D1_*``); with nothing set, everything
lives under ``./var`` (a local directory for the files, SQLite for the catalog),
the embedded defaults a fresh machine runs with.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VACINA_D1_", extra="ignore")

    home: Path = Path("var")
    # A directory path, file:///path, or s3://bucket/prefix (AWS_ENDPOINT_URL honoured).
    storage_url: str | None = None
    # A SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg2://user@host/db.
    catalog_url: str | None = None

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or str((self.home / "storage").absolute())

    @property
    def resolved_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{(self.home / 'catalog.db').absolute()}"
