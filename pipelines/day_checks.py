"""The checks that stand between a day and its publication, without Dagster.

Each check reads what a step of ``pipelines.flow`` left on disk (or in the object
store) and answers a ``CheckOutcome``: passed or not, one line a person reads
(pt-BR), and the figures behind it. The Dagster asset checks (``assets/checks.py``)
are thin wrappers over these functions.

Where the partitioner's own accounting is checked, the expected figures come from
an independent recount: DuckDB over the staging Parquet, with the
occurrence/residence rule written again in SQL from its specification (the
``pipelines.partition`` docstring) and the IBGE list, never from the partitioner's
code.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import contract, csv_format, reference
from pipelines.extract import read_counts
from pipelines.flow import DayWork, FlowError, load_publication, load_staged
from serving.storage import sha256_file

# How many problems a check lists (the total is always given).
SAMPLE = 10
BRASIL_PAIS = "10"


@dataclass
class CheckOutcome:
    passed: bool
    summary: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _fail(summary: str, problems: list[str] | None = None, **metadata: Any) -> CheckOutcome:
    if problems:
        metadata["problemas"] = problems[:SAMPLE]
        metadata["total de problemas"] = len(problems)
    return CheckOutcome(False, summary, metadata)


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET threads = 2")
    return con


def _lit(text: object) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the staging object ------------------------------------------------------------------------


def counts_reconcile(work: DayWork) -> CheckOutcome:
    """read = valid + quarantined, and the two Parquet files hold exactly those counts."""
    if not work.staging.is_file():
        return _fail(f"falta o Parquet de preparação {work.staging}")
    counts = read_counts(work.staging)
    if counts is None:
        return _fail(f"{work.staging} não traz os contadores da extração")
    valid_rows = pq.ParquetFile(work.staging).metadata.num_rows
    quarantine_rows = pq.ParquetFile(work.quarantine).metadata.num_rows if work.quarantine.is_file() else None
    problems = []
    if counts.read != counts.valid + counts.quarantined:
        problems.append(f"lidos {counts.read} ≠ válidos {counts.valid} + quarentena {counts.quarantined}")
    if valid_rows != counts.valid:
        problems.append(f"o Parquet de preparação tem {valid_rows} registros, a extração contou {counts.valid} válidos")
    if quarantine_rows is None:
        problems.append(f"falta o Parquet da quarentena {work.quarantine}")
    elif quarantine_rows != counts.quarantined:
        problems.append(f"a quarentena tem {quarantine_rows} registros, a extração contou {counts.quarantined}")
    if counts.quarantined and sum(counts.reasons.values()) < counts.quarantined:
        problems.append("há registros em quarentena sem motivo")
    metadata = {
        "lidos": counts.read,
        "válidos": counts.valid,
        "em quarentena": counts.quarantined,
        "registros no Parquet": valid_rows,
        "registros na quarentena": quarantine_rows if quarantine_rows is not None else -1,
    }
    if problems:
        return _fail("as contagens do dia não fecham: " + problems[0], problems, **metadata)
    return CheckOutcome(True, f"lidos {counts.read} = válidos {counts.valid} + quarentena {counts.quarantined}", metadata)


def _code_width_problems(con: duckdb.DuckDBPyConnection, source: str, columns: dict[str, int]) -> dict[str, int]:
    exprs = [
        f"count(*) FILTER (WHERE {_q(c)} IS NOT NULL AND {_q(c)} <> '' AND NOT regexp_full_match({_q(c)}, '[0-9]{{{w}}}'))"
        for c, w in columns.items()
    ]
    row = con.execute(f"SELECT {', '.join(exprs)} FROM {source}").fetchone()
    return {c: int(n) for c, n in zip(columns, row) if n}


def staging_layout(work: DayWork) -> CheckOutcome:
    """The staging object has the contract's columns, in order, with its types; codes
    keep their widths; required fields are filled; every record is of this entry day."""
    if not work.staging.is_file():
        return _fail(f"falta o Parquet de preparação {work.staging}")
    schema = pq.read_schema(work.staging)
    problems = []
    if list(schema.names) != list(contract.SOURCE_COLUMNS):
        missing = [c for c in contract.SOURCE_COLUMNS if c not in schema.names]
        extra = [c for c in schema.names if c not in contract.SOURCE_COLUMNS]
        problems.append(f"colunas fora do contrato (faltam {missing[:5]}, sobram {extra[:5]})" if missing or extra else "colunas fora da ordem do contrato")
        return _fail(problems[0], problems)
    text_types = (pa.string(), pa.large_string(), pa.string_view())
    for name in contract.SOURCE_COLUMNS:
        kind = schema.field(name).type
        if name in contract.DATE_COLUMNS and kind != pa.date32():
            problems.append(f"{name} é {kind}, o contrato pede data")
        elif name not in contract.DATE_COLUMNS and kind not in text_types:
            problems.append(f"{name} é {kind}, o contrato pede texto")
    if problems:
        return _fail("tipos fora do contrato: " + problems[0], problems)
    con = _connect()
    source = f"read_parquet({_lit(work.staging)})"
    widths = _code_width_problems(con, source, contract.CODE_WIDTHS)
    problems += [f"{c}: {n} código(s) sem {contract.CODE_WIDTHS[c]} dígitos" for c, n in widths.items()]
    required = [f"count(*) FILTER (WHERE {_q(c)} IS NULL)" for c in contract.REQUIRED_COLUMNS]
    row = con.execute(f"SELECT {', '.join(required)} FROM {source}").fetchone()
    problems += [f"{c}: {n} registro(s) sem valor" for c, n in zip(contract.REQUIRED_COLUMNS, row) if n]
    statuses = ", ".join(f"'{v}'" for v in contract.ST_DOCUMENTO_VALUES)
    bad_status, other_day, total = con.execute(
        f"SELECT count(*) FILTER (WHERE st_documento NOT IN ({statuses})), "
        f"count(*) FILTER (WHERE dt_entrada_rnds <> ?), count(*) FROM {source}",
        [work.day],
    ).fetchone()
    if bad_status:
        problems.append(f"st_documento: {bad_status} registro(s) fora de {contract.ST_DOCUMENTO_VALUES}")
    if other_day:
        problems.append(f"dt_entrada_rnds: {other_day} registro(s) de outro dia que não {work.day}")
    metadata = {"colunas": len(schema.names), "registros": int(total), "versão do layout": contract.LAYOUT_VERSION}
    if problems:
        return _fail("o Parquet de preparação não segue o contrato: " + problems[0], problems, **metadata)
    return CheckOutcome(True, f"{len(schema.names)} colunas e tipos do contrato, códigos com seus dígitos", metadata)


def no_duplicate_documents(work: DayWork) -> CheckOutcome:
    """No ``co_documento`` twice (nor missing) in the day."""
    if not work.staging.is_file():
        return _fail(f"falta o Parquet de preparação {work.staging}")
    con = _connect()
    source = f"read_parquet({_lit(work.staging)})"
    total, distinct, nulls = con.execute(
        "SELECT count(*), count(DISTINCT co_documento), count(*) FILTER (WHERE co_documento IS NULL) "
        f"FROM {source}"
    ).fetchone()
    repeated = con.execute(
        f"SELECT co_documento, count(*) AS n FROM {source} WHERE co_documento IS NOT NULL "
        "GROUP BY 1 HAVING count(*) > 1 ORDER BY n DESC, 1 LIMIT ?",
        [SAMPLE],
    ).fetchall()
    duplicates = total - nulls - distinct
    metadata = {"registros": int(total), "co_documento distintos": int(distinct), "repetidos": int(duplicates), "sem co_documento": int(nulls)}
    if duplicates or nulls:
        problems = [f"{doc} aparece {n} vezes" for doc, n in repeated] + ([f"{nulls} registro(s) sem co_documento"] if nulls else [])
        return _fail(f"{duplicates} co_documento repetido(s) e {nulls} ausente(s) no dia", problems, **metadata)
    return CheckOutcome(True, f"{total} registros, nenhum co_documento repetido", metadata)


def quarantine_share(work: DayWork, max_share: float) -> CheckOutcome:
    """The quarantined share of the records read stays under ``max_share``."""
    counts = read_counts(work.staging) if work.staging.is_file() else None
    if counts is None:
        return _fail(f"falta o Parquet de preparação (com os contadores) {work.staging}")
    share = counts.quarantined / counts.read if counts.read else 0.0
    top = [f"{code}: {n}" for code, n in counts.top_reasons(5)]
    metadata = {"em quarentena": counts.quarantined, "lidos": counts.read, "fração": round(share, 6), "limite": max_share, "principais motivos": top}
    if share > max_share:
        return _fail(f"{share:.2%} dos registros em quarentena, acima do limite de {max_share:.2%}", top, **metadata)
    return CheckOutcome(True, f"{share:.2%} em quarentena (limite {max_share:.2%})", metadata)


# -- the independent recount -------------------------------------------------------------------


def expected_rows(staging: Path, uf: str | None = None) -> dict[str, int]:
    """Rows each file of the day must hold, by operation, recounted by DuckDB from the
    staging object: a record goes to the files of its establishment's UF and
    municipality, and to those of the patient's residence when they differ; the
    residence is the patient's municipality when it is on the IBGE list, else the
    declared UF when it is one of the 27; a patient living abroad has none here."""
    con = _connect()
    munis = reference.municipios_frame().select("ibge6", "uf").to_arrow()
    ufs = pa.table({"uf": sorted(reference.ufs())})
    con.register("muni", munis)
    con.register("ufs", ufs)
    rows = con.execute(
        f"""
        WITH r AS (
            SELECT
                em.ibge6 AS est_m,
                em.uf AS est_uf,
                s.co_pais_paciente IS NOT NULL AND s.co_pais_paciente <> '{BRASIL_PAIS}' AS abroad,
                rm.ibge6 AS res_m0,
                rm.uf AS res_m_uf,
                du.uf AS declared_uf
            FROM read_parquet({_lit(staging)}) s
            LEFT JOIN muni em ON em.ibge6 = s.co_municipio_estabelecimento
            LEFT JOIN muni rm ON rm.ibge6 = s.co_municipio_paciente
            LEFT JOIN ufs du ON du.uf = s.sg_uf_paciente
        ), placed AS (
            SELECT est_m, est_uf,
                CASE WHEN abroad THEN NULL ELSE res_m0 END AS res_m,
                CASE WHEN abroad THEN NULL WHEN res_m0 IS NOT NULL THEN res_m_uf ELSE declared_uf END AS res_uf
            FROM r
        ), lines AS (
            SELECT est_uf AS uf, NULL AS ibge6 FROM placed
            UNION ALL SELECT res_uf, NULL FROM placed WHERE res_uf IS NOT NULL AND res_uf <> est_uf
            UNION ALL SELECT est_uf, est_m FROM placed
            UNION ALL SELECT res_uf, res_m FROM placed WHERE res_m IS NOT NULL AND res_m <> est_m
        )
        SELECT uf, ibge6, count(*) FROM lines GROUP BY ALL
        """
    ).fetchall()
    expected: dict[str, int] = {}
    for row_uf, ibge6, n in rows:
        if row_uf is None:
            expected["(estabelecimento fora da lista do IBGE)"] = int(n)
            continue
        if uf is not None and row_uf != uf:
            continue
        operation = contract.state_operation(row_uf) if ibge6 is None else contract.municipality_operation(row_uf, ibge6)
        expected[operation] = int(n)
    return expected


def _compare_rows(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    problems = []
    for operation in sorted(set(expected) | set(actual)):
        want, got = expected.get(operation, 0), actual.get(operation, 0)
        if want != got:
            problems.append(f"{operation}: {got} linha(s), a recontagem espera {want}")
    return problems


# -- the staged files --------------------------------------------------------------------------


def placement_reconciles(work: DayWork) -> CheckOutcome:
    """Every valid record is in exactly the files the occurrence/residence rule names:
    the partitioner's rows per file equal DuckDB's recount from the staging object,
    and the partitioner read every valid record of the staging object it was given."""
    try:
        result = load_staged(work)
    except FlowError as exc:
        return _fail(str(exc))
    counts = read_counts(work.staging) if work.staging.is_file() else None
    problems = []
    if counts is None:
        return _fail(f"falta o Parquet de preparação {work.staging}")
    if sha256_file(work.staging) != result.input_sha256:
        problems.append("o Parquet de preparação mudou depois que os arquivos foram preparados")
    if result.records != counts.valid:
        problems.append(f"o particionador leu {result.records} registros, o dia tem {counts.valid} válidos")
    expected = expected_rows(work.staging, work.uf)
    actual = {f.operation: f.rows for f in result.files}
    problems += _compare_rows(expected, actual)
    metadata = {
        "arquivos": len(result.files),
        "linhas nos arquivos": sum(actual.values()),
        "linhas recontadas": sum(expected.values()),
        "registros válidos": counts.valid,
    }
    if problems:
        return _fail(f"{len(problems)} divergência(s) entre os arquivos e a recontagem: {problems[0]}", problems, **metadata)
    return CheckOutcome(True, f"{len(actual)} arquivos, {sum(actual.values())} linhas, iguais à recontagem independente", metadata)


def staged_files_intact(work: DayWork) -> CheckOutcome:
    """Each staged file is on disk with the size and SHA-256 the partitioner recorded,
    and nothing else is there."""
    try:
        result = load_staged(work)
    except FlowError as exc:
        return _fail(str(exc))
    if not work.files_dir.is_dir():
        published = work.publication_record.is_file()
        hint = " (já publicados e removidos da preparação: veja as verificações da publicação)" if published else ""
        return _fail(f"os arquivos preparados não estão em {work.files_dir}{hint}")
    files = list(result.files) + ([result.empty_file] if result.empty_file is not None else [])
    # Each file and its representations (Parquet, a UF's indicators): (name, path, size, SHA-256).
    expected = [
        item
        for f in files
        for item in [(f.file_name, f.path, f.bytes_stored, f.sha256_stored)]
        + [(r.file_name, r.path, r.bytes, r.sha256) for r in f.representations]
    ]
    problems = []
    bytes_read = 0
    for name, path, stored_bytes, stored_sha256 in expected:
        if not path.is_file():
            problems.append(f"{name}: não existe")
            continue
        size = path.stat().st_size
        bytes_read += size
        if size != stored_bytes:
            problems.append(f"{name}: {size} bytes, o particionador gravou {stored_bytes}")
        elif sha256_file(path) != stored_sha256:
            problems.append(f"{name}: SHA-256 diferente do gravado pelo particionador")
    known = {name for name, *_ in expected}
    problems += [f"{p.name}: arquivo que o particionador não gravou" for p in sorted(work.files_dir.iterdir()) if p.name not in known]
    metadata = {"arquivos": len(files), "bytes verificados": bytes_read}
    if problems:
        return _fail(f"{len(problems)} arquivo(s) preparado(s) alterado(s) ou ausente(s): {problems[0]}", problems, **metadata)
    return CheckOutcome(True, f"{len(files)} arquivos com o tamanho e o SHA-256 gravados", metadata)


def _header_problem(path: Path) -> str | None:
    expected = csv_format.header_line() + csv_format.LINE_END.encode()
    try:
        with gzip.open(path, "rb") as handle:
            head = handle.read(len(expected))
    except (OSError, EOFError) as exc:
        return f"{path.name}: não abre como gzip ({exc})"
    if head != expected:
        return f"{path.name}: cabeçalho diferente do layout"
    return None


def staged_files_layout(work: DayWork) -> CheckOutcome:
    """Every staged file opens as gzip with the layout's header (BOM, the 57 columns);
    the UF files — where every record of the day is — parse with exactly those
    columns, ISO dates, codes with their widths, a valid vínculo, and no
    ``co_documento`` twice in a file; their line counts are what was recorded."""
    try:
        result = load_staged(work)
    except FlowError as exc:
        return _fail(str(exc))
    if not work.files_dir.is_dir():
        return _fail(f"os arquivos preparados não estão em {work.files_dir}")
    problems = [p for f in result.files if (p := _header_problem(f.path))]
    uf_files = [f for f in result.files if f.scope_kind == "uf"]
    if problems or not uf_files:
        return _fail(f"{len(problems)} arquivo(s) fora do layout: {problems[0] if problems else 'nenhum arquivo de UF'}", problems)
    con = _connect()
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in contract.FILE_COLUMNS) + "}"
    file_list = "[" + ", ".join(_lit(f.path) for f in uf_files) + "]"
    source = (
        f"read_csv({file_list}, delim=';', quote='\"', escape='\"', header=true, columns={columns}, "
        "filename=true, strict_mode=true, null_padding=false)"
    )
    vinculos = ", ".join(f"'{v.value}'" for v in contract.Vinculo)
    date_checks = ", ".join(
        f"count(*) FILTER (WHERE {_q(c)} IS NOT NULL AND try_strptime({_q(c)}, '%Y-%m-%d') IS NULL)" for c in contract.DATE_COLUMNS
    )
    try:
        per_file = con.execute(
            f"SELECT filename, count(*), count(DISTINCT co_documento), "
            f"count(*) FILTER (WHERE {contract.TERRITORY_COLUMN} IS NULL OR {contract.TERRITORY_COLUMN} NOT IN ({vinculos})), "
            f"{date_checks} FROM {source} GROUP BY filename"
        ).fetchall()
        widths = _code_width_problems(con, source, contract.CODE_WIDTHS)
    except duckdb.Error as exc:
        return _fail(f"os arquivos de UF não se leem com o layout: {str(exc).splitlines()[0]}")
    by_name = {Path(row[0]).name: row for row in per_file}
    for f in uf_files:
        row = by_name.get(f.file_name)
        lines, distinct, bad_vinculo = (row[1], row[2], row[3]) if row else (0, 0, 0)
        if lines != f.rows:
            problems.append(f"{f.file_name}: {lines} linha(s) lidas, o particionador gravou {f.rows}")
        if distinct != lines:
            problems.append(f"{f.file_name}: {lines - distinct} co_documento repetido(s)")
        if bad_vinculo:
            problems.append(f"{f.file_name}: {bad_vinculo} linha(s) com {contract.TERRITORY_COLUMN} inválido")
        for column, bad in zip(contract.DATE_COLUMNS, row[4:] if row else ()):
            if bad:
                problems.append(f"{f.file_name}: {column} com {bad} data(s) fora do formato AAAA-MM-DD")
    problems += [f"{c}: {n} código(s) sem {contract.CODE_WIDTHS[c]} dígitos nos arquivos de UF" for c, n in widths.items()]
    lines_read = sum(row[1] for row in per_file)
    metadata = {"arquivos com cabeçalho verificado": len(result.files), "arquivos de UF lidos": len(uf_files), "linhas lidas": int(lines_read)}
    if problems:
        return _fail(f"{len(problems)} problema(s) de layout: {problems[0]}", problems, **metadata)
    return CheckOutcome(True, f"{len(result.files)} cabeçalhos e {lines_read} linhas dos arquivos de UF no layout", metadata)


# -- the publication ---------------------------------------------------------------------------


def _manifest(work: DayWork, storage) -> tuple[Any, dict[str, Any] | None, str | None]:
    from serving import manifest as manifests
    from serving.storage import StorageError

    publication = load_publication(work)
    try:
        data = storage.get_bytes(publication.manifest_key)
    except StorageError as exc:
        return publication, None, f"manifesto ilegível em {publication.manifest_location}: {exc}"
    if manifests.sha256(data) != publication.manifest_sha256:
        return publication, None, f"o manifesto {publication.manifest_location} não tem o SHA-256 registrado no catálogo"
    return publication, manifests.loads(data), None


def _in_scope(entry: dict[str, Any], uf: str | None) -> bool:
    return uf is None or entry["scope"]["uf"] == uf


def published_objects_verified(work: DayWork, storage, catalog) -> CheckOutcome:
    """Read back from the store every object of the day's manifest (in scope) and the
    manifest itself: SHA-256 and size as the manifest and the catalog say."""
    from serving.storage import StorageError

    try:
        publication, manifest, problem = _manifest(work, storage)
    except FlowError as exc:
        return _fail(str(exc))
    if problem:
        return _fail(problem, [problem])
    catalog_files = {(r.operation, r.version): r for r in catalog.current_files_of_day(work.day)}
    entries = [e for e in manifest["files"] if _in_scope(e, work.uf)]
    problems = []
    bytes_read = 0
    for entry in entries:
        key = entry["object_key"]
        try:
            digest = storage.sha256(key)
            info = storage.head(key)
        except StorageError as exc:
            problems.append(f"{key}: {exc}")
            continue
        if info is None:
            problems.append(f"{key}: objeto não encontrado")
            continue
        bytes_read += info.size
        if digest != entry["sha256_stored"]:
            problems.append(f"{key}: SHA-256 lido {digest[:12]}…, o manifesto diz {entry['sha256_stored'][:12]}…")
        elif info.size != entry["bytes_stored"]:
            problems.append(f"{key}: {info.size} bytes, o manifesto diz {entry['bytes_stored']}")
        record = catalog_files.get((entry["operation"], entry["version"]))
        if record is None:
            record = next((r for r in catalog.versions(entry["operation"], work.day) if r.version == entry["version"]), None)
        if record is None:
            problems.append(f"{entry['operation']} v{entry['version']}: fora do catálogo")
        elif (record.object_key, record.sha256_stored) != (key, entry["sha256_stored"]):
            problems.append(f"{entry['operation']} v{entry['version']}: catálogo e manifesto divergem")
    metadata = {
        "objetos verificados": len(entries),
        "bytes lidos de volta": bytes_read,
        "manifesto": publication.manifest_location,
    }
    if problems:
        return _fail(f"{len(problems)} objeto(s) publicado(s) não conferem: {problems[0]}", problems, **metadata)
    return CheckOutcome(True, f"{len(entries)} objetos lidos de volta do armazenamento, SHA-256 conferem", metadata)


def manifest_reconciles(work: DayWork, storage) -> CheckOutcome:
    """The manifest's rows per file (in scope) equal DuckDB's recount from the staging
    object that was published, and its source counts add up (read = valid + quarantined)."""
    try:
        publication, manifest, problem = _manifest(work, storage)
    except FlowError as exc:
        return _fail(str(exc))
    if problem:
        return _fail(problem, [problem])
    problems = []
    if not work.staging.is_file():
        return _fail(f"falta o Parquet de preparação {work.staging}")
    if sha256_file(work.staging) != publication.input_sha256:
        problems.append("o Parquet de preparação mudou depois da publicação: publique o dia de novo")
    source = manifest["source_counts"]
    if source["read"] != source["valid"] + source["quarantined"]:
        problems.append(f"manifesto: lidos {source['read']} ≠ válidos {source['valid']} + quarentena {source['quarantined']}")
    counts = read_counts(work.staging)
    if publication.publication_version is not None and counts is not None:
        # This run wrote the manifest: its counts are the staging object's.
        if (source["read"], source["valid"], source["quarantined"]) != (counts.read, counts.valid, counts.quarantined):
            problems.append(
                f"manifesto diz lidos/válidos/quarentena {source['read']}/{source['valid']}/{source['quarantined']}, "
                f"a preparação {counts.read}/{counts.valid}/{counts.quarantined}"
            )
    actual = {e["operation"]: e["rows"] for e in manifest["files"] if _in_scope(e, work.uf)}
    expected = expected_rows(work.staging, work.uf)
    problems += _compare_rows(expected, actual)
    metadata = {
        "arquivos no manifesto": len(actual),
        "linhas no manifesto": sum(actual.values()),
        "linhas recontadas": sum(expected.values()),
        "manifesto": publication.manifest_location,
    }
    if problems:
        return _fail(f"o manifesto não fecha com a preparação: {problems[0]}", problems, **metadata)
    return CheckOutcome(True, f"manifesto com {len(actual)} arquivos e {sum(actual.values())} linhas, igual à recontagem", metadata)
