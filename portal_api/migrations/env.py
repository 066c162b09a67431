"""Alembic environment of the ``portal_api`` tables (see serving.db.run_migrations)."""

from alembic import context

from serving import db

db.run_migrations(context, default_version_table="alembic_version_portal_api")
