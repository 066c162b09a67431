"""Evidence files of the homologação tests: PDF or PNG, recognised by their content —
the magic bytes and a structural check — never by the name or the declared type.

* PNG: the 8-byte signature, then a well-formed chunk sequence: IHDR first (13 bytes,
  non-zero size, a valid bit depth/colour type pair), at least one IDAT, IEND last and
  nothing after it, every chunk's CRC-32 right.
* PDF: ``%PDF-1.x``/``%PDF-2.0`` at the very start, at least one ``N G obj … endobj``,
  and a trailer in the last 2 KB: ``startxref`` with an offset inside the file that
  points at a ``xref`` table or at an object (cross-reference stream), then ``%%EOF``.

An HTML page renamed ``.pdf`` fails at the first byte, and is named as HTML in the
message so the person knows what they sent.
"""

from __future__ import annotations

import re
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PDF = "application/pdf"
PNG = "image/png"
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
_PDF_HEADER = re.compile(rb"%PDF-(1\.[0-7]|2\.0)")
_STARTXREF = re.compile(rb"startxref\s+(\d{1,12})\s+%%EOF\s*$")
_OBJECT = re.compile(rb"\d{1,10}\s+\d{1,5}\s+obj\b")


class EvidenceRefused(ValueError):
    """Not an acceptable evidence file (the message says why, in Portuguese)."""


def media_type(data: bytes, *, max_bytes: int) -> str:
    """``application/pdf`` or ``image/png`` for an acceptable file, else EvidenceRefused."""
    if not data:
        raise EvidenceRefused("o arquivo está vazio")
    if len(data) > max_bytes:
        raise EvidenceRefused(f"o arquivo tem {len(data):,} bytes; o máximo é {max_bytes:,} bytes".replace(",", "."))
    if data.startswith(PNG_SIGNATURE):
        _check_png(data)
        return PNG
    if data.startswith(b"%PDF-"):
        _check_pdf(data)
        return PDF
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head:
        raise EvidenceRefused("o conteúdo é um documento HTML, não um PDF nem uma imagem PNG (o nome do arquivo não basta)")
    raise EvidenceRefused("o conteúdo não é um PDF nem uma imagem PNG (o nome do arquivo não basta)")


def _check_png(data: bytes) -> None:
    offset, first, seen_idat, ended = len(PNG_SIGNATURE), True, False, False
    while offset < len(data):
        if ended:
            raise EvidenceRefused("PNG inválido: há dados depois do fim da imagem (IEND)")
        if offset + 12 > len(data):
            raise EvidenceRefused("PNG inválido: bloco truncado")
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 8 + length
        if length > 2**31 - 1 or end + 4 > len(data) or not kind.isalpha():
            raise EvidenceRefused("PNG inválido: bloco truncado ou malformado")
        body = data[offset + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise EvidenceRefused(f"PNG inválido: CRC errado no bloco {kind.decode('ascii')}")
        if first:
            if kind != b"IHDR" or length != 13:
                raise EvidenceRefused("PNG inválido: o primeiro bloco não é o cabeçalho IHDR")
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            if not width or not height or depth not in _PNG_DEPTHS.get(colour, set()):
                raise EvidenceRefused("PNG inválido: cabeçalho IHDR com dimensões ou cores impossíveis")
            first = False
        elif kind == b"IDAT":
            seen_idat = True
        elif kind == b"IEND":
            ended = True
        offset = end + 4
    if not ended or not seen_idat:
        raise EvidenceRefused("PNG inválido: sem dados de imagem (IDAT) ou sem o fim (IEND)")


def _check_pdf(data: bytes) -> None:
    if not _PDF_HEADER.match(data):
        raise EvidenceRefused("PDF inválido: cabeçalho %PDF- sem versão reconhecida")
    tail = data[-2048:]
    found = _STARTXREF.search(tail)
    if not found:
        raise EvidenceRefused("PDF inválido: sem o trecho final (startxref e %%EOF) — arquivo truncado?")
    offset = int(found[1])
    if offset >= len(data):
        raise EvidenceRefused("PDF inválido: startxref aponta para fora do arquivo")
    target = data[offset : offset + 32].lstrip()
    if not (target.startswith(b"xref") or _OBJECT.match(target)):
        raise EvidenceRefused("PDF inválido: startxref não aponta para a tabela de referências cruzadas")
    if not _OBJECT.search(data) or b"endobj" not in data:
        raise EvidenceRefused("PDF inválido: nenhum objeto (obj … endobj)")
