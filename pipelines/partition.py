"""Partitioning of one entry day into the UF files and the municipality files.

Who goes where. A record is in the file of the UF of its establishment and in the
file of the UF where the patient lives, and likewise in the file of its
establishment's municipality and in the file of the patient's municipality.
The last column, ``tp_vinculo_territorio``, is computed per file: ``ocorrencia``
when only the establishment is in the file's territory, ``residencia`` when only
the residence is, ``ambos`` when both are (an SP resident vaccinated in RJ is
``ocorrencia`` in RJ's files and ``residencia`` in SP's; a resident of Campinas
vaccinated in São Paulo is ``ambos`` in SP's UF file).

Residence:
- the residence municipality is ``co_municipio_paciente`` when it is a municipality
  of the IBGE list; the residence UF is that municipality's UF;
- when the municipality is unknown (null or ``999999``) but ``sg_uf_paciente`` is a
  real UF, the record still goes to that UF's file by residence (and to no
  municipality file by residence);
- a patient whose country of residence (``co_pais_paciente``) is not Brazil
  (``10``) has no residence here, whatever else the record says;
- unknown residence (null, ``999999``/``XX``, foreign) goes by occurrence only.

Every UF gets a file (27; only the header when nobody is in it); a municipality
gets a file when at least one record is in it. Rows keep the order of the
canonical input (``co_documento``), so the same input gives byte-identical files.

How, fast. The input is streamed in row batches (the next one read by a thread
while this one is processed). Each batch is serialised to CSV once (polars, both
cores) into a buffer reused from batch to batch; the lines are split on ``\\n``
(text never holds a line break after validation) into a zero-copy Arrow array; a
small routing table (target file, row, vínculo) sorted by target gives, through
one Arrow ``take``, one contiguous buffer holding every target's lines with their
vínculo suffix; each target's slice goes to a writer thread that hashes it
(SHA-256 of the CSV) and writes it, compressed piecewise into one gzip member (see
``csv_format``; pieces cut at fixed offsets of each file, so the bytes do not
depend on the batching), to the target's staging file. Memory stays bounded by
the batch size plus less than one gzip piece per target; the writer thread
overlaps compression, hashing and I/O with the next batch's serialisation.

Beside each CSV (issue 12): its typed Parquet (the same routed rows, spilled once
per batch and written per file at the end, ``_ParquetSpill``), and for each UF
the day's indicator table (``pipelines.indicators``, counted from the same
per-record places); both become the file's ``representations``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import os
import queue
import resource
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import contract, csv_format, reference
from pipelines import indicators as day_indicators
from pipelines.extract import ExtractCounts, read_counts
from serving.storage import sha256_file

SCOPE_UF = "uf"
SCOPE_MUNICIPIO = "municipio"
BRASIL_PAIS = "10"

# Rows per batch: memory is about a batch (input frame, CSV, gathered lines) times
# three, plus what the targets hold until their next gzip piece.
DEFAULT_BATCH_ROWS = 50_000
# The gzip pieces' size: each target holds less than this in memory until it is
# compressed; primed with the previous 32 KiB, 64 KiB pieces compress within 0.3%
# of one stream (bench/README.md).
DEFAULT_FLUSH_BYTES = 64 * 1024
# Past 1 MiB a file is compressed in pieces 16 times larger (1 MiB with the default).
GROW_PIECES_AFTER = 1024 * 1024
LARGE_PIECE_FACTOR = 16

_VINCULOS = (contract.Vinculo.OCORRENCIA, contract.Vinculo.RESIDENCIA, contract.Vinculo.AMBOS)
_OCORRENCIA, _RESIDENCIA, _AMBOS = 0, 1, 2
_SUFFIXES = [csv_format.vinculo_suffix(v) for v in _VINCULOS]
_ROW_BITS = 38  # rows per batch < 2**38; target ids fit in the remaining bits
EMPTY_FILE_NAME = "_somente-cabecalho{suffix}"


class PartitionInputError(ValueError):
    """A staging file partitioning cannot take: one line saying why."""


@dataclass(frozen=True)
class FileTarget:
    index: int
    operation: str
    scope_kind: str
    uf: str
    ibge6: str | None


@functools.cache
def targets() -> tuple[FileTarget, ...]:
    """Every possible file of a day: the 27 UFs, then every municipality (by ibge6)."""
    result = [FileTarget(i, contract.state_operation(uf), SCOPE_UF, uf, None) for i, uf in enumerate(sorted(reference.ufs()))]
    for m in sorted(reference.municipios().values(), key=lambda m: m.ibge6):
        result.append(FileTarget(len(result), contract.municipality_operation(m.uf, m.ibge6), SCOPE_MUNICIPIO, m.uf, m.ibge6))
    return tuple(result)


@dataclass(frozen=True)
class Representation:
    """Another form of a file's content, published beside it under the same version:
    the typed Parquet (``parquet``), and for UF files the day's indicator table
    (``indicadores.csv``, ``indicadores.parquet``)."""

    kind: str
    file_name: str
    path: Path
    rows: int
    bytes: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class PartitionedFile:
    """One staged file of a day and what publication needs to know about it."""

    operation: str
    scope_kind: str
    uf: str
    ibge6: str | None
    day: dt.date
    file_name: str
    path: Path
    rows: int
    bytes_csv: int
    bytes_stored: int
    sha256_csv: str
    sha256_stored: str
    content_type: str
    content_encoding: str | None = None
    representations: tuple[Representation, ...] = ()


@dataclass
class PartitionResult:
    day: dt.date
    uf: str | None
    input_path: Path
    input_sha256: str
    counts: ExtractCounts
    records: int
    files: list[PartitionedFile]
    staging_dir: Path
    compressed: bool
    # The header-only file: what an operation that lost all its records is published as.
    empty_file: PartitionedFile | None = None
    layout_version: str = contract.LAYOUT_VERSION
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def table_schemas(self) -> dict:
        """The columns' schemas for the day's data package (``pipelines.datapackage``)."""
        from pipelines import datapackage

        return datapackage.table_schemas()

    @property
    def bytes_csv(self) -> int:
        return sum(f.bytes_csv for f in self.files)

    @property
    def bytes_stored(self) -> int:
        return sum(f.bytes_stored for f in self.files)


# -- the input ---------------------------------------------------------------------------

_TEXT_TYPES = (pa.string(), pa.large_string(), pa.string_view())


def inspect_input(path: str | os.PathLike, day: dt.date | None = None) -> ExtractCounts:
    """Refuse, with one clear line, anything that is not a canonical staging file of ``day``."""
    path = Path(path)
    if not path.exists():
        raise PartitionInputError(f"arquivo de entrada não encontrado: {path}")
    if not path.is_file():
        raise PartitionInputError(f"a entrada não é um arquivo: {path}")
    try:
        schema = pq.read_schema(path)
        num_rows = pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise PartitionInputError(f"{path} não é um arquivo Parquet legível ({detail})") from None
    names = list(schema.names)
    if names != list(contract.SOURCE_COLUMNS):
        missing = [c for c in contract.SOURCE_COLUMNS if c not in names]
        extra = [c for c in names if c not in contract.SOURCE_COLUMNS]
        if missing or extra:
            raise PartitionInputError(f"{path} não tem o layout do contrato: faltam {missing[:5]}, sobram {extra[:5]}")
        raise PartitionInputError(f"{path} não tem as colunas na ordem do contrato")
    for name in contract.SOURCE_COLUMNS:
        kind = schema.field(name).type
        expected = (pa.date32(),) if name in contract.DATE_COLUMNS else _TEXT_TYPES
        if kind not in expected:
            want = "data" if name in contract.DATE_COLUMNS else "texto"
            raise PartitionInputError(f"{path}: a coluna {name} é {kind}, o contrato pede {want}")
    counts = read_counts(path)
    if counts is None:
        raise PartitionInputError(
            f"{path} não traz os contadores da extração (metadado vacina_d1): gere-o com 'vacina-d1 generate' ou 'import'"
        )
    if counts.layout_version != contract.LAYOUT_VERSION:
        raise PartitionInputError(
            f"{path} foi extraído com o layout {counts.layout_version}, este programa publica {contract.LAYOUT_VERSION}"
        )
    if counts.valid != num_rows:
        raise PartitionInputError(f"{path} tem {num_rows} registros, mas os contadores da extração dizem {counts.valid}")
    if day is not None:
        if counts.day is not None and counts.day != day.isoformat():
            raise PartitionInputError(f"{path} é do dia {counts.day}, não de {day.isoformat()}")
        if counts.day is None and num_rows:
            span = (
                pl.scan_parquet(path)
                .select(pl.col("dt_entrada_rnds").min().alias("min"), pl.col("dt_entrada_rnds").max().alias("max"))
                .collect()
            )
            first, last = span.row(0)
            if first != day or last != day:
                raise PartitionInputError(f"{path} tem registros de entrada entre {first} e {last}, não só de {day.isoformat()}")
    return counts


# -- routing ------------------------------------------------------------------------------


class _Routing:
    """Lookup tables from codes to target ids, and the per-batch routing."""

    def __init__(self, scope_uf: str | None):
        all_targets = targets()
        self.uf_index = {t.uf: t.index for t in all_targets if t.scope_kind == SCOPE_UF}
        self.muni_target = np.full(1_000_000, -1, dtype=np.int64)
        self.target_uf = np.empty(len(all_targets), dtype=np.int64)
        for t in all_targets:
            self.target_uf[t.index] = self.uf_index[t.uf]
            if t.ibge6 is not None:
                self.muni_target[int(t.ibge6)] = t.index
        self.scope_uf = None if scope_uf is None else self.uf_index[scope_uf]

    def _municipio(self, frame: pl.DataFrame, name: str) -> np.ndarray:
        codes = frame[name].cast(pl.Int64, strict=False).fill_null(0).to_numpy()
        codes = np.where(
            (codes > 0) & (codes < 1_000_000) & (frame[name].str.len_bytes() == 6).fill_null(False).to_numpy(), codes, 0
        )
        return self.muni_target[codes]

    def places(self, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per record: the target of its establishment's municipality and UF, and of its
        residence's municipality and UF (``-1``: no residence there)."""
        est_t = self._municipio(frame, "co_municipio_estabelecimento")
        if (est_t < 0).any():
            bad = int(np.flatnonzero(est_t < 0)[0])
            raise PartitionInputError(
                f"registro {frame['co_documento'][bad]}: município do estabelecimento "
                f"{frame['co_municipio_estabelecimento'][bad]!r} fora da lista do IBGE (entrada não validada?)"
            )
        pais = frame["co_pais_paciente"]
        foreign = (pais.is_not_null() & (pais != BRASIL_PAIS)).fill_null(False).to_numpy()
        res_t = np.where(foreign, -1, self._municipio(frame, "co_municipio_paciente"))
        declared_uf = (
            frame["sg_uf_paciente"].replace_strict(self.uf_index, default=-1, return_dtype=pl.Int64).fill_null(-1).to_numpy()
        )
        est_u = self.target_uf[est_t]
        res_u = np.where(res_t >= 0, self.target_uf[np.maximum(res_t, 0)], np.where(foreign, -1, declared_uf))
        return est_t, res_t, est_u, res_u

    def route(
        self, frame: pl.DataFrame, places: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(target, row, vínculo) of every line the batch puts in a file, sorted by target then row."""
        n = frame.height
        est_t, res_t, est_u, res_u = places if places is not None else self.places(frame)
        rows = np.arange(n, dtype=np.int64)
        by_res_uf = (res_u >= 0) & (res_u != est_u)
        by_res_muni = (res_t >= 0) & (res_t != est_t)
        target = np.concatenate([est_u, res_u[by_res_uf], est_t, res_t[by_res_muni]])
        row = np.concatenate([rows, rows[by_res_uf], rows, rows[by_res_muni]])
        vinculo = np.concatenate(
            [
                np.where(res_u == est_u, _AMBOS, _OCORRENCIA),
                np.full(int(by_res_uf.sum()), _RESIDENCIA),
                np.where(res_t == est_t, _AMBOS, _OCORRENCIA),
                np.full(int(by_res_muni.sum()), _RESIDENCIA),
            ]
        )
        if self.scope_uf is not None:
            keep = self.target_uf[target] == self.scope_uf
            target, row, vinculo = target[keep], row[keep], vinculo[keep]
        key = (target << (_ROW_BITS + 2)) | (row << 2) | vinculo
        key.sort()
        return key >> (_ROW_BITS + 2), (key >> 2) & ((1 << _ROW_BITS) - 1), key & 3


# -- writing ------------------------------------------------------------------------------


class _TargetFile:
    """One staging file being written: hashed and (optionally) compressed as it grows."""

    def __init__(self, target: FileTarget, path: Path, gzip_level: int | None, flush_bytes: int, fds: "_FdCache"):
        self.target = target
        self.path = path
        self.fds = fds
        self.flush_bytes = flush_bytes
        self.rows = 0
        self.bytes_csv = 0
        self.bytes_stored = 0
        self.sha_csv = hashlib.sha256()
        self.sha_stored = hashlib.sha256()
        self.gzip = csv_format.GzipPieces(gzip_level) if gzip_level is not None else None
        self.pending = bytearray()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.fds.adopt(self, fd)
        if self.gzip is not None:
            self._store(self.gzip.header())
        self.add(csv_format.header_line(), 0)

    def _store(self, data) -> None:
        self.sha_stored.update(data)
        self.bytes_stored += len(data)
        fd = self.fds.fd(self)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def add(self, data, rows: int) -> None:
        self.rows += rows
        self.bytes_csv += len(data)
        self.sha_csv.update(data)
        if self.gzip is None:
            self._store(data)
            return
        # Pieces cut at fixed offsets of the file: the compressed bytes depend on the
        # content only, not on batches or writer threads. Small pieces first (a small
        # file holds at most one in memory), large ones once the file is large
        # (fewer, cheaper compressor starts where most of the bytes are).
        view = memoryview(data)
        piece: bytearray | memoryview
        while len(self.pending) + len(view) >= self._piece_size():
            size = self._piece_size()
            if self.pending:
                take = size - len(self.pending)
                self.pending += view[:take]
                view = view[take:]
                piece, self.pending = self.pending, bytearray()
            else:
                piece, view = view[:size], view[size:]
            self._store(self.gzip.piece(piece))
        if len(view):
            self.pending += view

    def _piece_size(self) -> int:
        assert self.gzip is not None  # only compressed files are cut in pieces
        return self.flush_bytes if self.gzip.size < GROW_PIECES_AFTER else self.flush_bytes * LARGE_PIECE_FACTOR

    def finish(self, day: dt.date) -> PartitionedFile:
        self.add(csv_format.LINE_END.encode(), 0)
        if self.gzip is not None:
            self._store(self.gzip.finish(bytes(self.pending)))
            self.pending = bytearray()
        self.fds.close(self)
        compressed = self.gzip is not None
        return PartitionedFile(
            operation=self.target.operation,
            scope_kind=self.target.scope_kind,
            uf=self.target.uf,
            ibge6=self.target.ibge6,
            day=day,
            file_name=self.path.name,
            path=self.path,
            rows=self.rows,
            bytes_csv=self.bytes_csv,
            bytes_stored=self.bytes_stored,
            sha256_csv=self.sha_csv.hexdigest(),
            sha256_stored=self.sha_stored.hexdigest() if compressed else self.sha_csv.hexdigest(),
            content_type=csv_format.CONTENT_TYPE_GZIP if compressed else csv_format.CONTENT_TYPE_CSV,
            content_encoding=None,
        )


class _FdCache:
    """Open descriptors of the staging files, kept open while the process may hold
    that many; beyond it, the least recently used are closed and reopened on demand."""

    def __init__(self, max_open: int):
        self.max_open = max(16, max_open)
        self.open: dict[_TargetFile, int] = {}

    def adopt(self, owner: _TargetFile, fd: int) -> None:
        self._make_room()
        self.open[owner] = fd

    def fd(self, owner: _TargetFile) -> int:
        fd = self.open.pop(owner, None)
        if fd is None:
            self._make_room()
            fd = os.open(owner.path, os.O_WRONLY | os.O_APPEND)
        self.open[owner] = fd  # most recently used last
        return fd

    def _make_room(self) -> None:
        while len(self.open) >= self.max_open:
            oldest = next(iter(self.open))
            os.close(self.open.pop(oldest))

    def close(self, owner: _TargetFile) -> None:
        fd = self.open.pop(owner, None)
        if fd is not None:
            os.close(fd)

    def close_all(self) -> None:
        for fd in self.open.values():
            os.close(fd)
        self.open.clear()


def _descriptor_budget(writers: int) -> int:
    """Descriptors each writer may keep open, raising the soft limit when allowed."""
    wanted = len(targets()) + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    budget = (wanted if soft == resource.RLIM_INFINITY else soft) - 128
    return max(16, budget // writers)


class _Writer(threading.Thread):
    """Owns a subset of the targets; takes (buffer, slices) jobs in batch order."""

    def __init__(self, staging: Path, day: dt.date, gzip_level: int | None, flush_bytes: int, max_open: int):
        super().__init__(daemon=True, name="vacina-d1-partition-writer")
        self.staging = staging
        self.day = day
        self.gzip_level = gzip_level
        self.flush_bytes = flush_bytes
        self.fds = _FdCache(max_open)
        self.files: dict[int, _TargetFile] = {}
        self.jobs: queue.Queue = queue.Queue(maxsize=1)
        self.results: list[PartitionedFile] = []
        self.error: BaseException | None = None

    def file_of(self, target: FileTarget) -> _TargetFile:
        current = self.files.get(target.index)
        if current is None:
            name = contract.file_name(target.operation, self.day, compressed=self.gzip_level is not None)
            current = self.files[target.index] = _TargetFile(
                target, self.staging / name, self.gzip_level, self.flush_bytes, self.fds
            )
        return current

    def run(self) -> None:
        all_targets = targets()
        try:
            while True:
                job = self.jobs.get()
                if job is None:
                    break
                kind, payload = job
                if kind == "create":
                    for index in payload:
                        self.file_of(all_targets[index])
                    continue
                body, slices = payload
                for index, start, end, rows in slices:
                    self.file_of(all_targets[index]).add(body[start:end], rows)
            self.results = [f.finish(self.day) for f in self.files.values()]
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            self.error = exc
            # Keep draining so the producer never blocks on a dead writer.
            while self.jobs.get() is not None:
                pass
        finally:
            self.fds.close_all()

    def put(self, job) -> None:
        if self.error is not None:
            raise self.error
        self.jobs.put(job)


# -- the typed Parquet -----------------------------------------------------------------------

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
PARQUET_COMPRESSION = "zstd"
PARQUET_ROW_GROUP_ROWS = 128 * 1024
_VINCULO_TEXT = pa.array([v.value for v in _VINCULOS], pa.large_string())


def parquet_schema() -> pa.Schema:
    """The published Parquet's columns: the file's 57, codes and text as strings, dates as dates."""
    return pa.schema(
        [pa.field(name, pa.date32() if name in contract.DATE_COLUMNS else pa.large_string()) for name in contract.FILE_COLUMNS]
    )


def parquet_name(operation: str, day: dt.date) -> str:
    return f"{operation}_{day}.parquet"


class _ParquetSpill:
    """The typed rows of every file, in file order, for the Parquet files.

    Each batch's rows are gathered once (by polars, with the same routing as the CSV
    lines, sorted by UF group, then target, then row) and appended to one
    uncompressed Arrow IPC file per UF group (the UF's file and its municipalities'
    files) in the staging directory, with each target's (batch, start, end) in its
    group. At the end each group's file is memory-mapped on its own, its targets'
    slices (zero-copy) become their Parquet files, and the mapping and the file are
    dropped before the next group: the mapped pages, which count as resident, stay
    bounded by the largest UF rather than the whole day.

    The cost is per file far more than per row: about 1.5 ms of CPU for a Parquet of
    57 columns, whatever its size (a whole day in one file costs less than a
    thousand small ones); bench/README.md has the figures."""

    def __init__(self, staging: Path):
        self.staging = staging
        self.schema = parquet_schema()
        all_targets = targets()
        ufs = sorted({t.uf for t in all_targets})
        self.group_of = np.array([ufs.index(t.uf) for t in all_targets], dtype=np.int64)
        self.groups: dict[int, tuple[pa.OSFile, pa.ipc.RecordBatchFileWriter]] = {}
        self.batches: dict[int, int] = {}
        self.slices: dict[int, list[tuple[int, int, int]]] = {}

    def _path(self, group: int) -> Path:
        return self.staging / f"_linhas-tipadas-{group:02d}.arrow"

    def add(self, frame: pl.DataFrame, target: np.ndarray, row: np.ndarray, vinculo: np.ndarray) -> None:
        group = self.group_of[target]
        order = np.argsort(group, kind="stable")  # target is sorted: stays sorted within a group
        target, row, vinculo, group = target[order], row[order], vinculo[order], group[order]
        # One gather by polars (multi-threaded), one conversion to Arrow.
        typed = frame.select(contract.SOURCE_COLUMNS)[pl.Series(row)].to_arrow(compat_level=pl.CompatLevel.oldest())
        columns = [typed.column(name).cast(self.schema.field(name).type) for name in contract.SOURCE_COLUMNS]
        columns.append(pc.take(_VINCULO_TEXT, pa.array(vinculo)))
        table = pa.Table.from_arrays(columns, schema=self.schema)
        del typed, columns
        group_bounds = np.flatnonzero(np.diff(group)) + 1
        group_starts = np.concatenate([[0], group_bounds])
        group_ends = np.concatenate([group_bounds, [len(group)]])
        for g, g_start, g_end in zip(group[group_starts].tolist(), group_starts.tolist(), group_ends.tolist()):
            if g not in self.groups:
                sink = pa.OSFile(str(self._path(g)), "wb")
                self.groups[g] = (sink, pa.ipc.new_file(sink, self.schema))
                self.batches[g] = 0
            self.groups[g][1].write_table(table.slice(g_start, g_end - g_start))
            batch = self.batches[g]
            self.batches[g] += 1
            part = target[g_start:g_end]
            bounds = np.flatnonzero(np.diff(part)) + 1
            starts = np.concatenate([[0], bounds])
            ends = np.concatenate([bounds, [len(part)]])
            for index, start, end in zip(part[starts].tolist(), starts.tolist(), ends.tolist()):
                self.slices.setdefault(index, []).append((batch, start, end))

    def write_files(self, staging: Path, day: dt.date, wanted: dict[int, str], threads: int = 2) -> dict[int, Representation]:
        """One Parquet per target in ``wanted`` (index → operation); targets without rows get an empty one."""
        for sink, writer in self.groups.values():
            writer.close()
            sink.close()
        by_group: dict[int, list[tuple[int, str]]] = {}
        for index, operation in sorted(wanted.items()):
            by_group.setdefault(int(self.group_of[index]), []).append((index, operation))
        written: dict[int, Representation] = {}

        def one(batches: list[pa.RecordBatch], item: tuple[int, str]) -> tuple[int, Representation]:
            index, operation = item
            pieces = [batches[b].slice(start, end - start) for b, start, end in self.slices.get(index, [])]
            table = pa.Table.from_batches(pieces, schema=self.schema)
            if table.num_rows <= PARQUET_ROW_GROUP_ROWS:
                # The writer pays per chunk and column: one slice per input batch would
                # double the cost of a small file; copying its few rows is cheaper.
                table = table.combine_chunks()
            return index, write_parquet(table, staging / parquet_name(operation, day))

        def rows(item: tuple[int, str]) -> int:
            return sum(end - start for _, start, end in self.slices.get(item[0], []))

        pool = ThreadPoolExecutor(threads, thread_name_prefix="vacina-d1-parquet") if threads > 1 else None
        try:
            for group, items in sorted(by_group.items()):
                batches: list[pa.RecordBatch] = []
                if group in self.groups:
                    reader = pa.ipc.open_file(pa.memory_map(str(self._path(group)), "r"))
                    batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
                    del reader
                # Largest first, so the two threads end together.
                items.sort(key=rows, reverse=True)
                work = functools.partial(one, batches)
                written.update(pool.map(work, items) if pool is not None else map(work, items))
                del batches, work  # unmaps the group's file before the next one is mapped
                self._path(group).unlink(missing_ok=True)
        finally:
            if pool is not None:
                pool.shutdown()
            self._remove()
        return written

    def _remove(self) -> None:
        for group in self.groups:
            self._path(group).unlink(missing_ok=True)

    def discard(self) -> None:
        for sink, writer in self.groups.values():
            try:
                writer.close()
                sink.close()
            except (pa.ArrowException, OSError):
                pass
        self._remove()


# Column statistics and dictionary encoding pay off on large files (row-group
# pruning, smaller pages); on a small one (most municipality files hold tens to
# hundreds of rows) they are a good part of the writing time and of the bytes.
PARQUET_STATISTICS_MIN_ROWS = 2_000


def write_parquet(table: pa.Table, path: Path) -> Representation:
    # pyarrow's writer straight from the typed Arrow columns: no conversion, and the
    # GIL is released while it encodes, so two threads use both cores.
    large = table.num_rows >= PARQUET_STATISTICS_MIN_ROWS
    pq.write_table(
        table,
        path,
        compression=PARQUET_COMPRESSION,
        write_statistics=large,
        use_dictionary=large,
        row_group_size=PARQUET_ROW_GROUP_ROWS,
    )
    return Representation(
        "parquet", path.name, path, table.num_rows, path.stat().st_size, sha256_file(path), PARQUET_CONTENT_TYPE
    )


# -- the day ------------------------------------------------------------------------------


def _batches(path: Path, batch_rows: int, total: int, prefetch: bool = True) -> Iterator[pl.DataFrame]:
    """The input in row batches, in order. One query per batch: polars pushes the
    slice down to the pages it needs, which holds memory to about a batch (its
    streaming reader prefetches much more). With ``prefetch``, the next batch is
    read by a thread while this one is processed (polars releases the GIL)."""
    source = pl.scan_parquet(path)
    offsets = range(0, total, batch_rows)
    if not prefetch:
        for offset in offsets:
            yield source.slice(offset, batch_rows).collect()
        return
    with ThreadPoolExecutor(1, thread_name_prefix="vacina-d1-partition-reader") as reader:
        pending = None
        for offset in offsets:
            following = reader.submit(source.slice(offset, batch_rows).collect)
            if pending is not None:
                yield pending.result()
            pending = following
        if pending is not None:
            yield pending.result()


class _OrderCheck:
    """The canonical input is sorted by co_documento, unique: checked, since the
    files' byte-identity rests on it."""

    def __init__(self) -> None:
        self.last: str | None = None

    def see(self, ids: pl.Series) -> None:
        if ids.len() == 0:
            return
        if ids.null_count():
            raise PartitionInputError("a entrada tem registros sem co_documento")
        ascending = ids.len() == 1 or bool((ids.slice(1) > ids.slice(0, ids.len() - 1)).all())
        if not ascending or (self.last is not None and ids[0] <= self.last):
            raise PartitionInputError("a entrada não está ordenada por co_documento sem repetições (não é canônica)")
        self.last = ids[-1]


class _ReusedBuffer:
    """A write-only byte sink kept across batches: polars writes the batch's CSV into
    it, and the next batch reuses the same memory. Fresh memory costs a page fault per
    4 KiB on first touch, which on a VM is a large part of partitioning's time."""

    def __init__(self) -> None:
        self.data = bytearray(1 << 20)
        self.size = 0
        self.mask = np.empty(0, dtype=np.bool_)

    def write(self, chunk) -> int:
        n = len(chunk)
        end = self.size + n
        if end > len(self.data):
            grown = bytearray(max(end, len(self.data) * 3 // 2))
            grown[: self.size] = memoryview(self.data)[: self.size]
            self.data = grown
        self.data[self.size : end] = chunk
        self.size = end
        return n

    def flush(self) -> None:
        pass

    def newlines(self, end: int) -> np.ndarray:
        if len(self.mask) < end:
            self.mask = np.empty(max(end, len(self.mask) * 3 // 2), dtype=np.bool_)
        mask = self.mask[:end]
        np.equal(np.frombuffer(self.data, dtype=np.uint8, count=end), 10, out=mask)
        return np.flatnonzero(mask)


def _serialise(frame: pl.DataFrame, sink: _ReusedBuffer) -> pa.LargeStringArray:
    """The batch as CSV lines: element i is ``"\\n" + line i``, then one dummy
    element, then the three vínculo suffixes (all over one buffer, zero-copy).
    The array borrows ``sink``'s memory: drop it before the next batch."""
    sink.size = 0
    sink.write(csv_format.LINE_END.encode())
    csv_format.write_rows(frame, sink)
    csv_end = sink.size
    for suffix in _SUFFIXES:
        sink.write(suffix)
    newlines = sink.newlines(csv_end)
    n = frame.height
    if len(newlines) != n + 1:
        raise PartitionInputError("há quebra de linha dentro de um campo de texto: a entrada não passou pela validação")
    offsets = np.empty(n + 5, dtype=np.int64)
    offsets[: n + 1] = newlines
    offsets[n + 1] = csv_end
    position = csv_end
    for i, suffix in enumerate(_SUFFIXES):
        position += len(suffix)
        offsets[n + 2 + i] = position
    data = pa.py_buffer(memoryview(sink.data)[: sink.size])
    return pa.LargeStringArray.from_buffers(n + 4, pa.py_buffer(offsets), data)


def _add_representations(
    files: list[PartitionedFile],
    staging: Path,
    day: dt.date,
    spill: _ParquetSpill | None,
    tallies: "day_indicators.Accumulator | None",
    timings: dict[str, float],
) -> list[PartitionedFile]:
    """Each file with its Parquet, and each UF file with its indicator table."""
    extra: dict[str, list[Representation]] = {f.operation: [] for f in files}
    if spill is not None:
        tick = time.perf_counter()
        index_of = {t.operation: t.index for t in targets()}
        written = spill.write_files(staging, day, {index_of[f.operation]: f.operation for f in files})
        for f in files:
            extra[f.operation].append(written[index_of[f.operation]])
        timings["parquet"] += time.perf_counter() - tick
    if tallies is not None:
        tick = time.perf_counter()
        uf_files = {f.uf: f for f in files if f.scope_kind == SCOPE_UF}
        for uf, table in tallies.tables(day, targets(), sorted(uf_files)).items():
            operation = uf_files[uf].operation
            for w in day_indicators.write(table, staging, f"{operation}_{day}_indicadores"):
                extra[operation].append(Representation(w.kind, w.file_name, w.path, w.rows, w.bytes, w.sha256, w.content_type))
        timings["indicators"] += time.perf_counter() - tick
    return [dataclasses.replace(f, representations=tuple(extra[f.operation])) for f in files]


def partition_day(
    input_path: str | os.PathLike,
    staging_dir: str | os.PathLike,
    *,
    day: dt.date,
    uf: str | None = None,
    gzip_level: int | None = csv_format.DEFAULT_GZIP_LEVEL,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    flush_bytes: int = DEFAULT_FLUSH_BYTES,
    writers: int = 1,
    parquet: bool = True,
    indicators: bool = True,
) -> PartitionResult:
    """Partition the canonical staging file of ``day`` into ``staging_dir`` (which
    must not exist yet or be empty). With ``uf``, only that UF's file and its
    municipalities' files (the rest of the day is left alone). ``gzip_level=None``
    writes plain CSV (the bench's uncompressed measure). ``parquet`` adds each file's
    typed Parquet, ``indicators`` each UF's indicator table (CSV and Parquet), as the
    files' representations."""
    started = time.perf_counter()
    input_path = Path(input_path)
    counts = inspect_input(input_path, day)
    if uf is not None:
        uf = uf.strip().upper()
        if uf not in reference.ufs():
            raise PartitionInputError(f"UF desconhecida: {uf!r}")
    staging = Path(staging_dir)
    if staging.exists() and any(staging.iterdir()):
        raise PartitionInputError(f"o diretório de preparação não está vazio: {staging}")
    staging.mkdir(parents=True, exist_ok=True)
    input_sha256 = sha256_file(input_path)

    routing = _Routing(uf)
    all_targets = targets()
    budget = _descriptor_budget(writers)
    pool = [_Writer(staging, day, gzip_level, flush_bytes, budget) for _ in range(writers)]
    for writer in pool:
        writer.start()
    order = _OrderCheck()
    sink = _ReusedBuffer()
    records = 0
    timings = {"read": 0.0, "serialise": 0.0, "route": 0.0, "gather": 0.0, "handoff": 0.0}
    spill = _ParquetSpill(staging) if parquet else None
    tallies = day_indicators.Accumulator() if indicators else None
    if spill is not None:
        timings["parquet"] = 0.0
    if tallies is not None:
        timings["indicators"] = 0.0
    finished = False
    try:
        # Every UF in scope gets its file, even when nobody is in it.
        uf_targets = [t.index for t in all_targets if t.scope_kind == SCOPE_UF and (uf is None or t.uf == uf)]
        for w, writer in enumerate(pool):
            writer.put(("create", [i for i in uf_targets if i % writers == w]))
        tick = time.perf_counter()
        for frame in _batches(input_path, batch_rows, counts.valid):
            timings["read"] += time.perf_counter() - tick
            if frame.height == 0:
                tick = time.perf_counter()
                continue
            tick = time.perf_counter()
            order.see(frame["co_documento"])
            records += frame.height
            lines = _serialise(frame, sink)
            timings["serialise"] += time.perf_counter() - tick
            tick = time.perf_counter()
            places = routing.places(frame)
            target, row, vinculo = routing.route(frame, places)
            timings["route"] += time.perf_counter() - tick
            if tallies is not None:
                tick = time.perf_counter()
                tallies.add(frame, *places)
                timings["indicators"] += time.perf_counter() - tick
            if spill is not None and len(target):
                tick = time.perf_counter()
                spill.add(frame, target, row, vinculo)
                timings["parquet"] += time.perf_counter() - tick
            tick = time.perf_counter()
            if not len(target):
                continue
            picks = np.empty(2 * len(row), dtype=np.int64)
            picks[0::2] = row
            picks[1::2] = frame.height + 1 + vinculo
            gathered = pc.take(lines, pa.array(picks))
            del lines
            _, offsets_buf, data_buf = gathered.buffers()
            offsets = np.frombuffer(offsets_buf, dtype=np.int64)[gathered.offset : gathered.offset + len(gathered) + 1]
            line_offsets = offsets[0::2]
            bounds = np.flatnonzero(np.diff(target)) + 1
            starts = np.concatenate([[0], bounds])
            ends = np.concatenate([bounds, [len(target)]])
            body = memoryview(data_buf)
            per_writer: list[list[tuple[int, int, int, int]]] = [[] for _ in pool]
            for index, start, end, rows in zip(
                target[starts].tolist(), line_offsets[starts].tolist(), line_offsets[ends].tolist(), (ends - starts).tolist()
            ):
                per_writer[index % writers].append((index, start, end, rows))
            timings["gather"] += time.perf_counter() - tick
            tick = time.perf_counter()
            for writer, slices in zip(pool, per_writer):
                if slices:
                    # The buffer travels with its slices; it lives until the writer is done with it.
                    writer.put(("write", (body, slices)))
            del gathered, body
            timings["handoff"] += time.perf_counter() - tick
            tick = time.perf_counter()
        for writer in pool:
            writer.put(None)
        for writer in pool:
            writer.join()
        for writer in pool:
            if writer.error is not None:
                raise writer.error
        files = sorted((f for writer in pool for f in writer.results), key=lambda f: f.operation)
        files = _add_representations(files, staging, day, spill, tallies, timings)
        finished = True
    finally:
        if not finished:
            if spill is not None:
                spill.discard()
            for writer in pool:
                if writer.is_alive():
                    writer.jobs.put(None)
            for writer in pool:
                writer.join()
            shutil.rmtree(staging, ignore_errors=True)
    empty = _TargetFile(
        FileTarget(-1, "", "", "", None),
        staging / EMPTY_FILE_NAME.format(suffix=".csv.gz" if gzip_level is not None else ".csv"),
        gzip_level,
        flush_bytes,
        _FdCache(16),
    ).finish(day)
    if parquet:
        empty_parquet = write_parquet(parquet_schema().empty_table(), staging / EMPTY_FILE_NAME.format(suffix=".parquet"))
        empty = dataclasses.replace(empty, representations=(empty_parquet,))
    if counts.valid != records:
        raise PartitionInputError(f"a entrada tem {records} registros, os contadores da extração dizem {counts.valid}")
    return PartitionResult(
        day=day,
        uf=uf,
        input_path=input_path,
        input_sha256=input_sha256,
        counts=counts,
        records=records,
        files=files,
        staging_dir=staging,
        compressed=gzip_level is not None,
        empty_file=empty,
        seconds=round(time.perf_counter() - started, 3),
        timings={k: round(v, 3) for k, v in timings.items()},
    )
