"""OpenDataSUS exports as sources: the routine PNI CSV and the COVID-19 campaign CSV.

Both read a plain ``.csv``, a ``.zip`` holding one or more CSV members, or a
directory of them, as a stream: a monthly national file of several GB goes
through in blocks (``zipfile`` member stream → line-aligned chunks → UTF-8 →
``pyarrow.csv``), never whole in memory. Every record carries
``contract.QUARANTINE_ORIGIN_COLUMN`` = ``<file or zip/member>:<line>``.

Text is handed over as read: the codes' known defects (``110001.0``, lost
leading zeros) are undone by ``pipelines.validation``, not here.

Encoding ``auto``: bytes are ASCII (the same in both encodings) until the first
non-ASCII chunk; that chunk decides — valid UTF-8 → UTF-8, otherwise Latin-1.
A file decided as UTF-8 that later holds invalid UTF-8 mixes encodings and is
refused with its line; a file with NUL bytes or a UTF-16/32 mark is not a text
CSV and is refused at once.

A line whose number of fields differs from the header is not dropped: it goes
to the quarantine with the reason ``csv_linha_malformada`` and its fields in
order (the surplus joined into the last column).

COVID-19 campaign file → contract (the choices the file cannot answer):

* ``st_documento`` is ``final``: the campaign file only publishes valid
  (current) documents, never replaced or deleted ones.
* ``dt_entrada_rnds``: the file has no entry timestamp. It is, in order, the
  ``entry_date`` option when given, the file's ``data_importacao_rnds`` (2021
  releases) when present and filled, else ``vacina_dataAplicacao`` — an
  approximation (entry is on or after the vaccination), so a day selected from
  a campaign file is a day of vaccination unless ``entry_date`` says otherwise.
* ``co_dose_vacina`` (required) comes from ``vacina_descricao_dose`` matched
  against the RNDS code system BRDose (case, spaces, ``ª``/``º`` vs ``a``/``o``
  ignored). A description BRDose does not know leaves it empty, so the record
  goes to quarantine (``campo_obrigatorio_ausente:co_dose_vacina``) with the
  description kept: guessing a code would publish a dose that was never recorded.
* ``co_vacina_fabricante``: ``vacina_fabricante_referencia`` is ``Organization/<id>``,
  where the id is an RNDS code for some rows and a 14-digit CNPJ for others (PFIZER
  appears as ``28290`` and as ``00394544000851``). The code is the RNDS code of the
  manufacturer's name when the reference table ``data/fabricantes_rnds.csv`` knows
  it, otherwise empty with the name kept: one code per manufacturer, never a CNPJ
  (``manufacturer_code``). ``no_uf_*`` come from the UF table;
  ``paciente_dataNascimento`` is not in the public layout and is not kept.
* Dates ``YYYY-MM-DDT00:00:00.000Z`` are read by their date part (validation).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import functools
import io
import os
import re
import unicodedata
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import IO, ClassVar, Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines import contract, reference
from pipelines.sources.base import Source, SourceError
from pipelines.validation import SOURCE_REASONS_COLUMN

# Validation's working memory grows with the batch: 50,000 rows keep a split month near 0.8 GB.
DEFAULT_BATCH_SIZE = 50_000
ENCODINGS = ("auto", "utf-8", "latin-1")
MALFORMED_REASON = "csv_linha_malformada"

_READ_BLOCK = 8 << 20
# Rows the slow (per-line) path turns into one frame: an 8 MB chunk of short broken
# lines is a million rows, too many Python objects at once.
_SLOW_ROWS = 10_000
# A record longer than this is not a record: unbalanced quotes, or not a CSV.
_MAX_RECORD_BYTES = 64 << 20
_MAX_HEADER_BYTES = 1 << 20
_SEPARATOR = ";"
_TRAILING_COLUMN = "_fim_de_linha"


def canonical_encoding(name: str) -> str:
    """``auto``, ``utf-8`` or ``latin-1`` for any spelling Python knows (``utf8``, ``iso-8859-1``...)."""
    if name.strip().lower() == "auto":
        return "auto"
    try:
        codec = codecs.lookup(name.strip()).name
    except LookupError:
        codec = None
    if codec == "utf-8":
        return "utf-8"
    if codec == "iso8859-1":
        return "latin-1"
    raise SourceError(f"codificação não suportada: {name!r} (use auto, utf-8 ou latin-1)")


# --- input: files, zips, directories -------------------------------------------------


def _members(path: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """(label, binary stream) of every CSV the input holds, in name order."""
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in (".csv", ".zip")
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise SourceError(f"nenhum arquivo .csv ou .zip em {path}")
        for file in files:
            yield from _file_members(file, file.relative_to(path).as_posix())
    else:
        yield from _file_members(path, path.name)


def _file_members(path: Path, label: str) -> Iterator[tuple[str, IO[bytes]]]:
    with open(path, "rb") as handle:
        magic = handle.read(4)
        handle.seek(0)
        if magic in (b"PK\x03\x04", b"PK\x05\x06"):
            yield from _zip_members(handle, label)
        else:
            yield label, handle


def _zip_members(handle: IO[bytes], label: str) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
        raise SourceError(f"{label}: zip truncado ou corrompido (o índice do zip não pôde ser lido: {exc})") from None
    with archive:
        files = [
            info
            for info in archive.infolist()
            if not info.is_dir()
            and not info.filename.startswith("__MACOSX/")
            and not PurePosixPath(info.filename).name.startswith(".")
        ]
        members = [info for info in files if info.filename.lower().endswith(".csv")] or files
        if not members:
            raise SourceError(f"{label}: o zip não contém nenhum arquivo CSV")
        for info in sorted(members, key=lambda info: info.filename):
            member_label = f"{label}/{info.filename}"
            if info.flag_bits & 0x1:
                raise SourceError(f"{member_label}: membro do zip protegido por senha")
            try:
                stream = archive.open(info)
            except NotImplementedError:
                raise SourceError(
                    f"{member_label}: método de compressão {info.compress_type} não suportado "
                    "(Deflate64?); recompacte o arquivo com Deflate"
                ) from None
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise SourceError(f"{member_label}: zip truncado ou corrompido ({exc})") from None
            with stream:
                yield member_label, stream


def _blocks(stream: IO[bytes], label: str) -> Iterator[bytes]:
    while True:
        try:
            block = stream.read(_READ_BLOCK)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise SourceError(f"{label}: zip truncado ou corrompido ({exc})") from None
        if not block:
            return
        yield block


# --- bytes: start checks, header, line-aligned chunks, decoding ----------------------

_NOT_TEXT = (
    (codecs.BOM_UTF32_LE, "está em UTF-32"),
    (codecs.BOM_UTF32_BE, "está em UTF-32"),
    (codecs.BOM_UTF16_LE, "está em UTF-16"),
    (codecs.BOM_UTF16_BE, "está em UTF-16"),
    (b"\x1f\x8b", "está comprimido em gzip (descompacte-o ou use .zip)"),
    (b"PK\x03\x04", "é um zip dentro do zip (descompacte o de fora)"),
)


def _check_start(first: bytes, label: str, encoding: str) -> tuple[bytes, str]:
    """The first block without its UTF-8 mark, and the encoding that mark implies."""
    for mark, problem in _NOT_TEXT:
        if first.startswith(mark):
            raise SourceError(f"{label} {problem}: não é um CSV de texto em UTF-8 ou Latin-1")
    if b"\x00" in first:
        raise SourceError(f"{label} não é um CSV de texto (tem bytes nulos: arquivo binário ou UTF-16 sem marca)")
    if first.startswith(codecs.BOM_UTF8):
        if encoding == "latin-1":
            raise SourceError(f"{label} começa com a marca (BOM) de UTF-8: use --encoding utf-8 ou auto")
        return first[len(codecs.BOM_UTF8) :], "utf-8"
    return first, encoding


def _split_header(blocks: Iterator[bytes], label: str) -> tuple[bytes, bytes]:
    """The header line (without its line break) and what follows it in the blocks read so far."""
    data = b""
    for block in blocks:
        data += block
        end = data.find(b"\n")
        if end >= 0:
            return data[:end].rstrip(b"\r"), data[end + 1 :]
        if len(data) > _MAX_HEADER_BYTES:
            break
    if not data.strip():
        raise SourceError(f"{label} está vazio (sem cabeçalho)")
    if len(data) > _MAX_HEADER_BYTES:
        raise SourceError(f"{label}: a primeira linha passa de 1 MB: não é um CSV de texto")
    return data.rstrip(b"\r"), b""  # a header without data


def _last_record_end(data: bytes, quoted: bool) -> int:
    """Index of the last line break that ends a record (outside quotes), or -1."""
    end = data.rfind(b"\n")
    if not quoted or end < 0:
        return end
    quotes = data.count(b'"', 0, end)
    while end >= 0 and quotes % 2:
        previous = data.rfind(b"\n", 0, end)
        quotes -= data.count(b'"', previous + 1, end)
        end = previous
    return end


def _record_chunks(
    head: bytes, blocks: Iterator[bytes], quoted: bool, label: str, first_line: int
) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes) pieces that each end at a record's end."""
    line = first_line
    pending = head
    for block in blocks:
        data = pending + block if pending else block
        end = _last_record_end(data, quoted)
        if end < 0:
            pending = data
            if len(pending) > _MAX_RECORD_BYTES:
                problem = "aspas desbalanceadas" if quoted else "uma linha com mais de 64 MB"
                raise SourceError(f"{label}: linha {line}: {problem}; o resto do arquivo não pode ser separado em registros")
            continue
        chunk, pending = data[: end + 1], data[end + 1 :]
        yield line, chunk
        line += chunk.count(b"\n")
    if pending:
        yield line, pending


class _Decoder:
    """Line-aligned chunks (a line break never falls inside a character) to UTF-8,
    checked; see the module's note on ``auto``."""

    def __init__(self, encoding: str, label: str):
        self.requested = encoding
        self.encoding = encoding  # "auto" until the first non-ASCII chunk decides
        self.label = label

    def __call__(self, chunk: bytes, first_line: int) -> bytes:
        if chunk.isascii():
            return chunk
        if self.encoding == "latin-1":
            return chunk.decode("latin-1").encode("utf-8")
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.encoding == "auto":
                self.encoding = "latin-1"
                return chunk.decode("latin-1").encode("utf-8")
            line = first_line + chunk.count(b"\n", 0, exc.start)
            found = chunk[exc.start : exc.start + 2].hex(" ")
            if self.requested == "auto":
                problem = "o arquivo mistura codificações (UTF-8 nas linhas anteriores)"
            else:
                problem = "o arquivo não é UTF-8"
            raise SourceError(
                f"{self.label}: linha {line}: bytes inválidos em UTF-8 ({found}): {problem}; "
                "se ele todo for Latin-1 use --encoding latin-1"
            ) from None
        self.encoding = "utf-8"
        return chunk


def _decode_header(raw: bytes, encoding: str) -> str:
    if raw.isascii() or encoding == "latin-1":
        return raw.decode("latin-1")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _header_fields(text: str) -> tuple[list[str], bool]:
    """The header's column names (lower case, trailing empty fields dropped) and whether it is quoted."""
    quoted = text.lstrip().startswith('"')
    fields = next(
        csv.reader([text], delimiter=_SEPARATOR, quotechar='"', quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE)
    )
    names = [field.strip().lower() for field in fields]
    while names and names[-1] == "":
        names.pop()
    return names, quoted


def _shown(names: list[str], limit: int = 6) -> str:
    """Names for a one-line message: quoted, shortened, control characters out."""
    cleaned = [repr(re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", name)[:40]) for name in names[:limit]]
    more = f" e mais {len(names) - limit}" if len(names) > limit else ""
    return ", ".join(cleaned) + more


def _layout_problems(names: list[str], expected: tuple[str, ...], required: tuple[str, ...]) -> list[str]:
    problems = []
    blank = [str(i + 1) for i, name in enumerate(names) if not name]
    if blank:
        problems.append(f"coluna sem nome na posição {', '.join(blank[:6])}")
    repeated = [name for name, n in Counter(names).items() if n > 1 and name]
    if repeated:
        problems.append(f"colunas repetidas {_shown(repeated)}")
    missing = [name for name in required if name not in names]
    if missing:
        problems.append(f"faltam {_shown(missing)}")
    unknown = [name for name in names if name and name not in expected]
    if unknown:
        problems.append(f"colunas desconhecidas {_shown(unknown)}")
    return problems


_PNI_MARKS = {"co_documento", "dt_vacina", "co_cnes_estabelecimento"}
_COVID_MARKS = {"document_id", "vacina_dataaplicacao", "estabelecimento_valor"}


def _check_separator(header: str, names: list[str], label: str, kind: str) -> None:
    if len(names) > 1 or _SEPARATOR in header:
        return
    for separator, said in ((",", "vírgulas"), ("\t", "tabulações"), ("|", "barras verticais")):
        if separator in header:
            raise SourceError(
                f"{label}: o cabeçalho está separado por {said}; o CSV {kind} do OpenDataSUS usa ponto e vírgula (;)"
            )


# --- parsing -------------------------------------------------------------------------


@dataclass
class _Parser:
    """Parses line-aligned UTF-8 chunks with the header's columns: Arrow's CSV reader
    for a clean chunk; for the others, an unquoted file is split as columns (every
    line at once, exact line numbers, malformed lines kept), a quoted one by Python's
    csv (quotes may hide separators and line breaks), in frames of bounded size."""

    names: tuple[str, ...]
    quoted: bool
    label: str
    trailing: bool = False  # rows carry one more, empty, field after the last column

    def frames(self, chunk: bytes, first_line: int) -> Iterator[pl.DataFrame]:
        table = self._fast(chunk, self.trailing)
        if table is None:
            table = self._fast(chunk, not self.trailing)
            if table is not None:
                self.trailing = not self.trailing
        if table is None:
            yield from (self._slow(chunk, first_line) if self.quoted else self._split(chunk, first_line))
            return
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        if _TRAILING_COLUMN in frame.columns:
            frame = frame.drop(_TRAILING_COLUMN)
        line = (pl.int_range(pl.len(), dtype=pl.Int64) + first_line).cast(pl.String)
        yield frame.with_columns(pl.concat_str([pl.lit(f"{self.label}:"), line]).alias(contract.QUARANTINE_ORIGIN_COLUMN))

    def _fast(self, chunk: bytes, trailing: bool) -> pa.Table | None:
        names = [*self.names, _TRAILING_COLUMN] if trailing else list(self.names)
        invalid = 0

        def on_invalid(row) -> str:
            nonlocal invalid
            invalid += 1
            return "error"  # one is enough: the chunk takes the other path

        body = chunk.rstrip(b"\r\n")  # blank lines at the end are not records
        try:
            table = pacsv.read_csv(
                io.BytesIO(body),
                read_options=pacsv.ReadOptions(column_names=names, use_threads=True),
                parse_options=pacsv.ParseOptions(
                    delimiter=_SEPARATOR,
                    quote_char='"' if self.quoted else False,
                    newlines_in_values=self.quoted,
                    invalid_row_handler=on_invalid,
                ),
                # An empty field is null (what validation makes of "" anyway); no other text is.
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
        except pa.ArrowInvalid:
            return None
        lines = body.count(b"\n") + 1 if body else 0
        if invalid or table.num_rows != lines:
            return None  # malformed, blank or multi-line records: line numbers need the slow path
        if trailing and table.column(_TRAILING_COLUMN).null_count != table.num_rows:
            return None
        return table

    def _split(self, chunk: bytes, first_line: int) -> Iterator[pl.DataFrame]:
        """An unquoted chunk, every line split on ``;`` as columns: what ``_slow``
        makes of it (same fields, reasons and line numbers), without a Python loop."""
        width = len(self.names)
        for start_line, part in _line_slices(chunk, _SLOW_ROWS * 10):
            lines = pl.Series("linha", _lines(part)).str.strip_suffix("\n").str.strip_suffix("\r")
            fields = pl.col("linha").str.split(_SEPARATOR)
            frame = (
                pl.DataFrame([lines])
                .with_row_index("_n")
                .filter(pl.col("linha") != "")  # a blank line is not a record
                .with_columns(fields.alias("_campos"))
                .with_columns(
                    # The routine file's trailing ';' is one more, empty, field.
                    pl.when((pl.col("_campos").list.len() == width + 1) & (pl.col("_campos").list.last() == ""))
                    .then(pl.col("_campos").list.head(width))
                    .otherwise(pl.col("_campos"))
                    .alias("_campos")
                )
            )
            count = pl.col("_campos").list.len()
            values = [pl.col("_campos").list.get(i, null_on_oob=True) for i in range(width - 1)]
            values.append(
                pl.when(count > width)
                .then(pl.col("_campos").list.slice(width - 1).list.join(_SEPARATOR))
                .otherwise(pl.col("_campos").list.get(width - 1, null_on_oob=True))
            )
            line = (pl.col("_n").cast(pl.Int64) + first_line + start_line).cast(pl.String)
            frame = frame.select(
                *[pl.when(value != "").then(value).alias(name) for name, value in zip(self.names, values)],
                pl.concat_str([pl.lit(f"{self.label}:"), line]).alias(contract.QUARANTINE_ORIGIN_COLUMN),
                pl.when(count != width)
                .then(pl.lit([MALFORMED_REASON], pl.List(pl.String)))
                .otherwise(pl.lit([], pl.List(pl.String)))
                .alias(SOURCE_REASONS_COLUMN),
            )
            if frame.height:
                yield frame

    def _slow(self, chunk: bytes, first_line: int) -> Iterator[pl.DataFrame]:
        """Line by line, with exact line numbers; frames of at most ``_SLOW_ROWS`` rows."""
        reader = csv.reader(
            io.StringIO(chunk.decode("utf-8"), newline=""),
            delimiter=_SEPARATOR,
            quotechar='"',
            quoting=csv.QUOTE_MINIMAL if self.quoted else csv.QUOTE_NONE,
            strict=False,
        )
        width = len(self.names)
        rows: list[list[str | None]] = []
        origins: list[str] = []
        malformed: list[list[str]] = []
        lines_before = 0
        for fields in reader:
            line = first_line + lines_before
            lines_before = reader.line_num
            if not fields:
                continue  # a blank line is not a record
            if len(fields) == width + 1 and fields[-1] == "":
                fields.pop()
            reasons: list[str] = []
            if len(fields) != width:
                reasons = [MALFORMED_REASON]
                if len(fields) > width:
                    fields = [*fields[: width - 1], _SEPARATOR.join(fields[width - 1 :])]
                else:
                    fields = [*fields, *([""] * (width - len(fields)))]  # "" becomes None below
            rows.append([field if field != "" else None for field in fields])
            origins.append(f"{self.label}:{line}")
            malformed.append(reasons)
            if len(rows) >= _SLOW_ROWS:
                yield self._slow_frame(rows, origins, malformed)
                rows, origins, malformed = [], [], []
        if rows:
            yield self._slow_frame(rows, origins, malformed)

    def _slow_frame(self, rows: list[list[str | None]], origins: list[str], malformed: list[list[str]]) -> pl.DataFrame:
        columns = list(zip(*rows))
        frame = pl.DataFrame(
            [pl.Series(name, values, dtype=pl.String) for name, values in zip(self.names, columns)]
            + [pl.Series(contract.QUARANTINE_ORIGIN_COLUMN, origins, dtype=pl.String)]
        )
        if any(malformed):
            frame = frame.with_columns(pl.Series(SOURCE_REASONS_COLUMN, malformed, dtype=pl.List(pl.String)))
        return frame


# --- the sources ---------------------------------------------------------------------


class _OpenDataSusCsv(Source):
    """What both exports share: members, streaming, decoding, parsing, batching."""

    format_name: ClassVar[str]

    def __init__(self, path: str | os.PathLike, encoding: str = "auto", batch_size: int = DEFAULT_BATCH_SIZE):
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"arquivo de entrada não encontrado: {self.path}")
        self.encoding = canonical_encoding(encoding)
        if batch_size < 1:
            raise SourceError("batch_size precisa ser positivo")
        self.batch_size = batch_size

    # The format's own part: the header check and the mapping to the contract.
    def _columns(self, header: str, names: list[str], label: str) -> list[str]:
        """The header's columns under the names ``_to_raw`` knows, or SourceError naming what is wrong."""
        raise NotImplementedError

    def _to_raw(self, frame: pl.DataFrame) -> pl.DataFrame:
        raise NotImplementedError

    def batches(self) -> Iterator[pl.DataFrame]:
        pending: list[pl.DataFrame] = []
        rows = 0
        for label, stream in _members(self.path):
            for frame in self._member_frames(label, stream):
                pending.append(self._to_raw(frame))
                rows += frame.height
                if rows >= self.batch_size:
                    merged = pl.concat(pending, how="diagonal_relaxed")
                    offset = 0
                    while merged.height - offset >= self.batch_size:
                        yield merged.slice(offset, self.batch_size)
                        offset += self.batch_size
                    pending = [merged.slice(offset)] if offset < merged.height else []
                    rows = merged.height - offset
        if rows:
            yield pl.concat(pending, how="diagonal_relaxed")

    def _member_frames(self, label: str, stream: IO[bytes]) -> Iterator[pl.DataFrame]:
        try:
            yield from self._read_member(label, stream)
        except SourceError:
            if isinstance(stream, zipfile.ZipExtFile):
                # A damaged deflate stream can decode to garbage that fails here before
                # the member's CRC is checked at its end: read on, and blame the zip if it is.
                for _ in _blocks(stream, label):
                    pass
            raise

    def _read_member(self, label: str, stream: IO[bytes]) -> Iterator[pl.DataFrame]:
        blocks = _blocks(stream, label)
        first = next(blocks, b"")
        first, encoding = _check_start(first, label, self.encoding)
        blocks = _chain(first, blocks)
        raw_header, rest = _split_header(blocks, label)
        header = _decode_header(raw_header, encoding)
        names, quoted = _header_fields(header)
        parser = _Parser(tuple(self._columns(header, names, label)), quoted, label)
        decode = _Decoder(encoding, label)
        for first_line, chunk in _record_chunks(rest, blocks, quoted, label, first_line=2):
            _refuse_binary(chunk, label, first_line)
            for frame in parser.frames(decode(chunk, first_line), first_line):
                if frame.height:
                    yield frame


def _lines(chunk: bytes) -> pa.LargeStringArray:
    """Every line of a UTF-8 chunk (its line break kept) as one Arrow string array,
    from the newline positions: no Python object per line."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    ends = np.flatnonzero(data == 0x0A) + 1
    if not len(ends) or ends[-1] != len(chunk):
        ends = np.append(ends, len(chunk))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    return pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(chunk))


def _line_slices(chunk: bytes, max_lines: int) -> Iterator[tuple[int, bytes]]:
    """(lines before it, piece) of a chunk cut at line ends every ``max_lines`` lines."""
    if chunk.count(b"\n") <= max_lines:
        yield 0, chunk
        return
    breaks = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 0x0A)
    start = 0
    for index in range(max_lines - 1, len(breaks), max_lines):
        end = int(breaks[index]) + 1
        yield index + 1 - max_lines, chunk[start:end]
        start = end
    if start < len(chunk):
        yield (len(breaks) // max_lines) * max_lines, chunk[start:]


def _refuse_binary(chunk: bytes, label: str, first_line: int) -> None:
    """A NUL byte is never text in UTF-8 or Latin-1: the rest is not a CSV (binary
    data, or a damaged file), and reading it as lines would only fill the quarantine."""
    at = chunk.find(b"\x00")
    if at >= 0:
        line = first_line + chunk.count(b"\n", 0, at)
        raise SourceError(
            f"{label}: linha {line}: bytes nulos, não é texto: o arquivo é binário ou está danificado daqui em diante"
        )


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


class PniCsvSource(_OpenDataSusCsv):
    """The routine PNI CSV ("doses aplicadas PNI"): the 56 columns of
    ``contract.SOURCE_COLUMNS`` by name, ``;``-separated, unquoted, Latin-1 or UTF-8."""

    kind: ClassVar[str] = "pni-csv"
    format_name: ClassVar[str] = "de rotina do PNI"

    def _columns(self, header: str, names: list[str], label: str) -> list[str]:
        _check_separator(header, names, label, self.format_name)
        if _COVID_MARKS <= set(names):
            raise SourceError(
                f"{label} é um CSV da campanha COVID-19 (document_id, vacina_dataAplicacao...), não o de rotina do PNI: use --format covid-csv"
            )
        problems = _layout_problems(names, contract.SOURCE_COLUMNS, contract.SOURCE_COLUMNS)
        if problems:
            raise SourceError(f"{label}: cabeçalho fora do layout do CSV de rotina do PNI (56 colunas): {'; '.join(problems)}")
        return names

    def _to_raw(self, frame: pl.DataFrame) -> pl.DataFrame:
        extra = [name for name in (contract.QUARANTINE_ORIGIN_COLUMN, SOURCE_REASONS_COLUMN) if name in frame.columns]
        return frame.select([*contract.SOURCE_COLUMNS, *extra])


# COVID-19 campaign column (lower case) → contract column. Special ones are mapped in _to_raw.
COVID_COLUMNS: dict[str, str | None] = {
    "document_id": "co_documento",
    "paciente_id": "co_paciente",
    "paciente_idade": "nu_idade_paciente",
    "paciente_datanascimento": None,  # not in the public layout: read, not kept
    "paciente_enumsexobiologico": "tp_sexo_paciente",
    "paciente_racacor_codigo": "co_raca_cor_paciente",
    "paciente_racacor_valor": "no_raca_cor_paciente",
    "paciente_endereco_coibgemunicipio": "co_municipio_paciente",
    "paciente_endereco_copais": "co_pais_paciente",
    "paciente_endereco_nmmunicipio": "no_municipio_paciente",
    "paciente_endereco_nmpais": "no_pais_paciente",
    "paciente_endereco_uf": "sg_uf_paciente",
    "paciente_endereco_cep": "nu_cep_paciente",
    "paciente_nacionalidade_enumnacionalidade": "ds_nacionalidade_paciente",
    "estabelecimento_valor": "co_cnes_estabelecimento",
    "estabelecimento_razaosocial": "no_razao_social_estabelecimento",
    "estalecimento_nofantasia": "no_fantasia_estalecimento",
    "estabelecimento_municipio_codigo": "co_municipio_estabelecimento",
    "estabelecimento_municipio_nome": "no_municipio_estabelecimento",
    "estabelecimento_uf": "sg_uf_estabelecimento",
    "vacina_grupoatendimento_codigo": "co_vacina_grupo_atendimento",
    "vacina_grupoatendimento_nome": "ds_vacina_grupo_atendimento",
    "vacina_categoria_codigo": "co_vacina_categoria_atendimento",
    "vacina_categoria_nome": "ds_vacina_categoria_atendimento",
    "vacina_lote": "co_lote_vacina",
    "vacina_fabricante_nome": "ds_vacina_fabricante",
    "vacina_fabricante_referencia": "co_vacina_fabricante",
    "vacina_dataaplicacao": "dt_vacina",
    "vacina_descricao_dose": "ds_dose_vacina",
    "vacina_codigo": "co_vacina",
    "vacina_nome": "ds_vacina",
    "sistema_origem": "ds_sistema_origem",
    # 2021 releases only.
    "id_sistema_origem": "co_sistema_origem",
    "data_importacao_rnds": "dt_entrada_rnds",
}
# Spellings of the same column in other releases.
COVID_ALIASES: dict[str, str] = {"estabelecimento_nofantasia": "estalecimento_nofantasia"}
# Without these a record could never be valid: a header lacking one is not this format.
COVID_REQUIRED: tuple[str, ...] = (
    "document_id",
    "paciente_id",
    "estabelecimento_valor",
    "estabelecimento_municipio_codigo",
    "estabelecimento_uf",
    "vacina_dataaplicacao",
    "vacina_descricao_dose",
    "vacina_codigo",
)


def _dose_key(description: str) -> str:
    text = unicodedata.normalize("NFC", description).casefold().replace("ª", "a").replace("º", "o")
    return " ".join(text.split())


@functools.cache
def dose_codes() -> dict[str, str]:
    """BRDose display (normalised by ``_dose_key``) → code."""
    codes: dict[str, str] = {}
    for code, display in reference.codesystem("BRDose").items():
        key = _dose_key(display)
        if codes.setdefault(key, code) != code:
            raise ValueError(f"BRDose tem duas doses com a mesma descrição: {display!r}")
    return codes


def dose_code(description: str | None) -> str | None:
    """The BRDose code of a dose description, or None when BRDose does not know it."""
    return dose_codes().get(_dose_key(description)) if description else None


class CovidCsvSource(_OpenDataSusCsv):
    """The COVID-19 campaign CSV (OpenDataSUS "Campanha Nacional de Vacinação contra
    Covid-19"): 32 double-quoted ``;``-separated columns, header case varying by
    release. ``entry_date`` sets ``dt_entrada_rnds`` of every record (see the module
    note on what it is otherwise)."""

    kind: ClassVar[str] = "covid-csv"
    format_name: ClassVar[str] = "da campanha COVID-19"

    def __init__(
        self,
        path: str | os.PathLike,
        encoding: str = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        entry_date: dt.date | None = None,
    ):
        super().__init__(path, encoding=encoding, batch_size=batch_size)
        self.entry_date = entry_date

    def _columns(self, header: str, names: list[str], label: str) -> list[str]:
        _check_separator(header, names, label, self.format_name)
        if _PNI_MARKS <= set(names):
            raise SourceError(
                f"{label} é o CSV de rotina do PNI (co_documento, dt_vacina...), não o da campanha COVID-19: use --format pni-csv"
            )
        names = [COVID_ALIASES.get(name, name) for name in names]
        problems = _layout_problems(names, tuple(COVID_COLUMNS), COVID_REQUIRED)
        if problems:
            raise SourceError(f"{label}: cabeçalho fora do layout do CSV da campanha COVID-19: {'; '.join(problems)}")
        return names

    def _to_raw(self, frame: pl.DataFrame) -> pl.DataFrame:
        present = set(frame.columns)
        by_target = {target: name for name, target in COVID_COLUMNS.items() if target and name in present}

        def column(target: str) -> pl.Expr:
            name = by_target.get(target)
            return pl.col(name) if name else pl.lit(None, pl.String)

        doses = frame[by_target["ds_dose_vacina"]].unique().to_list()
        dose_map = {description: dose_code(description) for description in doses if description is not None}
        ufs = {uf: reference.uf_nome_maiusculo(uf) for uf in reference.ufs()}
        special = {
            "co_vacina_fabricante": manufacturer_code(column("ds_vacina_fabricante")),
            "co_dose_vacina": column("ds_dose_vacina").replace_strict(dose_map, default=None, return_dtype=pl.String),
            "st_documento": pl.lit("final"),
            "no_uf_paciente": column("sg_uf_paciente").str.strip_chars().str.to_uppercase().replace_strict(ufs, default=None),
            "no_uf_estabelecimento": column("sg_uf_estabelecimento")
            .str.strip_chars()
            .str.to_uppercase()
            .replace_strict(ufs, default=None),
            "dt_entrada_rnds": (
                pl.lit(self.entry_date.isoformat())
                if self.entry_date is not None
                else pl.coalesce(
                    pl.when(column("dt_entrada_rnds").str.strip_chars() != "").then(column("dt_entrada_rnds")),
                    column("dt_vacina"),
                )
            ),
        }
        exprs = [special.get(name, column(name)).cast(pl.String).alias(name) for name in contract.SOURCE_COLUMNS]
        extra = [pl.col(name) for name in (contract.QUARANTINE_ORIGIN_COLUMN, SOURCE_REASONS_COLUMN) if name in present]
        return frame.select([*exprs, *extra])


@functools.cache
def rnds_manufacturers() -> dict[str, str]:
    """Manufacturer name (upper case) → RNDS code, from ``data/fabricantes_rnds.csv``."""
    with resources.files("pipelines").joinpath("data", "fabricantes_rnds.csv").open(encoding="utf-8") as handle:
        return {row["nome"].strip().upper(): row["codigo_rnds"].strip() for row in csv.DictReader(handle)}


def manufacturer_code(name: pl.Expr) -> pl.Expr:
    """The RNDS code of a manufacturer's name, or null when the reference table does not know it."""
    return name.str.strip_chars().str.to_uppercase().replace_strict(rnds_manufacturers(), default=None, return_dtype=pl.String)


__all__ = [
    "COVID_COLUMNS",
    "DEFAULT_BATCH_SIZE",
    "ENCODINGS",
    "MALFORMED_REASON",
    "CovidCsvSource",
    "PniCsvSource",
    "canonical_encoding",
    "dose_code",
    "manufacturer_code",
    "rnds_manufacturers",
]
