"""The published CSV format, in one place.

- UTF-8 with a byte-order mark: Excel in Portuguese opens the file with its
  accents intact (without the BOM it guesses Windows-1252); pandas, polars,
  duckdb and R's readr/data.table drop the BOM by themselves. Base R's
  ``read.csv2`` needs ``fileEncoding = "UTF-8-BOM"``.
- ``;`` between fields (what Excel in pt-BR splits on, since ``,`` is the
  decimal mark there), a header row, ``\\n`` line ends (every reader above, Excel
  included, accepts them; one byte less per line than ``\\r\\n``).
- Minimal quoting: a field is quoted only when it holds ``;`` or ``"`` (``"``
  doubled inside). Text never holds a line break: validation folds control
  characters to spaces.
- Codes are text with their leading zeros; dates are ISO ``AAAA-MM-DD``; a null
  is an empty field.
- Stored as one gzip member (``.csv.gz``) served as ``application/gzip`` with no
  ``Content-Encoding``: browsers, curl and wget save exactly the stored bytes
  under the ``.csv.gz`` name (so the SHA-256 in the manifest matches what was
  downloaded), and pandas, polars, duckdb and R read ``.csv.gz`` directly.

The gzip stream is written piecewise, the way pigz does: each piece is a raw
deflate stream ended by a sync flush (byte-aligned, not final), the pieces are
concatenated, and an empty final block and the CRC-32/size trailer close the one
member. Any gzip reader sees a single ordinary member.
"""

from __future__ import annotations

import struct
from typing import IO, Protocol, cast

import polars as pl
from isal import isal_zlib

from pipelines import contract

SEPARATOR = ";"
LINE_END = "\n"
QUOTE = '"'
BOM = b"\xef\xbb\xbf"
DATE_FORMAT = "%Y-%m-%d"

CONTENT_TYPE_GZIP = "application/gzip"
CONTENT_TYPE_CSV = "text/csv; charset=utf-8"

# isal level 2: as fast as level 1 on this data, a slightly better ratio (bench/README.md).
DEFAULT_GZIP_LEVEL = 2

# Fixed gzip header: no name, mtime 0 (byte-identical output), OS "unknown".
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def header_line() -> bytes:
    """BOM and the header row, without its line end."""
    return BOM + SEPARATOR.join(contract.FILE_COLUMNS).encode()


class ByteSink(Protocol):
    """What polars' CSV writer calls on a file object (an io.BytesIO, or partition's reused buffer)."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


def write_rows(frame: pl.DataFrame, sink: ByteSink) -> None:
    """The frame's rows (the 56 source columns), one ``\\n``-terminated line each, no header."""
    frame.write_csv(
        cast(IO[bytes], sink),  # polars only writes to it (and flushes)
        include_header=False,
        separator=SEPARATOR,
        line_terminator=LINE_END,
        quote_char=QUOTE,
        quote_style="necessary",
        date_format=DATE_FORMAT,
        null_value="",
    )


def vinculo_suffix(vinculo: contract.Vinculo) -> bytes:
    return (SEPARATOR + vinculo.value).encode()


class GzipPieces:
    """One gzip member built from pieces compressed independently (see the module
    doc). Each piece is primed with the last 32 KiB before it (the deflate window,
    which the reader has in hand at that point), as pigz does, so the pieces lose
    almost nothing against one stream. Cut at fixed offsets by the caller, the
    pieces — hence the bytes — do not depend on how the data arrived."""

    WINDOW = 32 * 1024

    def __init__(self, level: int = DEFAULT_GZIP_LEVEL):
        self.level = level
        self.crc = 0
        self.size = 0
        self.window = b""

    def header(self) -> bytes:
        return GZIP_HEADER

    def _compressor(self):
        if self.window:
            return isal_zlib.compressobj(
                self.level, isal_zlib.DEFLATED, -15, isal_zlib.DEF_MEM_LEVEL, isal_zlib.Z_DEFAULT_STRATEGY, self.window
            )
        return isal_zlib.compressobj(self.level, isal_zlib.DEFLATED, -15)

    def _advance(self, data) -> None:
        self.crc = isal_zlib.crc32(data, self.crc)
        self.size += len(data)
        self.window = bytes(data[-self.WINDOW :]) if len(data) >= self.WINDOW else (self.window + bytes(data))[-self.WINDOW :]

    def piece(self, data) -> bytes:
        """``data`` compressed as a byte-aligned, non-final run of deflate blocks."""
        compressor = self._compressor()
        body = compressor.compress(data) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)
        self._advance(data)
        return body

    def finish(self, data=b"") -> bytes:
        """The last piece (may be empty), the final block and the trailer."""
        compressor = self._compressor()
        body = compressor.compress(data) + compressor.flush(isal_zlib.Z_FINISH)
        self._advance(data)
        return body + struct.pack("<II", self.crc & 0xFFFFFFFF, self.size & 0xFFFFFFFF)
