"""The portal API (FastAPI): credentials, scoped listing, terms of use, logged downloads.

Layout follows fastapi/full-stack-fastapi-template: ``core/`` (settings, security,
problem responses), ``models`` (SQLAlchemy), ``schemas`` (pydantic), ``crud``,
``api/`` (dependencies and routes), ``main`` (the app factory) and ``cli``
(``vacina-d1 serve`` and ``vacina-d1 admin``). Files and their bytes come from
``serving`` (catalog and storage); nothing here writes the catalog.
"""
