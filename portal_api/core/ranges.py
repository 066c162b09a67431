"""HTTP byte ranges (RFC 9110 §14) and download headers.

One range per request: a multi-range request is answered with the whole file (a
server may ignore Range), which is what resuming clients never send anyway. A
syntactically invalid Range is ignored; a valid one that starts past the end is
416. ``If-Range`` is honoured only with our strong ETag: an HTTP-date or a
different ETag means "the file changed", so the whole file is sent.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a satisfiable single range, None to send the
    whole file, RangeNotSatisfiable for a range wholly past the end."""
    if not header or "," in header:
        return None
    match = _RANGE.match(header)
    if not match:
        return None
    first, last = match[1], match[2]
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable()
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable()
    return start, min(end, size - 1)


def if_range_matches(header: str | None, etag: str) -> bool:
    """True when Range may be honoured: no If-Range, or If-Range equal to our strong ETag."""
    if header is None:
        return True
    return header.strip() == etag


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact UTF-8 ``filename*`` (RFC 6266)."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"[^A-Za-z0-9._\-]", "_", ascii_name) or "arquivo"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether Accept-Encoding allows gzip (q > 0, directly or through ``*``)."""
    if not accept_encoding:
        return False
    allowed: dict[str, float] = {}
    for part in accept_encoding.split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        match = re.search(r"q\s*=\s*([0-9.]+)", params)
        if match:
            try:
                q = float(match[1])
            except ValueError:
                q = 0.0
        allowed[name.strip().lower()] = q
    if "gzip" in allowed:
        return allowed["gzip"] > 0
    if "x-gzip" in allowed:
        return allowed["x-gzip"] > 0
    return allowed.get("*", 0.0) > 0
