"""The relational database the catalog and the portal share: engines and migrations.

SQLite is the embedded default; PostgreSQL is the production database. Each
package that owns tables (``serving`` for the catalog, ``portal_api`` for the
portal) keeps its own Alembic migrations and its own version table, so the two
evolve independently in one database.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config


def create_engine(url: str, **kwargs) -> sa.Engine:
    """An engine tuned for the dialect: SQLite waits for writers instead of failing
    and uses WAL, so a pipeline run and the portal can share one file."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def migrations_dir(package: str) -> Path | None:
    """``<package>/migrations`` on disk, or None. Read from the package's ``__path__``,
    which also works when an editable install registered it as a namespace package
    (``importlib.resources.files`` refuses those)."""
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError:
        return None
    for entry in getattr(module, "__path__", []):
        candidate = Path(entry) / "migrations"
        if candidate.is_dir():
            return candidate
    return None


def alembic_config(package: str, url: str) -> Config:
    """Alembic configuration for a package's migrations (``<package>/migrations``)."""
    location = migrations_dir(package)
    if location is None:
        raise FileNotFoundError(f"o pacote {package} não tem migrações (pasta migrations)")
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["version_table"] = f"alembic_version_{package}"
    return config


def run_migrations(context, default_version_table: str) -> None:
    """The body of every package's ``migrations/env.py``: its own version table,
    batch mode on SQLite (ALTER TABLE there is limited), online or offline."""
    config = context.config
    version_table = config.attributes.get("version_table", default_version_table)
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), version_table=version_table, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=None,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            run(connection)
    finally:
        engine.dispose()


def upgrade(package: str, url: str, revision: str = "head") -> None:
    """Bring a package's tables to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(package, url), revision)


def current_revision(package: str, engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": f"alembic_version_{package}"})
        return context.get_current_revision()
