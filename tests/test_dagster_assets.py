"""The D-1 assets materialised for real (``dagster.materialize`` of the code location's
assets and checks, a synthetic day of 1,500 records, files in a local store, a
SQLite catalog): a clean day passes every check and is published once, with the
metadata a person reads; a tampered day — a deleted file, a changed byte, a lost
record, a duplicated record — fails its check and is not published; one UF is
re-run alone; storage failures are retried and bad input is not."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetSelection

from assets.d1 import PUBLICATION, QUARANTINE, STAGED_FILES, STAGING, UF_PUBLICATION, UF_STAGED_FILES
from pipelines import contract
from pipelines.extract import METADATA_KEY
from pipelines.flow import DayWork
from serving import manifest as manifests
from serving.catalog import Catalog
from serving.storage import LocalStorage, StorageError
from tests import dagster_support as s

KEY = s.DAY.isoformat()
DAY_ASSETS = AssetSelection.assets(STAGING, QUARANTINE, STAGED_FILES, PUBLICATION)
STAGING_CHECKS = {"counts_reconcile", "layout_matches_contract", "no_duplicate_co_documento", "quarantine_share_under_limit"}
FILES_CHECKS = {"placement_reconciles", "staged_files_intact", "files_match_layout"}
PUBLICATION_CHECKS = {"objects_sha256_verified", "manifest_reconciles"}


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    s.clean_env(monkeypatch, tmp_path / "env-home")


def _template(tmp_path_factory, name: str, selection) -> tuple[Path, object]:
    home = tmp_path_factory.mktemp(name) / "home"
    with pytest.MonkeyPatch.context() as mp:
        s.clean_env(mp, home)
        result = s.materialize_keys(home, selection, KEY)
    assert result.success, s.checks_of(result)
    return home, result


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """A day extracted and staged, not published."""
    return _template(tmp_path_factory, "staged", AssetSelection.assets(STAGING, QUARANTINE, STAGED_FILES))[0]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A day through the whole daily flow."""
    return _template(tmp_path_factory, "published", DAY_ASSETS)


def catalog_of(home: Path) -> Catalog:
    return Catalog(f"sqlite:///{home / 'catalog.db'}").upgrade()


def snapshot(home: Path) -> tuple:
    catalog = catalog_of(home)
    try:
        files = sorted((r.operation, r.version, r.object_key, r.sha256_stored) for r in catalog.current_files_of_day(s.DAY))
        latest = catalog.latest_publication(s.DAY)
        return files, (latest.version, latest.manifest_key) if latest else None
    finally:
        catalog.engine.dispose()


def stored_keys(home: Path) -> list[str]:
    root = home / "storage"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- a clean day ----------------------------------------------------------------------------------


def test_a_clean_day_passes_every_check_and_is_published_with_readable_metadata(published):
    home, result = published
    checks = s.checks_of(result)
    expected = (
        {f"rnds_staging/{n}" for n in STAGING_CHECKS}
        | {f"d1_staged_files/{n}" for n in FILES_CHECKS}
        | {f"d1_publication/{n}" for n in PUBLICATION_CHECKS}
    )
    assert set(checks) == expected
    assert all(passed for passed, _ in checks.values()), checks

    meta = s.materialized(result)
    staging, quarantine, files, publication = (
        meta[k] for k in ("rnds_staging", "rnds_quarantine", "d1_staged_files", "d1_publication")
    )
    work = DayWork(home, s.DAY)
    stored_counts = json.loads(pq.read_metadata(work.staging).metadata[METADATA_KEY])
    assert (staging["lidos"], staging["válidos"], staging["em quarentena"]) == (
        stored_counts["read"],
        stored_counts["valid"],
        stored_counts["quarantined"],
    )
    assert staging["lidos"] == s.RECORDS == staging["válidos"] + staging["em quarentena"]
    top_reason = max(stored_counts["reasons"], key=stored_counts["reasons"].get)
    assert top_reason in quarantine["principais motivos da quarentena"]
    assert quarantine["em quarentena"] == pq.read_metadata(work.quarantine).num_rows > 0
    assert staging["segundos"] > 0 and files["segundos do particionamento"] > 0 and publication["segundos da publicação"] > 0

    # Rows per UF: 27 rows, and DF's is the row count the catalog holds for DF's file.
    catalog = catalog_of(home)
    current = {r.operation: r for r in catalog.current_files_of_day(s.DAY)}
    table = {record.data["uf"]: record.data for record in files["linhas por UF"].records}
    assert sorted(table) == sorted(contract_ufs())
    assert table["DF"]["linhas"] == current["imunizacao-total-df"].rows
    assert files["arquivos"] == len(current) == publication["arquivos"]
    # Through Dagster too, every file is published with its Parquet, every UF file with its indicators.
    kinds = {
        op: {r.kind for r in reps}
        for op, reps in zip(current, catalog.representations([r.id for r in current.values()]).values())
    }
    assert all("parquet" in k for k in kinds.values())
    assert kinds["imunizacao-total-df"] == {"parquet", "indicadores.csv", "indicadores.parquet"}
    assert (
        files["bytes antes da compressão"] == sum(r.bytes_csv for r in current.values()) > files["bytes comprimidos (gzip)"] > 0
    )

    # The manifest is where the metadata says, and lists exactly the catalog's files.
    manifest_path = Path(publication["manifesto"])
    assert manifest_path.is_file() and manifest_path.is_relative_to(home / "storage")
    manifest = manifests.loads(manifest_path.read_bytes())
    assert {f["operation"]: f["object_key"] for f in manifest["files"]} == {op: r.object_key for op, r in current.items()}
    latest = catalog.latest_publication(s.DAY)
    assert (latest.version, latest.scope, publication["versão publicada"]) == (1, "BR", 1)
    catalog.engine.dispose()
    # Published, the staged copies are gone; the staging object and the quarantine stay.
    assert not work.files_dir.exists() and work.staging.is_file() and work.quarantine.is_file()


def contract_ufs() -> list[str]:
    from pipelines import reference

    return sorted(reference.ufs())


def test_rerunning_a_published_day_changes_nothing(published, tmp_path):
    home = s.copy_home(published[0], tmp_path / "home")
    before, keys_before = snapshot(home), stored_keys(home)
    result = s.materialize_keys(home, DAY_ASSETS, KEY)
    assert result.success and all(p for p, _ in s.checks_of(result).values())
    assert s.materialized(result)["d1_publication"]["versão publicada"] == 0
    assert snapshot(home) == before
    assert stored_keys(home) == keys_before


def test_one_uf_rerun_alone_republishes_that_uf_and_leaves_the_others_untouched(published, tmp_path):
    home = s.copy_home(published[0], tmp_path / "home")
    before = {op: (version, key) for op, version, key, _ in snapshot(home)[0]}
    # The source got late records since the day was published.
    result = s.materialize_keys(
        home, AssetSelection.assets(UF_STAGED_FILES, UF_PUBLICATION), f"{KEY}|DF", records=s.RECORDS + 500
    )
    checks = s.checks_of(result)
    assert result.success and len(checks) == 9 and all(p for p, _ in checks.values()), checks
    after = {op: (version, key) for op, version, key, _ in snapshot(home)[0]}
    df = {op for op in after if op == "imunizacao-total-df" or op.startswith("imunizacao-total-df-")}
    assert df and all(after[op][0] == before.get(op, (0,))[0] + 1 for op in df)
    assert {op: after[op] for op in after if op not in df} == {op: before[op] for op in before if op not in df}
    catalog = catalog_of(home)
    latest = catalog.latest_publication(s.DAY)
    assert (latest.version, latest.scope) == (2, "DF")
    catalog.engine.dispose()
    assert s.materialized(result)["d1_uf_publication"]["versão publicada"] == 2


# -- tampered before publication: the checks stop it ----------------------------------------------


def _blocked(home: Path, result, failing: str) -> str:
    checks = s.checks_of(result)
    assert not result.success
    assert failing in checks and checks[failing][0] is False, checks
    assert "d1_publication" not in s.materialized(result)
    catalog = catalog_of(home)
    assert catalog.latest_publication(s.DAY) is None and catalog.current_files_of_day(s.DAY) == []
    catalog.engine.dispose()
    assert not [k for k in stored_keys(home) if k.startswith("d1/")]
    return checks[failing][1]


def _publish_staged(home: Path, **options):
    """The staged files' checks, then publication."""
    selection = AssetSelection.checks_for_assets(STAGED_FILES) | AssetSelection.assets(PUBLICATION)
    return s.materialize_keys(home, selection, KEY, **options)


def _from_staging(home: Path, **options):
    """The staging object's checks, then staging the files and publishing."""
    selection = AssetSelection.checks_for_assets(STAGING) | AssetSelection.assets(STAGED_FILES, PUBLICATION)
    return s.materialize_keys(home, selection, KEY, **options)


def _df_file(home: Path) -> Path:
    return DayWork(home, s.DAY).files_dir / contract.file_name("imunizacao-total-df", s.DAY)


def test_the_untampered_staged_day_passes_and_publishes(staged, tmp_path):
    home = s.copy_home(staged, tmp_path / "home")
    result = _publish_staged(home)
    assert result.success and all(p for p, _ in s.checks_of(result).values())
    assert snapshot(home)[1][0] == 1


def test_a_deleted_staged_file_stops_publication(staged, tmp_path):
    home = s.copy_home(staged, tmp_path / "home")
    victim = sorted(DayWork(home, s.DAY).files_dir.glob("imunizacao-total-sp-*.csv.gz"))[0]
    victim.unlink()
    message = _blocked(home, _publish_staged(home), "d1_staged_files/staged_files_intact")
    assert "ausente" in message and victim.name in message


def test_a_changed_byte_in_a_staged_file_stops_publication(staged, tmp_path):
    home = s.copy_home(staged, tmp_path / "home")
    path = _df_file(home)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    message = _blocked(home, _publish_staged(home), "d1_staged_files/staged_files_intact")
    assert "SHA-256" in message and path.name in message


def _rewrite_staging(home: Path, change) -> None:
    """Rewrite the staging object through ``change(table, counts)``, keeping its metadata."""
    path = DayWork(home, s.DAY).staging
    table = pq.read_table(path)
    counts = json.loads(pq.read_metadata(path).metadata[METADATA_KEY])
    table, counts = change(table, counts)
    metadata = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps(counts).encode()}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def test_a_record_lost_from_the_staging_object_stops_publication(staged, tmp_path):
    home = s.copy_home(staged, tmp_path / "home")
    _rewrite_staging(home, lambda table, counts: (pa.concat_tables([table.slice(0, 100), table.slice(101)]), counts))
    result = _from_staging(home)
    message = _blocked(home, result, "rnds_staging/counts_reconcile")
    assert "o Parquet de preparação tem" in message
    assert "d1_staged_files" not in s.materialized(result)


def test_a_duplicated_record_in_the_staging_object_stops_publication(staged, tmp_path):
    home = s.copy_home(staged, tmp_path / "home")

    def duplicate(table, counts):
        # The counts are made to agree, so only the duplicate gives the day away.
        counts = {**counts, "read": counts["read"] + 1, "valid": counts["valid"] + 1}
        return pa.concat_tables([table.slice(0, 51), table.slice(50)]), counts

    _rewrite_staging(home, duplicate)
    result = _from_staging(home)
    message = _blocked(home, result, "rnds_staging/no_duplicate_co_documento")
    checks = s.checks_of(result)
    assert checks["rnds_staging/counts_reconcile"][0] is True
    assert "1 co_documento repetido" in message


def _rewrite_staged_file(home: Path, path: Path, change) -> None:
    """Rewrite a staged file's lines through ``change`` and record it in partition.json the
    way a partitioner with that bug would (consistent rows, sizes and checksums)."""
    import hashlib

    from pipelines import csv_format

    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    header, body, tail = lines[0], lines[1:-1], lines[-1]
    assert tail == b""
    body = change(body)
    csv = b"\n".join([header, *body]) + b"\n"
    gz = gzip.compress(csv, compresslevel=csv_format.DEFAULT_GZIP_LEVEL, mtime=0)
    path.write_bytes(gz)
    work = DayWork(home, s.DAY)
    record = json.loads(work.partition_record.read_text())
    for entry in record["files"]:
        if entry["file_name"] == path.name:
            entry.update(
                rows=len(body),
                bytes_csv=len(csv),
                bytes_stored=len(gz),
                sha256_csv=hashlib.sha256(csv).hexdigest(),
                sha256_stored=hashlib.sha256(gz).hexdigest(),
            )
    work.partition_record.write_text(json.dumps(record))


def test_a_record_lost_by_the_partitioner_stops_publication(staged, tmp_path):
    home = s.copy_home(staged, tmp_path / "home")
    path = _df_file(home)
    _rewrite_staged_file(home, path, lambda body: body[:3] + body[4:])
    result = _publish_staged(home)
    message = _blocked(home, result, "d1_staged_files/placement_reconciles")
    assert "imunizacao-total-df:" in message and "recontagem" in message
    # The files themselves are consistent with the (buggy) accounting: only the recount sees it.
    checks = s.checks_of(result)
    assert checks["d1_staged_files/staged_files_intact"][0] is True
    assert checks["d1_staged_files/files_match_layout"][0] is True


def test_a_record_duplicated_by_the_partitioner_stops_publication(staged, tmp_path):
    home = s.copy_home(staged, tmp_path / "home")
    _rewrite_staged_file(home, _df_file(home), lambda body: body + body[:1])
    result = _publish_staged(home)
    _blocked(home, result, "d1_staged_files/placement_reconciles")
    checks = s.checks_of(result)
    assert checks["d1_staged_files/files_match_layout"][0] is False
    assert "co_documento repetido" in checks["d1_staged_files/files_match_layout"][1]


def test_too_much_quarantine_stops_publication(staged, tmp_path):
    home = s.copy_home(staged, tmp_path / "home")
    message = _blocked(home, _from_staging(home, max_share=0.0001), "rnds_staging/quarantine_share_under_limit")
    assert "acima do limite de 0.01%" in message


def test_a_publication_launched_alone_refuses_files_whose_checks_failed(staged, tmp_path):
    home = s.copy_home(staged, tmp_path / "home")
    _rewrite_staged_file(home, _df_file(home), lambda body: body[1:])
    assert not _publish_staged(home).success
    # Someone then materialises the publication alone, without the checks.
    result = s.materialize_keys(home, AssetSelection.assets(PUBLICATION).without_checks(), KEY)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    description = failure.event_specific_data.user_failure_data.description
    assert "recusada" in description and "d1_staged_files/placement_reconciles não passou" in description
    _blocked_no_check(home, result)


def _blocked_no_check(home: Path, result) -> None:
    assert not result.success and s.retries_of(result) == 0
    catalog = catalog_of(home)
    assert catalog.latest_publication(s.DAY) is None
    catalog.engine.dispose()


# -- tampered after publication: the run fails --------------------------------------------------


def _verify_published(home: Path):
    """Publication again (nothing changed, nothing uploaded) and its checks: re-reads the store."""
    return s.materialize_keys(home, AssetSelection.assets(PUBLICATION), KEY)


def _object_path(home: Path, operation: str) -> Path:
    files, _ = snapshot(home)
    key = next(k for op, _, k, _ in files if op == operation)
    return home / "storage" / key


def test_a_deleted_published_object_fails_the_run(published, tmp_path):
    home = s.copy_home(published[0], tmp_path / "home")
    clean = _verify_published(home)
    assert clean.success and all(p for p, _ in s.checks_of(clean).values())
    _object_path(home, "imunizacao-total-rj").unlink()
    result = _verify_published(home)
    checks = s.checks_of(result)
    assert not result.success
    assert checks["d1_publication/objects_sha256_verified"][0] is False
    assert "imunizacao-total-rj" in checks["d1_publication/objects_sha256_verified"][1]
    assert checks["d1_publication/manifest_reconciles"][0] is True


def test_a_changed_byte_in_a_published_object_fails_the_run(published, tmp_path):
    home = s.copy_home(published[0], tmp_path / "home")
    path = _object_path(home, "imunizacao-total-mg")
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x40
    path.write_bytes(bytes(data))
    result = _verify_published(home)
    checks = s.checks_of(result)
    assert not result.success and checks["d1_publication/objects_sha256_verified"][0] is False
    assert "SHA-256" in checks["d1_publication/objects_sha256_verified"][1]


# -- retries -------------------------------------------------------------------------------------

_FAILURES = {"left": 0}


class FlakyLocalStorage(LocalStorage):
    def put_file(self, key, path, **kwargs):
        if _FAILURES["left"] > 0:
            _FAILURES["left"] -= 1
            raise StorageError("armazenamento indisponível (HTTP 503), teste")
        return super().put_file(key, path, **kwargs)


def test_a_storage_error_is_retried_and_the_day_published(staged, tmp_path):
    from assets.resources import ObjectStore

    class FlakyStore(ObjectStore):
        def open(self):
            return FlakyLocalStorage(self.resolved_url())

    home = s.copy_home(staged, tmp_path / "home")
    _FAILURES["left"] = 1
    result = s.materialize_keys(
        home, AssetSelection.assets(PUBLICATION).without_checks(), KEY, store=FlakyStore(url=str(home / "storage"))
    )
    assert result.success and s.retries_of(result) == 1 and _FAILURES["left"] == 0
    assert snapshot(home)[1][0] == 1


def test_bad_input_fails_at_once_without_retry(tmp_path):
    from assets.resources import RndsSource

    home = tmp_path / "home"
    source = RndsSource(kind="fhir", location=str(tmp_path / "nao-existe-{date}.ndjson"))
    result = s.materialize_keys(home, AssetSelection.assets(STAGING, QUARANTINE).without_checks(), KEY, source=source)
    assert not result.success and s.retries_of(result) == 0
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"nao-existe-{KEY}.ndjson" in failure.event_specific_data.user_failure_data.description


# -- the same day on S3 ----------------------------------------------------------------------------


@pytest.mark.slow  # a small day (about 100 files) to and from S3 over HTTP, twice: 10-20 s
def test_a_day_published_to_s3_is_read_back_by_its_checks(tmp_path, s3_bucket, monkeypatch):
    import boto3

    from assets.resources import ObjectStore

    endpoint, bucket = s3_bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    home = tmp_path / "home"
    store = ObjectStore(url=f"s3://{bucket}/vacina")
    result = s.materialize_keys(home, DAY_ASSETS, KEY, store=store, records=120)
    checks = s.checks_of(result)
    assert result.success and len(checks) == 9 and all(passed for passed, _ in checks.values()), checks
    manifest_url = s.materialized(result)["d1_publication"]["manifesto"]
    assert manifest_url.startswith(f"s3://{bucket}/vacina/d1/2026/11/20/manifestos/v0001-")

    client = boto3.client("s3", endpoint_url=endpoint)
    files, _ = snapshot(home)
    victim = next(k for op, _, k, _ in files if op == "imunizacao-total-ba")
    client.delete_object(Bucket=bucket, Key=f"vacina/{victim}")
    again = s.materialize_keys(home, AssetSelection.assets(PUBLICATION), KEY, store=store, records=120)
    assert not again.success
    failed = s.checks_of(again)["d1_publication/objects_sha256_verified"]
    assert failed[0] is False and "imunizacao-total-ba" in failed[1]
