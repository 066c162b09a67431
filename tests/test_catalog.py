import datetime as dt

import pytest
import sqlalchemy as sa

from serving import db
from serving.catalog import Catalog, Publication, PublishedFile


def _publish(catalog: Catalog, day: dt.date, operation: str, version: int, *, current: bool = True) -> int:
    with catalog.session() as session, session.begin():
        publication = Publication(
            day=day,
            version=version,
            scope="BR",
            manifest_key=f"m/{day}/{version}",
            manifest_sha256="0" * 64,
            input_sha256="1" * 64,
            layout_version="x",
            records_read=1,
            records_valid=1,
            records_quarantined=0,
            files=1,
            rows=1,
            bytes_csv=10,
            bytes_stored=5,
        )
        session.add(publication)
        session.flush()
        if current:
            session.execute(
                sa.update(PublishedFile)
                .where(PublishedFile.operation == operation, PublishedFile.day == day)
                .values(is_current=False)
            )
        row = PublishedFile(
            publication_id=publication.id,
            operation=operation,
            scope_kind="uf",
            uf="DF",
            ibge6=None,
            day=day,
            version=version,
            object_key=f"k/{operation}/{day}/v{version}",
            file_name=f"{operation}_{day}.csv.gz",
            rows=1,
            bytes_csv=10,
            bytes_stored=5,
            sha256_csv="a" * 64,
            sha256_stored="b" * 64,
            content_type="text/csv",
            content_encoding="gzip",
            layout_version="x",
            is_current=current,
        )
        session.add(row)
        session.flush()
        return row.id


def _exercise(catalog: Catalog) -> None:
    catalog.upgrade()
    catalog.upgrade()  # idempotent
    op = "imunizacao-total-df"
    for day in (dt.date(2026, 10, 30), dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2025, 12, 31)):
        _publish(catalog, day, op, 1)
    newest = _publish(catalog, dt.date(2026, 11, 2), op, 2)
    assert catalog.years(op) == [2026, 2025]
    assert catalog.months(op, 2026) == [11, 10]
    page = catalog.files(op, 2026, 11, offset=0, limit=1)
    assert page.total == 2 and [f.day for f in page.items] == [dt.date(2026, 11, 2)]
    assert page.items[0].id == newest and page.items[0].version == 2
    assert page.items[0].published_at.tzinfo is not None
    assert [f.version for f in catalog.versions(op, dt.date(2026, 11, 2))] == [2, 1]
    assert catalog.files("imunizacao-total-sp", 2026, 11).total == 0
    # The database itself refuses two current versions of the same file.
    with pytest.raises(sa.exc.IntegrityError):
        with catalog.session() as session, session.begin():
            old = session.scalars(
                sa.select(PublishedFile).where(PublishedFile.version == 1, PublishedFile.day == dt.date(2026, 11, 2))
            ).one()
            old.is_current = True


def test_catalog_on_sqlite(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    _exercise(catalog)
    assert db.current_revision("serving", catalog.engine) == "0004_issue11_file_incident"


@pytest.mark.postgres
def test_catalog_on_postgres(postgres_url):
    catalog = Catalog(postgres_url)
    _exercise(catalog)
    assert db.current_revision("serving", catalog.engine) == "0004_issue11_file_incident"
    catalog.engine.dispose()
