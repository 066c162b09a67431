"""A real HTTP reverse proxy on loopback in front of ``vacina-d1 serve`` that
misbehaves on request, the way municipal networks do: drops a download's
connection after some bytes, flips a byte of a body, or answers 429 with
``Retry-After``. It records every request (time, method, path, Range, status).
Redirects (the S3 presigned URL) pass through untouched."""

from __future__ import annotations

import http.client
import re
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class Seen:
    at: float
    method: str
    path: str
    range: str | None
    status: int
    sent: int  # body bytes sent
    authorization: bool = False  # the request carried an Authorization header


@dataclass
class Fault:
    pattern: str  # regex on the path
    kind: str  # "drop" | "corrupt" | "throttle"
    times: int = 1
    drop_after: int = 0
    retry_after: int = 2
    method: str = "GET"  # the fault hits only this method (the portal HEADs S3 objects first)


class FaultyPortalProxy:
    def __init__(self, upstream: str, tls: ssl.SSLContext | None = None):
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                if self.path.startswith("http://"):  # absolute form: used as a forward proxy (HTTP_PROXY)
                    parts = urlparse(self.path)
                    self.path = parts.path + (f"?{parts.query}" if parts.query else "")
                    with proxy.lock:
                        proxy.forwarded += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    fault = next(
                        (f for f in proxy.faults if f.times > 0 and f.method == self.command and re.search(f.pattern, self.path)),
                        None,
                    )
                    if fault:
                        fault.times -= 1
                started = time.monotonic()
                if fault and fault.kind == "throttle":
                    payload = b'{"detail": "muitas requisicoes"}'
                    self.send_response(429)
                    self.send_header("Retry-After", str(fault.retry_after))
                    self.send_header("Content-Type", "application/problem+json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    proxy._record(started, self, 429, len(payload))
                    return
                connection = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                data = response.read()
                connection.close()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length or "0")
                if fault and fault.kind == "drop":
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command == "HEAD":
                    proxy._record(started, self, response.status, 0)
                    return
                if fault and fault.kind == "drop" and response.status in (200, 206):
                    self.wfile.write(data[: fault.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    proxy._record(started, self, response.status, fault.drop_after)
                    return
                if fault and fault.kind == "corrupt" and response.status in (200, 206) and data:
                    middle = len(data) // 2
                    data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
                self.wfile.write(data)
                proxy._record(started, self, response.status, len(data))

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _handle

        self.forwarded = 0  # requests received in absolute form, as a forward proxy
        self.tls = tls is not None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _record(self, started: float, handler: BaseHTTPRequestHandler, status: int, sent: int) -> None:
        with self.lock:
            self.seen.append(
                Seen(
                    started,
                    handler.command,
                    handler.path,
                    handler.headers.get("Range"),
                    status,
                    sent,
                    "Authorization" in handler.headers,
                )
            )

    def add(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()
            self.faults.clear()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{'localhost' if self.tls else host}:{port}"

    def __enter__(self) -> "FaultyPortalProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
