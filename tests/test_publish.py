"""Publication of a partitioned day to both backends (a local directory and a real
HTTP S3 endpoint) and to the catalog (SQLite, and PostgreSQL for real): manifest
checksums against the stored objects, idempotent republishing, new versions for
corrected input with the old ones kept, one UF alone, and a failure injected at
every step boundary leaving the last good version served."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
from pathlib import Path

import polars as pl
import pytest

from pipelines import csv_format, reference
from pipelines.partition import partition_day
from pipelines.validation import REASON_LABELS
from serving import manifest as manifests
from serving.catalog import Catalog
from serving.datapackage import is_view_key
from serving.publish import (
    Publisher,
    PublishError,
    StagedDay,
    collect_garbage,
    staged_day_from,
    verify_publication,
)
from serving.s3 import S3Settings, S3Storage
from serving.storage import LocalStorage, Storage
from tests.day_factory import raw_day, write_day

DAY = dt.date(2026, 11, 21)
RECORDS = 200


def _sp_and_gone_municipio(raw: pl.DataFrame) -> str:
    """A municipality outside SP with records only as an establishment of residents of
    that same municipality: dropping its records empties exactly its own file."""
    est, res = raw["co_municipio_estabelecimento"], raw["co_municipio_paciente"]
    for code in est.unique().sort().to_list():
        if reference.municipios()[code].uf == "SP":
            continue
        mine = raw.filter(est == code)
        if (mine["co_municipio_paciente"] == code).all() and (res == code).sum() == mine.height:
            return code
    raise AssertionError("nenhum município serve ao teste")


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    """The original day, a corrected one (SP's vaccinations changed, one municipality's
    records withdrawn), their partitions, and the corrected SP alone."""
    base = tmp_path_factory.mktemp("publicar")
    raw = raw_day(DAY, RECORDS, seed=5, invalid_share=0.02)
    original = base / "original.parquet"
    write_day(original, DAY, 0, frame=raw)
    gone = _sp_and_gone_municipio(raw)
    corrected_raw = raw.filter(pl.col("co_municipio_estabelecimento") != gone).with_columns(
        pl.when(pl.col("sg_uf_estabelecimento") == "SP")
        .then(pl.lit("Vacina corrigida"))
        .otherwise(pl.col("ds_vacina"))
        .alias("ds_vacina")
    )
    corrected = base / "corrigido.parquet"
    write_day(corrected, DAY, 0, frame=corrected_raw)

    def staged(path: Path, name: str, uf: str | None = None) -> StagedDay:
        result = partition_day(path, base / name, day=DAY, uf=uf)
        return staged_day_from(result, reason_labels=REASON_LABELS)

    return {
        "original": staged(original, "s-original"),
        "corrected": staged(corrected, "s-corrigido"),
        "corrected_sp": staged(corrected, "s-corrigido-sp", uf="SP"),
        "gone": gone,
        "gone_uf": reference.municipios()[gone].uf,
    }


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "armazenamento")
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    return S3Storage(bucket, "publicado", settings=S3Settings(endpoint_url=endpoint))


@pytest.fixture
def catalog(tmp_path) -> Catalog:
    return Catalog(f"sqlite:///{tmp_path / 'catalogo.db'}").upgrade()


def state(catalog: Catalog) -> list[tuple]:
    return [(r.id, r.operation, r.version, r.object_key, r.sha256_stored) for r in catalog.current_files_of_day(DAY)]


def assert_served(
    storage: Storage, catalog: Catalog, expected_state: list[tuple], publication_version: int, *, read_back=None
) -> None:
    """The catalog lists exactly the expected versions and every one of them is in the
    store and listable; those of ``read_back`` (default: all) read back with their checksum."""
    assert state(catalog) == expected_state
    assert catalog.latest_publication(DAY).version == publication_version
    current = catalog.current_files_of_day(DAY)
    keys = set(storage.list_keys("d1/"))
    assert {r.object_key for r in current} <= keys
    assert catalog.latest_publication(DAY).manifest_key in keys
    checked = [r for r in current if read_back is None or r.operation in read_back]
    assert verify_publication(storage, checked) == []


def check_manifest(storage: Storage, catalog: Catalog, staged: StagedDay) -> dict:
    publication = catalog.latest_publication(DAY)
    data = storage.get_bytes(publication.manifest_key)
    assert hashlib.sha256(data).hexdigest() == publication.manifest_sha256
    document = manifests.loads(data)
    current = catalog.current_files_of_day(DAY)
    listed = [(f["operation"], f["version"], f["object_key"], f["sha256_stored"], f["sha256_csv"]) for f in document["files"]]
    assert listed == [(r.operation, r.version, r.object_key, r.sha256_stored, r.sha256_csv) for r in current]
    for entry in document["files"]:
        stored = storage.get_bytes(entry["object_key"])
        assert hashlib.sha256(stored).hexdigest() == entry["sha256_stored"] and len(stored) == entry["bytes_stored"]
        csv = gzip.decompress(stored)
        assert hashlib.sha256(csv).hexdigest() == entry["sha256_csv"] and len(csv) == entry["bytes_csv"]
        assert entry["layout_version"] == staged.layout_version and entry["date"] == DAY.isoformat()
        assert csv.count(b"\n") - 1 == entry["rows"]
    counts = document["source_counts"]
    assert counts["read"] == staged.counts["read"] == counts["valid"] + counts["quarantined"]
    assert counts["quarantined"] > 0 and counts["top_reasons"][0]["label"] == REASON_LABELS["cnes_invalido"]
    assert document["totals"]["files"] == len(current)
    return document


def test_publish_then_republish_changes_nothing(storage, catalog, days):
    original = days["original"]
    outcome = Publisher(storage, catalog).publish(original)
    assert outcome.publication_version == 1 and outcome.changed == len(original.files) and outcome.unchanged == 0
    current = catalog.current_files_of_day(DAY)
    assert sorted(r.operation for r in current) == sorted(f.operation for f in original.files)
    assert all(r.version == 1 and r.content_type == csv_format.CONTENT_TYPE_GZIP for r in current)
    check_manifest(storage, catalog, original)
    head = storage.head(current[0].object_key)
    assert head.metadata["sha256"] == current[0].sha256_stored and head.content_type == "application/gzip"

    keys = sorted(storage.list_keys())
    before = state(catalog)
    again = Publisher(storage, catalog).publish(original)
    assert again.changed == 0 and again.unchanged == len(original.files) and again.publication_version is None
    assert sorted(storage.list_keys()) == keys and state(catalog) == before
    assert catalog.latest_publication(DAY).version == 1


def test_corrected_input_makes_new_versions_and_keeps_the_old(storage, catalog, days):
    original, corrected = days["original"], days["corrected"]
    Publisher(storage, catalog).publish(original)
    v1 = {r.operation: r for r in catalog.current_files_of_day(DAY)}
    outcome = Publisher(storage, catalog).publish(corrected)
    assert outcome.publication_version == 2
    new_csv = {f.operation: f.sha256_csv for f in corrected.files}
    gone_op = f"imunizacao-total-{days['gone_uf'].lower()}-{days['gone']}"
    assert gone_op in v1 and gone_op not in new_csv
    changed = {op for op, record in v1.items() if new_csv.get(op) != record.sha256_csv}
    assert "imunizacao-total-sp" in changed and gone_op in changed and len(changed) < len(v1)
    assert outcome.changed == len(changed)
    for record in catalog.current_files_of_day(DAY):
        assert record.version == (2 if record.operation in changed else 1)
        assert record.id == v1[record.operation].id or record.operation in changed
        versions = catalog.versions(record.operation, DAY)
        if record.operation in changed:
            assert [v.version for v in versions] == [2, 1] and not versions[1].is_current
            old = versions[1]
            # The old version is still addressable and intact.
            assert storage.sha256(old.object_key) == old.sha256_stored == v1[record.operation].sha256_stored
            assert catalog.file(old.id).object_key == old.object_key
    # The municipality that lost all its records: a header-only new version.
    tombstone = catalog.current_file(gone_op, DAY)
    assert tombstone.rows == 0 and tombstone.version == 2
    assert gzip.decompress(storage.get_bytes(tombstone.object_key)) == csv_format.header_line() + b"\n"
    check_manifest(storage, catalog, corrected)
    # The tombstone stays a tombstone: republishing changes nothing.
    assert Publisher(storage, catalog).publish(corrected).changed == 0


def test_one_uf_alone_leaves_the_other_ufs_untouched(storage, catalog, days):
    Publisher(storage, catalog).publish(days["original"])
    before = {r.operation: r for r in catalog.current_files_of_day(DAY)}
    outcome = Publisher(storage, catalog).publish(days["corrected_sp"])
    assert outcome.scope == "SP" and outcome.publication_version == 2
    after = {r.operation: r for r in catalog.current_files_of_day(DAY)}
    assert set(after) == set(before)
    moved = {op for op in after if after[op].id != before[op].id}
    assert moved and all(after[op].uf == "SP" for op in moved)
    assert "imunizacao-total-sp" in moved
    # Other UFs whose content also changed in the corrected input are left for their own run.
    full_csv = {f.operation: f.sha256_csv for f in days["corrected"].files}
    assert any(full_csv.get(op) != before[op].sha256_csv for op in after if after[op].uf != "SP")
    manifest = check_manifest(storage, catalog, days["corrected_sp"])
    assert manifest["publication"]["scope"] == "SP"
    # The whole corrected day then changes only the rest.
    rest = Publisher(storage, catalog).publish(days["corrected"])
    assert rest.changed == len(
        {op for op in full_csv.keys() | before.keys() if after.get(op) is None or full_csv.get(op) != after[op].sha256_csv}
    )
    assert all(r.uf != "SP" for r in catalog.current_files_of_day(DAY) if r.publication_id == rest.publication_id)


class FlakyStorage(Storage):
    """A store that fails (or corrupts what it stores) on demand, wrapping a real one."""

    def __init__(self, inner: Storage):
        self.inner = inner
        self.url = inner.url
        self.puts = 0
        self.fail_put_at: int | None = None
        self.fail_put_bytes = False
        self.corrupt = False

    def put_file(self, key, path, **kwargs):
        self.puts += 1
        if self.fail_put_at is not None and self.puts >= self.fail_put_at:
            raise OSError("falha injetada no envio")
        if self.corrupt:  # the store keeps other bytes than it was sent
            return self.inner.put_bytes(key, b"corrompido", content_type=kwargs["content_type"], metadata=kwargs.get("metadata"))
        return self.inner.put_file(key, path, **kwargs)

    def put_bytes(self, key, data, **kwargs):
        if self.fail_put_bytes:
            raise OSError("falha injetada no manifesto")
        return self.inner.put_bytes(key, data, **kwargs)

    def head(self, key):
        return self.inner.head(key)

    def iter_range(self, key, start=0, end=None, chunk_size=1 << 20):
        return self.inner.iter_range(key, start, end, chunk_size)

    def delete(self, key):
        return self.inner.delete(key)

    def list_keys(self, prefix=""):
        return self.inner.list_keys(prefix)


class Crash(Exception):
    pass


def crash_at(step: str):
    def on_step(name: str) -> None:
        if name == step:
            raise Crash(step)

    return on_step


INJECTIONS = [
    ("hook", "planned"),
    ("put_file", 1),
    ("put_file", "half"),
    ("hook", "uploaded"),
    ("corrupt", None),
    ("hook", "verified"),
    ("put_bytes", None),
    ("hook", "manifest_written"),
    ("hook", "catalog_flipped"),
    ("hook", "catalog_inserted"),
]


def run_failure_matrix(storage: Storage, catalog: Catalog, days) -> None:
    Publisher(storage, catalog).publish(days["original"])
    good = state(catalog)
    assert_served(storage, catalog, good, 1)
    current_csv = {r.operation: r.sha256_csv for r in catalog.current_files_of_day(DAY)}
    corrected_csv = {f.operation: f.sha256_csv for f in days["corrected"].files}
    touched = {op for op in current_csv.keys() | corrected_csv.keys() if current_csv.get(op) != corrected_csv.get(op)}
    changes = len(touched)
    assert changes >= 4
    for kind, where in INJECTIONS:
        flaky = FlakyStorage(storage)
        on_step = None
        if kind == "hook":
            on_step = crash_at(where)
        elif kind == "put_file":
            flaky.fail_put_at = 1 if where == 1 else changes // 2
        elif kind == "put_bytes":
            flaky.fail_put_bytes = True
        elif kind == "corrupt":
            flaky.corrupt = True
        with pytest.raises((Crash, OSError, PublishError)):
            Publisher(flaky, catalog, on_step=on_step).publish(days["corrected"])
        # The last good version is still what is served, whole (read back: the files
        # the attempt was replacing; the others are covered by the full checks around).
        assert_served(storage, catalog, good, 1, read_back=touched)
    # What the failed attempts left is unreferenced; the collector removes only that.
    referenced = catalog.referenced_keys()
    # The day's current view (data package and schemas) is named by no catalog row and is kept.
    orphans = {key for key in storage.list_keys("d1/") if not is_view_key(key)} - referenced
    assert orphans
    assert collect_garbage(storage, catalog, older_than_hours=1) == []
    removed = collect_garbage(storage, catalog, older_than_hours=0)
    kept = {key for key in storage.list_keys("d1/") if not is_view_key(key)}
    assert set(removed) == orphans and kept == referenced
    assert_served(storage, catalog, good, 1)
    # And the next attempt goes through.
    outcome = Publisher(storage, catalog).publish(days["corrected"])
    assert outcome.publication_version == 2
    assert_served(storage, catalog, state(catalog), 2)
    check_manifest(storage, catalog, days["corrected"])


def test_a_failure_between_any_two_steps_leaves_the_last_good_version_served(storage, catalog, days):
    run_failure_matrix(storage, catalog, days)


def test_a_failure_after_the_commit_point_keeps_the_new_version(tmp_path, catalog, days):
    storage = LocalStorage(tmp_path / "s")
    with pytest.raises(Crash):
        Publisher(storage, catalog, on_step=crash_at("committed")).publish(days["original"])
    assert catalog.latest_publication(DAY).version == 1
    assert_served(storage, catalog, state(catalog), 1)


def test_concurrent_publication_of_the_same_day_is_refused(tmp_path, catalog, days):
    storage = LocalStorage(tmp_path / "s")
    Publisher(storage, catalog).publish(days["original"])

    def other_publisher_wins(name: str) -> None:
        if name == "manifest_written":
            Publisher(storage, catalog).publish(days["corrected_sp"])

    with pytest.raises(PublishError, match="nada foi alterado"):
        Publisher(storage, catalog, on_step=other_publisher_wins).publish(days["corrected"])
    latest = catalog.latest_publication(DAY)
    assert latest.version == 2 and latest.scope == "SP"
    assert_served(storage, catalog, state(catalog), 2)


@pytest.mark.postgres
def test_publication_on_postgres(postgres_url, tmp_path, days):
    catalog = Catalog(postgres_url).upgrade()
    try:
        storage = LocalStorage(tmp_path / "s")
        run_failure_matrix(storage, catalog, days)
        assert Publisher(storage, catalog).publish(days["corrected"]).changed == 0
        sp = Publisher(storage, catalog).publish(days["original"])
        assert sp.publication_version == 3
        assert all(r.version in (1, 3) or r.rows == 0 for r in catalog.current_files_of_day(DAY))
        check_manifest(storage, catalog, days["original"])
    finally:
        catalog.engine.dispose()
