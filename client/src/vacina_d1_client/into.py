"""``--into``: a database table that always holds the current state of the
territory's records — DuckDB file (default, no server) or PostgreSQL.

The RNDS fields, as the D-1 files carry them (the OpenDataSUS dictionary and the
FHIR mapping in ``pipelines/sources/fhir.py``):

* ``co_documento`` identifies a record; a later day's line with the same
  ``co_documento`` is a new version of it (the later day wins).
* ``st_documento = 'entered-in-error'``: the document was sent in error — it is
  not a vaccination, so the record leaves the current state.
* ``dt_deletado_rnds`` filled: the record was deleted in the RNDS on that date —
  it leaves the current state.
* ``co_troca_documento = X``: this document replaces (``relatesTo replaces``)
  document ``X``; ``X`` leaves the current state (and its per-immunization items
  ``X-i<k>``, which is how one document with several immunizations is keyed).
  A replacement that is itself entered-in-error still removes ``X``: cancelling
  by replacement.

Three tables (names in Portuguese, for whoever writes the reports):

* ``vacina_d1_linhas``: every line of the loaded version of each day's file, as
  published. A republished day replaces its lines; nothing else is kept.
* ``vacina_d1_registros``: the current state, one row per (``operacao``,
  ``co_documento``), recomputed from the lines for just the documents a day's
  file touches (its old and new lines and the documents they replace). The result
  depends only on which versions are loaded, never on the order they arrived:
  re-running a day changes nothing, and a republished day with one correction
  changes that one row.
* ``vacina_d1_auditoria``: one row per file version applied, with the day's counts.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

from vacina_d1_client.errors import UsageError

# The D-1 file's columns (pipelines/contract.py FILE_COLUMNS; repeated here so the
# client installs without the pipeline). Checked against each file's header.
FILE_COLUMNS: tuple[str, ...] = (
    "co_documento", "co_paciente", "tp_sexo_paciente", "co_raca_cor_paciente", "no_raca_cor_paciente",
    "co_municipio_paciente", "co_pais_paciente", "no_municipio_paciente", "no_pais_paciente", "sg_uf_paciente",
    "nu_cep_paciente", "ds_nacionalidade_paciente", "no_etnia_indigena_paciente", "co_etnia_indigena_paciente",
    "co_cnes_estabelecimento", "no_razao_social_estabelecimento", "no_fantasia_estalecimento",
    "co_municipio_estabelecimento", "no_municipio_estabelecimento", "sg_uf_estabelecimento", "co_troca_documento",
    "co_vacina", "sg_vacina", "dt_vacina", "co_dose_vacina", "ds_dose_vacina", "co_local_aplicacao",
    "ds_local_aplicacao", "co_via_administracao", "ds_via_administracao", "co_lote_vacina", "ds_vacina_fabricante",
    "dt_entrada_rnds", "co_sistema_origem", "ds_sistema_origem", "st_documento", "co_estrategia_vacinacao",
    "ds_estrategia_vacinacao", "co_origem_registro", "ds_origem_registro", "co_vacina_grupo_atendimento",
    "ds_vacina_grupo_atendimento", "co_vacina_categoria_atendimento", "ds_vacina_categoria_atendimento",
    "co_vacina_fabricante", "ds_vacina", "ds_condicao_maternal", "co_tipo_estabelecimento",
    "ds_tipo_estabelecimento", "co_natureza_estabelecimento", "ds_natureza_estabelecimento", "nu_idade_paciente",
    "co_condicao_maternal", "no_uf_paciente", "no_uf_estabelecimento", "dt_deletado_rnds", "tp_vinculo_territorio",
)
DATE_COLUMNS = ("dt_vacina", "dt_entrada_rnds", "dt_deletado_rnds")
ENTERED_IN_ERROR = "entered-in-error"
LINES, CURRENT, AUDIT = "vacina_d1_linhas", "vacina_d1_registros", "vacina_d1_auditoria"
ITEM_SUFFIX = "-i[0-9]+$"  # "<documento>-i<k>": one of a document's several immunizations


@dataclass
class Applied:
    operation: str
    day: dt.date
    version: int
    sha256: str
    lines: int
    inserted: int
    updated: int
    removed: int
    current: int
    skipped: bool = False

    def as_dict(self) -> dict:
        return {
            "operacao": self.operation, "dia": self.day.isoformat(), "versao": self.version, "linhas": self.lines,
            "inseridos": self.inserted, "atualizados": self.updated, "removidos": self.removed,
            "registros_atuais": self.current, "ja_aplicado": self.skipped,
        }


def read_header(path: Path) -> list[str]:
    with gzip.open(path, "rb") as handle:
        line = handle.readline().decode("utf-8-sig").rstrip("\r\n")
    columns = [c.strip().strip('"') for c in line.split(";")]
    missing = [c for c in FILE_COLUMNS if c not in columns]
    if missing:
        raise UsageError(f"{path.name}: o arquivo não tem as colunas esperadas (faltam {', '.join(missing[:5])})")
    return columns


class Target:
    """The SQL both databases run; each subclass loads a file and names its types."""

    placeholder = "?"
    description = ""

    def __init__(self):
        self.content = ", ".join(f"coalesce({c}, '')" for c in FILE_COLUMNS)

    # -- dialect -----------------------------------------------------------------------------
    def execute(self, sql: str, params: tuple = ()) -> None:
        raise NotImplementedError

    def scalar(self, sql: str, params: tuple = ()):
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def load_new_lines(self, path: Path, columns: list[str]) -> None:
        """Temporary table ``novas`` (ordem, every FILE_COLUMNS as text) with the file's lines."""
        raise NotImplementedError

    def date_of(self, column: str) -> str:
        raise NotImplementedError

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    # -- schema ------------------------------------------------------------------------------
    def create_schema(self) -> None:
        text_columns = ", ".join(f"{c} TEXT" for c in FILE_COLUMNS)
        typed = ", ".join(f"{c} {'DATE' if c in DATE_COLUMNS else 'TEXT'}" for c in FILE_COLUMNS)
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {LINES} (operacao TEXT NOT NULL, dia DATE NOT NULL, versao INTEGER NOT NULL, "
            f"ordem BIGINT NOT NULL, {text_columns})"
        )
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {CURRENT} (operacao TEXT NOT NULL, {typed}, dia_arquivo DATE NOT NULL, "
            f"versao_arquivo INTEGER NOT NULL, assinatura TEXT NOT NULL)"
        )
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {AUDIT} (operacao TEXT NOT NULL, dia DATE NOT NULL, versao INTEGER NOT NULL, "
            "sha256 TEXT NOT NULL, aplicado_em_utc TIMESTAMP NOT NULL, linhas BIGINT NOT NULL, finais BIGINT NOT NULL, "
            "entered_in_error BIGINT NOT NULL, deletados BIGINT NOT NULL, substituicoes BIGINT NOT NULL, "
            "inseridos BIGINT NOT NULL, atualizados BIGINT NOT NULL, removidos BIGINT NOT NULL, "
            "registros_atuais BIGINT NOT NULL)"
        )
        self.create_indexes()

    def create_indexes(self) -> None:
        pass

    # -- applying a file -----------------------------------------------------------------------
    def applied_sha256(self, operation: str, day: dt.date) -> str | None:
        """The SHA-256 of the version of (operation, day) the table reflects now."""
        return self.scalar(
            self.sql(f"SELECT sha256 FROM {AUDIT} WHERE operacao = ? AND dia = ? ORDER BY aplicado_em_utc DESC, versao DESC LIMIT 1"),
            (operation, day),
        )

    def apply(self, path: Path, operation: str, day: dt.date, version: int, sha256: str) -> Applied:
        if self.applied_sha256(operation, day) == sha256:
            current = self.scalar(self.sql(f"SELECT count(*) FROM {CURRENT} WHERE operacao = ?"), (operation,))
            return Applied(operation, day, version, sha256, 0, 0, 0, 0, int(current), skipped=True)
        columns = read_header(path)
        self.begin()
        try:
            applied = self._apply(path, columns, operation, day, version, sha256)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return applied

    def _apply(self, path: Path, columns: list[str], operation: str, day: dt.date, version: int, sha256: str) -> Applied:
        q = self.sql
        for temp in ("novas", "afetados", "depois"):
            self.execute(f"DROP TABLE IF EXISTS {temp}")
        self.load_new_lines(path, columns)
        counts = {
            "linhas": self.scalar("SELECT count(*) FROM novas"),
            "finais": self.scalar(f"SELECT count(*) FROM novas WHERE st_documento = 'final'"),
            "entered_in_error": self.scalar(f"SELECT count(*) FROM novas WHERE st_documento = '{ENTERED_IN_ERROR}'"),
            "deletados": self.scalar("SELECT count(*) FROM novas WHERE coalesce(dt_deletado_rnds, '') <> ''"),
            "substituicoes": self.scalar("SELECT count(*) FROM novas WHERE coalesce(co_troca_documento, '') <> ''"),
        }
        # The documents this file can change: its lines old and new, and what they replace.
        self.execute(q(
            f"CREATE TEMP TABLE afetados AS "
            f"WITH tocados AS ("
            f"  SELECT co_documento, co_troca_documento FROM {LINES} WHERE operacao = ? AND dia = ? "
            f"  UNION ALL SELECT co_documento, co_troca_documento FROM novas), "
            f"substituidos AS (SELECT DISTINCT co_troca_documento AS alvo FROM tocados WHERE coalesce(co_troca_documento, '') <> '') "
            f"SELECT co_documento FROM tocados WHERE co_documento IS NOT NULL "
            f"UNION SELECT l.co_documento FROM {LINES} l JOIN substituidos s ON l.co_documento = s.alvo WHERE l.operacao = ? "
            f"UNION SELECT l.co_documento FROM {LINES} l JOIN substituidos s "
            f"  ON regexp_replace(l.co_documento, '{ITEM_SUFFIX}', '') = s.alvo WHERE l.operacao = ?"
        ), (operation, day, operation, operation))
        self.execute(q(f"DELETE FROM {LINES} WHERE operacao = ? AND dia = ?"), (operation, day))
        names = ", ".join(FILE_COLUMNS)
        self.execute(
            q(f"INSERT INTO {LINES} (operacao, dia, versao, ordem, {names}) SELECT ?, ?, ?, ordem, {names} FROM novas"),
            (operation, day, version),
        )
        typed = ", ".join(self.date_of(c) if c in DATE_COLUMNS else c for c in FILE_COLUMNS)
        # The winner of each affected document: its latest line, unless that line is
        # entered-in-error or deleted, or any line replaces the document.
        self.execute(q(
            f"CREATE TEMP TABLE depois AS "
            f"WITH candidatos AS ("
            f"  SELECT l.*, row_number() OVER (PARTITION BY co_documento ORDER BY dia DESC, ordem DESC) AS posicao "
            f"  FROM {LINES} l WHERE operacao = ? AND co_documento IN (SELECT co_documento FROM afetados)) "
            f"SELECT operacao, {typed}, dia AS dia_arquivo, versao AS versao_arquivo, "
            f"  md5(concat_ws('|', {self.content})) AS assinatura "
            f"FROM candidatos c WHERE posicao = 1 "
            f"  AND coalesce(st_documento, '') <> '{ENTERED_IN_ERROR}' AND coalesce(dt_deletado_rnds, '') = '' "
            f"  AND NOT EXISTS (SELECT 1 FROM {LINES} s WHERE s.operacao = ? AND s.co_troca_documento = c.co_documento) "
            f"  AND NOT EXISTS (SELECT 1 FROM {LINES} s WHERE s.operacao = ? "
            f"    AND s.co_troca_documento = regexp_replace(c.co_documento, '{ITEM_SUFFIX}', ''))"
        ), (operation, operation, operation))
        same = "r.co_documento = d.co_documento AND r.assinatura = d.assinatura AND r.dia_arquivo = d.dia_arquivo"
        before = f"FROM {CURRENT} r WHERE r.operacao = ? AND r.co_documento IN (SELECT co_documento FROM afetados)"
        removed = self.scalar(q(f"SELECT count(*) {before} AND NOT EXISTS (SELECT 1 FROM depois d WHERE d.co_documento = r.co_documento)"), (operation,))
        updated = self.scalar(q(
            f"SELECT count(*) {before} AND EXISTS (SELECT 1 FROM depois d WHERE d.co_documento = r.co_documento) "
            f"AND NOT EXISTS (SELECT 1 FROM depois d WHERE {same})"
        ), (operation,))
        inserted = self.scalar(q(
            f"SELECT count(*) FROM depois d WHERE NOT EXISTS (SELECT 1 FROM {CURRENT} r WHERE r.operacao = ? AND r.co_documento = d.co_documento)"
        ), (operation,))
        # Only what changed is rewritten.
        self.execute(q(
            f"DELETE FROM {CURRENT} WHERE operacao = ? AND co_documento IN (SELECT co_documento FROM afetados) "
            f"AND NOT EXISTS (SELECT 1 FROM depois d WHERE d.co_documento = {CURRENT}.co_documento "
            f"AND d.assinatura = {CURRENT}.assinatura AND d.dia_arquivo = {CURRENT}.dia_arquivo)"
        ), (operation,))
        self.execute(q(
            f"INSERT INTO {CURRENT} SELECT * FROM depois d WHERE NOT EXISTS "
            f"(SELECT 1 FROM {CURRENT} r WHERE r.operacao = ? AND r.co_documento = d.co_documento)"
        ), (operation,))
        current = self.scalar(q(f"SELECT count(*) FROM {CURRENT} WHERE operacao = ?"), (operation,))
        applied = Applied(operation, day, version, sha256, int(counts["linhas"]), int(inserted), int(updated), int(removed), int(current))
        self.execute(q(
            f"INSERT INTO {AUDIT} (operacao, dia, versao, sha256, aplicado_em_utc, linhas, finais, entered_in_error, "
            f"deletados, substituicoes, inseridos, atualizados, removidos, registros_atuais) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ), (
            operation, day, version, sha256, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
            *(int(counts[k]) for k in ("linhas", "finais", "entered_in_error", "deletados", "substituicoes")),
            applied.inserted, applied.updated, applied.removed, applied.current,
        ))
        for temp in ("novas", "afetados", "depois"):
            self.execute(f"DROP TABLE IF EXISTS {temp}")
        return applied


class DuckDBTarget(Target):
    placeholder = "?"

    def __init__(self, path: Path):
        super().__init__()
        try:
            import duckdb
        except ModuleNotFoundError:
            raise UsageError(
                "--into com um arquivo DuckDB precisa do pacote duckdb: pip install \"vacina-d1-client[duckdb]\""
            ) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            raise UsageError(f"não foi possível abrir {path}: {exc} (está aberto em outro programa?)") from None
        self.con.execute("SET enable_progress_bar = false")  # stdout carries only the final JSON line
        self.description = str(path)

    def execute(self, sql, params=()):
        self.con.execute(sql, list(params))

    def scalar(self, sql, params=()):
        row = self.con.execute(sql, list(params)).fetchone()
        return row[0] if row else None

    def begin(self):
        self.con.begin()

    def commit(self):
        self.con.commit()

    def rollback(self):
        self.con.rollback()

    def close(self):
        self.con.close()

    def date_of(self, column):
        return f"TRY_CAST(NULLIF({column}, '') AS DATE) AS {column}"

    def load_new_lines(self, path, columns):
        spec = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in columns) + "}"
        selected = ", ".join(FILE_COLUMNS)
        # The file is read by DuckDB itself (gzip, BOM, ';', minimal quoting), in order.
        self.con.execute(
            f"CREATE TEMP TABLE novas AS SELECT row_number() OVER () AS ordem, {selected} FROM read_csv(?, "
            f"header = true, delim = ';', quote = '\"', escape = '\"', columns = {spec}, compression = 'gzip', "
            f"parallel = false)",
            [str(path)],
        )


class PostgresTarget(Target):
    placeholder = "%s"

    def __init__(self, url: str):
        super().__init__()
        try:
            import psycopg2
        except ModuleNotFoundError:
            raise UsageError(
                "--into postgresql://… precisa do pacote psycopg2: pip install \"vacina-d1-client[postgresql]\""
            ) from None
        try:
            self.con = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://", 1), connect_timeout=15)
        except psycopg2.Error as exc:
            raise UsageError(f"não foi possível conectar ao PostgreSQL: {str(exc).strip().splitlines()[0]}") from None
        self.con.set_client_encoding("UTF8")
        self.description = "postgresql://" + url.split("@")[-1]  # never the password

    def execute(self, sql, params=()):
        with self.con.cursor() as cur:
            cur.execute(sql, params)

    def scalar(self, sql, params=()):
        with self.con.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
        return row[0] if row else None

    def begin(self):
        pass  # psycopg2 opens the transaction on the first statement

    def commit(self):
        self.con.commit()

    def rollback(self):
        self.con.rollback()

    def close(self):
        self.con.close()

    def create_schema(self):
        super().create_schema()
        self.con.commit()

    def create_indexes(self):
        self.execute(f"CREATE INDEX IF NOT EXISTS {LINES}_dia ON {LINES} (operacao, dia)")
        self.execute(f"CREATE INDEX IF NOT EXISTS {LINES}_documento ON {LINES} (operacao, co_documento)")
        self.execute(f"CREATE INDEX IF NOT EXISTS {LINES}_troca ON {LINES} (operacao, co_troca_documento) WHERE co_troca_documento IS NOT NULL")
        self.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {CURRENT}_documento ON {CURRENT} (operacao, co_documento)")
        self.execute(f"CREATE INDEX IF NOT EXISTS {AUDIT}_dia ON {AUDIT} (operacao, dia)")

    def date_of(self, column):
        return f"CASE WHEN {column} ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' THEN {column}::date END AS {column}"

    def load_new_lines(self, path, columns):
        text_columns = ", ".join(f"{c} TEXT" for c in columns)
        self.execute(f"CREATE TEMP TABLE novas_arquivo (ordem BIGSERIAL, {text_columns})")
        with gzip.open(path, "rb") as handle, self.con.cursor() as cur:
            handle.readline()  # the header, already read
            cur.copy_expert(
                f"COPY novas_arquivo ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, DELIMITER ';', QUOTE '\"', ESCAPE '\"')",
                io.BufferedReader(handle, buffer_size=1 << 20),
            )
        self.execute(f"CREATE TEMP TABLE novas AS SELECT ordem, {', '.join(FILE_COLUMNS)} FROM novas_arquivo")
        self.execute("DROP TABLE novas_arquivo")


def open_target(into: str) -> Target:
    if into.startswith(("postgresql://", "postgres://", "postgresql+psycopg2://")):
        target: Target = PostgresTarget(into)
    elif "://" in into:
        raise UsageError(f"--into: use um arquivo DuckDB (dados.duckdb) ou uma URL postgresql://, não {into.split('://')[0]}://")
    else:
        target = DuckDBTarget(Path(into))
    target.create_schema()
    return target


def load(target: Target, state, operations: list[str]) -> list[Applied]:
    """Apply every day file of the state that the database does not reflect yet."""
    applied = []
    for key, entry in sorted(state.files.items()):
        operation, day_text = key.rsplit("/", 1)
        if operation not in operations:
            continue
        path = state.local_path(entry)
        if not path.exists():
            continue
        applied.append(target.apply(path, operation, dt.date.fromisoformat(day_text), int(entry["versao"]), entry["sha256"]))
    return applied
