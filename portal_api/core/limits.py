"""Request-head limit enforced by the server protocol itself (issue 11).

A request whose request line and headers exceed ``VACINA_D1_MAX_HEADER_BYTES``
(16 KB by default) gets ``431 Request Header Fields Too Large`` and the connection is
closed after at most that many bytes of its head were read: the parser is fed the
head in slices no longer than what is left of the allowance, so a 64 MB header is
never buffered (httptools keeps a header value whole until it ends). It is the uvicorn
HTTP protocol class of every worker process (``vacina-d1 serve --workers N``), so the
limit holds whatever the number of workers; bodies are limited apart
(``problems.BodyLimitMiddleware``).
"""

from __future__ import annotations

import json
import os

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_MAX_HEADER_BYTES = 16 * 1024


def _limit() -> int:
    # Read from the environment like every setting (PortalSettings validates the same variable at start-up).
    try:
        return max(1024, int(os.environ.get("VACINA_D1_MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES)))
    except ValueError:
        return DEFAULT_MAX_HEADER_BYTES


def _refusal(limit: int) -> bytes:
    body = json.dumps(
        {
            "type": "urn:vacina-d1:problema:cabecalhos-grandes-demais",
            "title": "Cabeçalhos grandes demais",
            "status": 431,
            "detail": f"A linha de requisição e os cabeçalhos passam de {limit} bytes; reduza-os e tente de novo.",
        },
        ensure_ascii=False,
    ).encode()
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/problem+json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads larger than the limit."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_head_bytes = _limit()
        self._head_bytes = 0
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head, self._head_bytes = True, 0  # the next request on this connection starts its own head
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        while data:
            if not self._in_head:
                super().data_received(data)
                return
            room = self.max_head_bytes - self._head_bytes
            if room <= 0:
                self._refuse()
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self.transport.is_closing():
                return
        if self._in_head and self._head_bytes >= self.max_head_bytes:
            self._refuse()

    def _refuse(self) -> None:
        self.logger.warning("cabeçalhos maiores que %s bytes: 431 e conexão fechada (%s)", self.max_head_bytes, self.client)
        if not self.transport.is_closing():
            self.transport.write(_refusal(self.max_head_bytes))
            self.transport.close()
