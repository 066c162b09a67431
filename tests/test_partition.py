"""Partitioning of a day: who goes in which file (checked against an independent
DuckDB computation over the input), the vínculo column, byte-identical output,
the file format as pandas, polars and duckdb read it, and bad input."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import zlib
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest

from pipelines import contract, csv_format, reference
from pipelines.partition import PartitionInputError, partition_day
from tests.day_factory import raw_day, sample_rows, write_day

DAY = dt.date(2026, 11, 21)
DATA = Path(reference.__file__).parent / "data"


@pytest.fixture(scope="module")
def day_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dia") / "dia.parquet"
    write_day(path, DAY, 12_000, seed=11)
    return path


@pytest.fixture(scope="module")
def partitioned(day_file, tmp_path_factory):
    return partition_day(day_file, tmp_path_factory.mktemp("saida") / "staging", day=DAY, batch_rows=5_000)


def read_lines(path: Path) -> list[bytes]:
    """The CSV's lines (the header first), BOM and final newline checked."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    assert data.startswith(csv_format.BOM) and data.endswith(b"\n") and not data.endswith(b"\n\n")
    return data[len(csv_format.BOM) : -1].split(b"\n")


def expected_placements(parquet: Path) -> set[tuple[str, str, str]]:
    """(operation, co_documento, vínculo) of every line the day must produce, computed
    independently of the partitioner: SQL over the input and the IBGE list."""
    con = duckdb.connect()
    con.execute(
        f"create table m as select codigo_ibge6 as ibge6, uf from read_csv('{DATA / 'municipios_ibge.csv'}', all_varchar=true)"
    )
    con.execute(f"create table u as select uf from read_csv('{DATA / 'ufs.csv'}', all_varchar=true)")
    rows = con.execute(
        f"""
        with d as (
            select co_documento, co_municipio_estabelecimento as em, sg_uf_estabelecimento as eu,
                   co_municipio_paciente as pm, sg_uf_paciente as pu,
                   (co_pais_paciente is null or co_pais_paciente = '10') as brasileiro
            from read_parquet('{parquet}')
        ),
        r as (
            select d.*,
                   case when brasileiro then m.ibge6 end as rm,
                   case when brasileiro then coalesce(m.uf, (select u.uf from u where u.uf = d.pu)) end as ru
            from d left join m on m.ibge6 = d.pm
        )
        select 'imunizacao-total-' || lower(eu), co_documento,
               case when ru is not distinct from eu then 'ambos' else 'ocorrencia' end from r
        union all
        select 'imunizacao-total-' || lower(ru), co_documento, 'residencia' from r where ru is not null and ru <> eu
        union all
        select 'imunizacao-total-' || lower(eu) || '-' || em, co_documento,
               case when rm is not distinct from em then 'ambos' else 'ocorrencia' end from r
        union all
        select 'imunizacao-total-' || lower(ru) || '-' || rm, co_documento, 'residencia'
        from r where rm is not null and rm <> em
        """
    ).fetchall()
    return set(rows)


def actual_placements(files) -> tuple[set[tuple[str, str, str]], int]:
    found = set()
    lines_total = 0
    header = ";".join(contract.FILE_COLUMNS).encode()
    for f in files:
        lines = read_lines(f.path)
        assert lines[0] == header
        ids = []
        for line in lines[1:]:
            document, _, _ = line.partition(b";")
            vinculo = line.rpartition(b";")[2]
            found.add((f.operation, document.decode(), vinculo.decode()))
            ids.append(document)
        assert ids == sorted(ids) and len(set(ids)) == len(ids), f"{f.operation}: fora da ordem canônica"
        assert len(ids) == f.rows
        lines_total += len(ids)
    return found, lines_total


def test_every_record_is_exactly_where_its_establishment_and_residence_put_it(day_file, partitioned):
    expected = expected_placements(day_file)
    found, lines = actual_placements(partitioned.files)
    assert lines == len(found), "uma linha repetida num arquivo"
    assert found == expected
    vinculos = {v for _, _, v in found}
    assert vinculos == {"ocorrencia", "residencia", "ambos"}
    # Every record of the day is in at least its establishment's UF and municipality files.
    documents = set(pl.read_parquet(day_file, columns=["co_documento"])["co_documento"].to_list())
    assert {d for op, d, _ in found if op.count("-") == 2} == documents
    assert partitioned.records == len(documents) == partitioned.counts.valid
    assert partitioned.rows == len(found)


def test_each_uf_has_a_file_and_municipalities_only_with_records(partitioned):
    ufs = [f for f in partitioned.files if f.scope_kind == "uf"]
    assert sorted(f.uf for f in ufs) == sorted(reference.ufs())
    munis = [f for f in partitioned.files if f.scope_kind == "municipio"]
    assert munis and all(f.rows > 0 for f in munis)
    for f in munis:
        assert f.operation == contract.municipality_operation(f.uf, f.ibge6)
        assert reference.municipios()[f.ibge6].uf == f.uf
        assert f.file_name == contract.file_name(f.operation, DAY)


def test_staged_sizes_and_checksums_match_the_files(partitioned):
    for f in partitioned.files[:50] + partitioned.files[-50:]:
        stored = f.path.read_bytes()
        csv = gzip.decompress(stored)
        assert len(stored) == f.bytes_stored and hashlib.sha256(stored).hexdigest() == f.sha256_stored
        assert len(csv) == f.bytes_csv and hashlib.sha256(csv).hexdigest() == f.sha256_csv
        # One ordinary gzip member (readers that stop at the first member lose nothing).
        inflater = zlib.decompressobj(31)
        assert inflater.decompress(stored) == csv and inflater.eof and inflater.unused_data == b""
    empty = partitioned.empty_file
    assert gzip.decompress(empty.path.read_bytes()) == csv_format.header_line() + b"\n" and empty.rows == 0


def test_same_input_gives_byte_identical_files_whatever_the_batching(day_file, partitioned, tmp_path):
    again = partition_day(day_file, tmp_path / "again", day=DAY, batch_rows=5_000)
    assert [(f.operation, f.sha256_stored, f.sha256_csv) for f in again.files] == [
        (f.operation, f.sha256_stored, f.sha256_csv) for f in partitioned.files
    ]
    # Other batch sizes and two writer threads: the very same bytes (gzip pieces are
    # cut at fixed offsets of each file, not at batch boundaries).
    other = partition_day(day_file, tmp_path / "other", day=DAY, batch_rows=777, writers=2)
    assert [(f.operation, f.sha256_stored) for f in other.files] == [(f.operation, f.sha256_stored) for f in partitioned.files]
    # Tiny compression pieces, or no compression: the same CSV content.
    tiny = partition_day(day_file, tmp_path / "tiny", day=DAY, flush_bytes=1000)
    plain = partition_day(day_file, tmp_path / "plain", day=DAY, gzip_level=None)
    for run in (tiny, plain):
        assert [(f.operation, f.sha256_csv, f.rows, f.bytes_csv) for f in run.files] == [
            (f.operation, f.sha256_csv, f.rows, f.bytes_csv) for f in partitioned.files
        ]
    for f in tiny.files[:50]:
        assert gzip.decompress(f.path.read_bytes()) == gzip.decompress(
            f.path.parent.parent.joinpath("other", f.file_name).read_bytes()
        )
    for f in plain.files[:20]:
        assert f.path.name.endswith(".csv") and hashlib.sha256(f.path.read_bytes()).hexdigest() == f.sha256_csv


def test_one_uf_alone_gives_the_same_files_as_the_whole_day(day_file, partitioned, tmp_path):
    alone = partition_day(day_file, tmp_path / "sp", day=DAY, uf="sp")
    whole = {f.operation: f for f in partitioned.files if f.uf == "SP"}
    assert alone.uf == "SP" and {f.operation for f in alone.files} == set(whole)
    for f in alone.files:
        assert f.sha256_stored == whole[f.operation].sha256_stored


def _day_of(rows: list[dict], tmp_path: Path, name: str = "casos") -> Path:
    """A tiny canonical day from the sample's first row with some fields replaced."""
    base = sample_rows().head(1).to_dicts()[0]
    frame = pl.DataFrame([{**base, "dt_entrada_rnds": DAY.isoformat(), "dt_vacina": DAY.isoformat(), **r} for r in rows])
    path = tmp_path / f"{name}.parquet"
    counts = write_day(path, DAY, 0, frame=contract.conform_raw(frame))
    assert counts.valid == len(rows), counts.reasons
    return path


def _placements(tmp_path: Path, rows: list[dict]) -> dict[str, dict[str, str]]:
    result = partition_day(_day_of(rows, tmp_path), tmp_path / "out", day=DAY)
    placed: dict[str, dict[str, str]] = {}
    for f in result.files:
        for line in read_lines(f.path)[1:]:
            placed.setdefault(f.operation, {})[line.partition(b";")[0].decode()] = line.rpartition(b";")[2].decode()
    return placed


RIO, NITEROI, SAO_PAULO, CAMPINAS = "330455", "330330", "355030", "350950"


def test_vinculo_is_computed_per_file(tmp_path):
    rj, sp = "imunizacao-total-rj", "imunizacao-total-sp"
    placed = _placements(
        tmp_path,
        [
            # SP resident (São Paulo) vaccinated in Rio de Janeiro.
            dict(
                co_documento="a1",
                co_municipio_estabelecimento=RIO,
                sg_uf_estabelecimento="RJ",
                co_municipio_paciente=SAO_PAULO,
                sg_uf_paciente="SP",
            ),
            # Campinas resident vaccinated in São Paulo: same UF, other municipality.
            dict(
                co_documento="a2",
                co_municipio_estabelecimento=SAO_PAULO,
                sg_uf_estabelecimento="SP",
                co_municipio_paciente=CAMPINAS,
                sg_uf_paciente="SP",
            ),
            # Niterói resident vaccinated in Niterói.
            dict(
                co_documento="a3",
                co_municipio_estabelecimento=NITEROI,
                sg_uf_estabelecimento="RJ",
                co_municipio_paciente=NITEROI,
                sg_uf_paciente="RJ",
            ),
        ],
    )
    assert placed[rj]["a1"] == "ocorrencia" and placed[f"{rj}-{RIO}"]["a1"] == "ocorrencia"
    assert placed[sp]["a1"] == "residencia" and placed[f"{sp}-{SAO_PAULO}"]["a1"] == "residencia"
    assert placed[sp]["a2"] == "ambos"
    assert placed[f"{sp}-{SAO_PAULO}"]["a2"] == "ocorrencia" and placed[f"{sp}-{CAMPINAS}"]["a2"] == "residencia"
    assert placed[rj]["a3"] == "ambos" and placed[f"{rj}-{NITEROI}"]["a3"] == "ambos"
    assert "a2" not in placed[rj] and "a3" not in placed[sp]
    assert sum(len(v) for v in placed.values()) == 4 + 3 + 2
    # Only RJ and SP have lines (the other 25 UF files hold just the header).
    assert len([op for op in placed if op.count("-") == 2]) == 2


def test_unknown_or_foreign_residence_goes_by_occurrence_only_and_uf_only_residence_by_uf(tmp_path):
    est = dict(co_municipio_estabelecimento=RIO, sg_uf_estabelecimento="RJ")
    placed = _placements(
        tmp_path,
        [
            dict(co_documento="u1", **est, co_municipio_paciente="999999", sg_uf_paciente="XX"),
            dict(co_documento="u2", **est, co_municipio_paciente=None, sg_uf_paciente=None, co_pais_paciente=None),
            dict(
                co_documento="u3",
                **est,
                co_municipio_paciente=None,
                sg_uf_paciente="XX",
                co_pais_paciente="45",
                no_pais_paciente="ARGENTINA",
            ),
            # Foreign country wins over a Brazilian-looking residence.
            dict(co_documento="u4", **est, co_municipio_paciente=SAO_PAULO, sg_uf_paciente="SP", co_pais_paciente="45"),
            # Municipality unknown, UF known: the UF file by residence, no municipality file.
            dict(co_documento="u5", **est, co_municipio_paciente="999999", sg_uf_paciente="SP"),
            dict(co_documento="u6", **est, co_municipio_paciente=None, sg_uf_paciente="RJ"),
        ],
    )
    rj, sp = "imunizacao-total-rj", "imunizacao-total-sp"
    for doc in ("u1", "u2", "u3", "u4"):
        assert placed[rj][doc] == "ocorrencia" and placed[f"{rj}-{RIO}"][doc] == "ocorrencia"
        assert doc not in placed.get(sp, {})
    assert placed[sp] == {"u5": "residencia"}
    assert placed[rj]["u5"] == "ocorrencia"
    assert placed[rj]["u6"] == "ambos" and placed[f"{rj}-{RIO}"]["u6"] == "ocorrencia"
    assert set(placed) == {rj, sp, f"{rj}-{RIO}"}


def test_files_read_back_the_same_with_pandas_polars_and_duckdb(tmp_path):
    names = ['UBS "SÃO JOSÉ"; ANEXO', "Posto Nº 1 — Ação", 'ÇÃÕÉÍ; ;""']
    rows = [
        dict(
            co_documento=f"r{i}",
            co_municipio_estabelecimento=SAO_PAULO,
            sg_uf_estabelecimento="SP",
            co_municipio_paciente=SAO_PAULO,
            sg_uf_paciente="SP",
            no_fantasia_estalecimento=name,
            co_cnes_estabelecimento="0012345",
            co_raca_cor_paciente="01",
            co_vacina_grupo_atendimento="000210",
        )
        for i, name in enumerate(names)
    ]
    source = _day_of(rows, tmp_path)
    result = partition_day(source, tmp_path / "out", day=DAY)
    expected = (
        pl.read_parquet(source)
        .with_columns(pl.col(c).cast(pl.String) for c in contract.DATE_COLUMNS)
        .with_columns(pl.lit("ambos").alias(contract.TERRITORY_COLUMN))
    )
    path = next(f.path for f in result.files if f.operation == "imunizacao-total-sp")
    readers = {
        "polars": lambda: pl.read_csv(path, separator=";", infer_schema=False),
        "pandas": lambda: pl.from_pandas(pd.read_csv(path, sep=";", dtype=str)),
        "duckdb": lambda: duckdb.sql(f"select * from read_csv('{path}', delim=';', all_varchar=true)").pl(),
    }
    for name, read in readers.items():
        frame = read()
        assert frame.columns == list(contract.FILE_COLUMNS), name  # the BOM is not in the first name
        frame = frame.with_columns(pl.col(c).cast(pl.String) for c in frame.columns)
        assert frame.to_dicts() == expected.to_dicts(), name
    assert set(pl.read_csv(path, separator=";", infer_schema=False)["no_fantasia_estalecimento"]) == set(names)


def test_bad_input_is_refused_with_one_clear_line(day_file, tmp_path):
    def refuse(path, fragment, day=DAY):
        with pytest.raises(PartitionInputError) as info:
            partition_day(path, tmp_path / "x", day=day)
        message = str(info.value)
        assert fragment in message and "\n" not in message
        assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())

    refuse(tmp_path / "nada.parquet", "não encontrado")
    text = tmp_path / "texto.parquet"
    text.write_text("não sou parquet")
    refuse(text, "não é um arquivo Parquet")
    other = tmp_path / "outro.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(other)
    refuse(other, "layout do contrato")
    refuse(day_file, "é do dia 2026-11-21", day=dt.date(2026, 11, 20))
    bare = tmp_path / "sem_meta.parquet"
    pl.read_parquet(day_file).write_parquet(bare)
    refuse(bare, "contadores da extração")
    with pytest.raises(PartitionInputError, match="UF desconhecida"):
        partition_day(day_file, tmp_path / "y", day=DAY, uf="ZZ")


def test_unsorted_input_is_refused(day_file, tmp_path):
    import pyarrow.parquet as pq

    table = pq.read_table(day_file)
    shuffled = table.take(list(range(table.num_rows))[::-1])
    path = tmp_path / "fora_de_ordem.parquet"
    pq.write_table(shuffled.replace_schema_metadata(table.schema.metadata), path)
    with pytest.raises(PartitionInputError, match="ordenada"):
        partition_day(path, tmp_path / "z", day=DAY)
    assert not (tmp_path / "z").exists()


def test_empty_day_gives_27_header_only_files(tmp_path):
    path = tmp_path / "vazio.parquet"
    write_day(path, DAY, 0, frame=contract.conform_raw(raw_day(DAY, 0, 1)))
    result = partition_day(path, tmp_path / "out", day=DAY)
    assert len(result.files) == 27 and all(f.rows == 0 for f in result.files)
    assert {f.sha256_csv for f in result.files} == {hashlib.sha256(csv_format.header_line() + b"\n").hexdigest()}


def test_each_parquet_holds_its_csv_rows_in_order_and_the_spill_is_gone(partitioned):
    # The spill is written per UF group and read back one group at a time; every
    # file's Parquet must still carry exactly its CSV's rows, in order, with the vínculo.
    import pyarrow.parquet as pq

    listed = {partitioned.empty_file.path.name} | {r.path.name for r in partitioned.empty_file.representations}
    for f in partitioned.files:
        listed |= {f.path.name} | {r.path.name for r in f.representations}
        parquet = next(r for r in f.representations if r.kind == "parquet")
        table = pq.read_table(parquet.path, columns=["co_documento", "tp_vinculo_territorio"])
        lines = read_lines(f.path)[1:]
        expected = [(line.partition(b";")[0].decode(), line.rpartition(b";")[2].decode()) for line in lines]
        got = list(zip(table.column("co_documento").to_pylist(), table.column("tp_vinculo_territorio").to_pylist()))
        assert got == expected and parquet.rows == f.rows, f.operation
    assert {p.name for p in partitioned.staging_dir.iterdir()} == listed
