"""The portal shares the catalog's database: one engine for both, serving's
migrations first (the portal's tables reference ``published_file``), then ours."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from serving import db as serving_db
from serving.catalog import Catalog

PACKAGE = "portal_api"


def upgrade(url: str) -> None:
    """Create or migrate the catalog's and the portal's tables (idempotent)."""
    serving_db.upgrade(Catalog.PACKAGE, url)
    serving_db.upgrade(PACKAGE, url)


class Database:
    def __init__(self, url: str, *, pool_size: int = 5, max_overflow: int = 10, pool_timeout: float = 30.0):
        self.url = url
        pool = {} if ":memory:" in url else {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout}
        self.engine: sa.Engine = serving_db.create_engine(url, **pool)
        self.catalog = Catalog(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self.sessions()

    def dispose(self) -> None:
        self.engine.dispose()
