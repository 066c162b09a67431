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

Each file is read once per step: the checks of one object share one scan of it
(``_scan``: the staging Parquet by one DuckDB query, every staged file by one
pass that hashes it and reads its gzip header, the UF files by one DuckDB query),
computed by the checks themselves from the bytes on disk — nothing the writer
computed is reused, only compared with. ``evaluate_all`` runs a step's checks on
both cores.
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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
# Threads a step's checks (and the hashing of the staged files) use: the machine's two cores.
THREADS = 2
_READ = 1 << 20


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
    con.execute(f"SET threads = {THREADS}")
    return con


def evaluate_all(evaluations: dict[str, Callable[[], CheckOutcome]]) -> dict[str, CheckOutcome]:
    """Run independent checks at once (DuckDB, hashing and zlib release the GIL); a check
    that raises does not pass, and says why."""

    def run(evaluate: Callable[[], CheckOutcome]) -> CheckOutcome:
        try:
            return evaluate()
        except Exception as exc:  # noqa: BLE001 - a check that cannot run does not pass
            text = str(exc).strip().splitlines()
            return CheckOutcome(
                False,
                f"a verificação não pôde rodar: {text[0] if text else exc.__class__.__name__}",
                {"erro": exc.__class__.__name__},
            )

    token = _CURRENT_SCANS.set(_Scans())
    try:
        with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="vacina-d1-verificacao") as pool:
            futures = {name: pool.submit(contextvars.copy_context().run, run, evaluate) for name, evaluate in evaluations.items()}
            return {name: future.result() for name, future in futures.items()}
    finally:
        _CURRENT_SCANS.reset(token)


class _Scans:
    """The scans of one ``evaluate_all``: each computed once, even when two checks ask
    at the same time, and forgotten when the step ends (a later run reads again)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[tuple, tuple[threading.Lock, list]] = {}

    def get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        with self.lock:
            entry = self.entries.setdefault(key, (threading.Lock(), []))
        lock, box = entry
        with lock:
            if not box:
                box.append(compute())
            return box[0]


_CURRENT_SCANS: contextvars.ContextVar[_Scans | None] = contextvars.ContextVar("vacina_d1_scans", default=None)


def _shared(key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()``, shared with the other checks of the same ``evaluate_all``."""
    scans = _CURRENT_SCANS.get()
    return compute() if scans is None else scans.get(key, compute)


def _file_key(kind: str, path: Path, *extra: Any) -> tuple:
    stat = path.stat()
    return (kind, str(path), stat.st_size, stat.st_mtime_ns, *extra)


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


@dataclass(frozen=True)
class _StagingScan:
    total: int
    bad_widths: dict[str, int]
    missing_required: dict[str, int]
    bad_status: int
    other_day: int
    distinct_documents: int
    missing_documents: int


def _staging_scan(work: DayWork) -> _StagingScan:
    """Every figure the staging checks need, in one DuckDB pass over the Parquet."""

    def compute() -> _StagingScan:
        con = _connect()
        widths = [
            f"count(*) FILTER (WHERE {_q(c)} IS NOT NULL AND {_q(c)} <> '' AND NOT regexp_full_match({_q(c)}, '[0-9]{{{w}}}'))"
            for c, w in contract.CODE_WIDTHS.items()
        ]
        required = [f"count(*) FILTER (WHERE {_q(c)} IS NULL)" for c in contract.REQUIRED_COLUMNS]
        statuses = ", ".join(f"'{v}'" for v in contract.ST_DOCUMENTO_VALUES)
        row = con.execute(
            f"SELECT count(*), count(DISTINCT co_documento), count(*) FILTER (WHERE co_documento IS NULL), "
            f"count(*) FILTER (WHERE st_documento NOT IN ({statuses})), count(*) FILTER (WHERE dt_entrada_rnds <> ?), "
            f"{', '.join(widths + required)} FROM read_parquet({_lit(work.staging)})",
            [work.day],
        ).fetchone()
        assert row is not None  # an aggregate without GROUP BY returns one row
        total, distinct, nulls, bad_status, other_day = (int(v) for v in row[:5])
        n_widths = len(contract.CODE_WIDTHS)
        return _StagingScan(
            total=total,
            bad_widths={c: int(n) for c, n in zip(contract.CODE_WIDTHS, row[5 : 5 + n_widths]) if n},
            missing_required={c: int(n) for c, n in zip(contract.REQUIRED_COLUMNS, row[5 + n_widths :]) if n},
            bad_status=bad_status,
            other_day=other_day,
            distinct_documents=distinct,
            missing_documents=nulls,
        )

    return _shared(_file_key("staging", work.staging, work.day), compute)


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
        problems.append(
            f"colunas fora do contrato (faltam {missing[:5]}, sobram {extra[:5]})"
            if missing or extra
            else "colunas fora da ordem do contrato"
        )
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
    scan = _staging_scan(work)
    problems += [f"{c}: {n} código(s) sem {contract.CODE_WIDTHS[c]} dígitos" for c, n in scan.bad_widths.items()]
    problems += [f"{c}: {n} registro(s) sem valor" for c, n in scan.missing_required.items()]
    if scan.bad_status:
        problems.append(f"st_documento: {scan.bad_status} registro(s) fora de {contract.ST_DOCUMENTO_VALUES}")
    if scan.other_day:
        problems.append(f"dt_entrada_rnds: {scan.other_day} registro(s) de outro dia que não {work.day}")
    metadata = {"colunas": len(schema.names), "registros": scan.total, "versão do layout": contract.LAYOUT_VERSION}
    if problems:
        return _fail("o Parquet de preparação não segue o contrato: " + problems[0], problems, **metadata)
    return CheckOutcome(True, f"{len(schema.names)} colunas e tipos do contrato, códigos com seus dígitos", metadata)


def no_duplicate_documents(work: DayWork) -> CheckOutcome:
    """No ``co_documento`` twice (nor missing) in the day."""
    if not work.staging.is_file():
        return _fail(f"falta o Parquet de preparação {work.staging}")
    scan = _staging_scan(work)
    total, distinct, nulls = scan.total, scan.distinct_documents, scan.missing_documents
    duplicates = total - nulls - distinct
    metadata = {"registros": total, "co_documento distintos": distinct, "repetidos": duplicates, "sem co_documento": nulls}
    if duplicates or nulls:
        # Only a failing day pays for a second look, to name the repeated documents.
        repeated = (
            _connect()
            .execute(
                f"SELECT co_documento, count(*) AS n FROM read_parquet({_lit(work.staging)}) WHERE co_documento IS NOT NULL "
                "GROUP BY 1 HAVING count(*) > 1 ORDER BY n DESC, 1 LIMIT ?",
                [SAMPLE],
            )
            .fetchall()
        )
        problems = [f"{doc} aparece {n} vezes" for doc, n in repeated] + (
            [f"{nulls} registro(s) sem co_documento"] if nulls else []
        )
        return _fail(f"{duplicates} co_documento repetido(s) e {nulls} ausente(s) no dia", problems, **metadata)
    return CheckOutcome(True, f"{total} registros, nenhum co_documento repetido", metadata)


def quarantine_share(work: DayWork, max_share: float) -> CheckOutcome:
    """The quarantined share of the records read stays under ``max_share``."""
    counts = read_counts(work.staging) if work.staging.is_file() else None
    if counts is None:
        return _fail(f"falta o Parquet de preparação (com os contadores) {work.staging}")
    share = counts.quarantined / counts.read if counts.read else 0.0
    top = [f"{code}: {n}" for code, n in counts.top_reasons(5)]
    metadata = {
        "em quarentena": counts.quarantined,
        "lidos": counts.read,
        "fração": round(share, 6),
        "limite": max_share,
        "principais motivos": top,
    }
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
    return CheckOutcome(
        True, f"{len(actual)} arquivos, {sum(actual.values())} linhas, iguais à recontagem independente", metadata
    )


@dataclass(frozen=True)
class _FileScan:
    size: int
    sha256: str
    header_problem: str | None


def _gzip_head(compressed: bytes, length: int) -> bytes:
    """The first ``length`` bytes of a gzip stream (of several members, as the
    partitioner writes them) from its first compressed bytes."""
    out = b""
    data = compressed
    while len(out) < length and data:
        inflate = zlib.decompressobj(wbits=31)
        out += inflate.decompress(data, length - len(out))
        if not inflate.eof:
            break
        data = inflate.unused_data
    return out


def _scan_file(path: Path) -> _FileScan:
    """Size, SHA-256 and the gzip header's verdict of one file, in one read."""
    expected = csv_format.header_line() + csv_format.LINE_END.encode()
    digest = hashlib.sha256()
    size = 0
    problem: str | None = None
    with open(path, "rb") as handle:
        first = handle.read(_READ)
        digest.update(first)
        size += len(first)
        try:
            head = _gzip_head(first, len(expected))
        except zlib.error as exc:
            problem = f"{path.name}: não abre como gzip ({exc})"
        else:
            if head != expected:
                problem = f"{path.name}: cabeçalho diferente do layout"
        while chunk := handle.read(_READ):
            digest.update(chunk)
            size += len(chunk)
    return _FileScan(size, digest.hexdigest(), problem)


def _staged_scan(work: DayWork, paths: list[Path]) -> dict[Path, _FileScan | None]:
    """Every staged file read once (on both cores): what the intact and layout checks need."""

    def compute() -> dict[Path, _FileScan | None]:
        def one(path: Path) -> _FileScan | None:
            try:
                return _scan_file(path)
            except FileNotFoundError:
                return None

        with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="vacina-d1-leitura") as pool:
            return dict(zip(paths, pool.map(one, paths)))

    return _shared(("staged", str(work.partition_record), tuple(paths)), compute)


def _staged_paths(result) -> list[Path]:
    files = list(result.files) + ([result.empty_file] if result.empty_file is not None else [])
    return [f.path for f in files]


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
    # The CSV files come from the shared one-read scan; their representations (Parquet, a UF's
    # indicators) are hashed here: (name, size and SHA-256 found or None, size and SHA-256 recorded).
    scans = _staged_scan(work, _staged_paths(result))
    found: list[tuple[str, tuple[int, str] | None, int, str]] = []
    for f in files:
        scan = scans.get(f.path)
        found.append((f.file_name, None if scan is None else (scan.size, scan.sha256), f.bytes_stored, f.sha256_stored))
        for r in f.representations:
            here = (r.path.stat().st_size, sha256_file(r.path)) if r.path.is_file() else None
            found.append((r.file_name, here, r.bytes, r.sha256))
    problems = []
    bytes_read = 0
    for name, here, stored_bytes, stored_sha256 in found:
        if here is None:
            problems.append(f"{name}: não existe")
            continue
        size, sha256 = here
        bytes_read += size
        if size != stored_bytes:
            problems.append(f"{name}: {size} bytes, o particionador gravou {stored_bytes}")
        elif sha256 != stored_sha256:
            problems.append(f"{name}: SHA-256 diferente do gravado pelo particionador")
    known = {name for name, *_ in found}
    problems += [
        f"{p.name}: arquivo que o particionador não gravou" for p in sorted(work.files_dir.iterdir()) if p.name not in known
    ]
    metadata = {"arquivos": len(files), "bytes verificados": bytes_read}
    if problems:
        return _fail(f"{len(problems)} arquivo(s) preparado(s) alterado(s) ou ausente(s): {problems[0]}", problems, **metadata)
    return CheckOutcome(True, f"{len(files)} arquivos com o tamanho e o SHA-256 gravados", metadata)


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
    scans = _staged_scan(work, _staged_paths(result))
    problems = []
    for f in result.files:
        scan = scans.get(f.path)
        if scan is None:
            problems.append(f"{f.file_name}: não existe")
        elif scan.header_problem:
            problems.append(scan.header_problem)
    uf_files = [f for f in result.files if f.scope_kind == "uf"]
    if problems or not uf_files:
        return _fail(
            f"{len(problems)} arquivo(s) fora do layout: {problems[0] if problems else 'nenhum arquivo de UF'}", problems
        )
    con = _connect()
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in contract.FILE_COLUMNS) + "}"
    file_list = "[" + ", ".join(_lit(f.path) for f in uf_files) + "]"
    source = (
        f"read_csv({file_list}, delim=';', quote='\"', escape='\"', header=true, columns={columns}, "
        "filename=true, strict_mode=true, null_padding=false)"
    )
    vinculos = ", ".join(f"'{v.value}'" for v in contract.Vinculo)
    date_checks = ", ".join(
        f"count(*) FILTER (WHERE {_q(c)} IS NOT NULL AND try_strptime({_q(c)}, '%Y-%m-%d') IS NULL)"
        for c in contract.DATE_COLUMNS
    )
    width_checks = ", ".join(
        f"count(*) FILTER (WHERE {_q(c)} IS NOT NULL AND {_q(c)} <> '' AND NOT regexp_full_match({_q(c)}, '[0-9]{{{w}}}'))"
        for c, w in contract.CODE_WIDTHS.items()
    )
    try:
        # One pass over the UF files: per file, its lines, documents, vínculos, dates and code widths.
        per_file = con.execute(
            f"SELECT filename, count(*), count(DISTINCT co_documento), "
            f"count(*) FILTER (WHERE {contract.TERRITORY_COLUMN} IS NULL OR {contract.TERRITORY_COLUMN} NOT IN ({vinculos})), "
            f"{date_checks}, {width_checks} FROM {source} GROUP BY filename"
        ).fetchall()
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
        n_dates = len(contract.DATE_COLUMNS)
        for column, bad in zip(contract.DATE_COLUMNS, row[4 : 4 + n_dates] if row else ()):
            if bad:
                problems.append(f"{f.file_name}: {column} com {bad} data(s) fora do formato AAAA-MM-DD")
    widths: dict[str, int] = {}
    for row in per_file:
        for column, bad in zip(contract.CODE_WIDTHS, row[4 + len(contract.DATE_COLUMNS) :]):
            if bad:
                widths[column] = widths.get(column, 0) + int(bad)
    problems += [f"{c}: {n} código(s) sem {contract.CODE_WIDTHS[c]} dígitos nos arquivos de UF" for c, n in widths.items()]
    lines_read = sum(row[1] for row in per_file)
    metadata = {
        "arquivos com cabeçalho verificado": len(result.files),
        "arquivos de UF lidos": len(uf_files),
        "linhas lidas": int(lines_read),
    }
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
    assert manifest is not None  # _manifest returns one when it reports no problem
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
    assert manifest is not None  # _manifest returns one when it reports no problem
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
    return CheckOutcome(
        True, f"manifesto com {len(actual)} arquivos e {sum(actual.values())} linhas, igual à recontagem", metadata
    )
