"""The portal's API as the client uses it: POST /token, the listing, the terms of
use, and the resumable download (Range/If-Range, the S3 307 redirect).

Every request goes through one retry loop: network errors, 429 and 5xx wait
(``Retry-After`` when the portal says how long, else exponential backoff with
jitter) and try again; any other answer is returned to the caller. httpx reads
``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` and ``SSL_CERT_FILE`` from the
environment; ``ca_bundle`` adds a municipal network's own CA.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import ssl
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import httpx

from vacina_d1_client import __version__
from vacina_d1_client.errors import AuthError, OutOfScope, SyncError, TermsNotAccepted, TransferFailed

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PAGE_SIZE = 100


@dataclass(frozen=True)
class RemoteFile:
    id: int
    operation: str
    day: dt.date
    version: int
    name: str
    size: int
    sha256: str
    rows: int

    @classmethod
    def from_json(cls, item: dict) -> "RemoteFile":
        return cls(
            id=int(item["id"]), operation=item["operation"], day=dt.date.fromisoformat(item["day"]),
            version=int(item["version"]), name=item["name"], size=int(item["size"]), sha256=item["sha256"].lower(),
            rows=int(item.get("rows") or 0),
        )


@dataclass
class RetryPolicy:
    attempts: int = 6  # tries per request, the first included
    base_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    max_wait_seconds: float = 900.0  # the longest Retry-After honoured
    sleep: Callable[[float], None] = time.sleep

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [base/2, base * 2^attempt], capped."""
        ceiling = min(self.max_backoff_seconds, self.base_seconds * (2 ** attempt))
        return random.uniform(min(self.base_seconds / 2, ceiling), ceiling)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def problem_detail(response: httpx.Response) -> str:
    """The portal's own message (problem+json ``detail``), else the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return body["detail"]
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext | bool:
    if not ca_bundle:
        return True  # httpx's default store, or SSL_CERT_FILE/SSL_CERT_DIR from the environment
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=ca_bundle)  # added to the system's roots, not instead of them
    return context


class Portal:
    def __init__(
        self, url: str, cpf: str, token: str, *, ca_bundle: str | None = None, retry: RetryPolicy | None = None,
        log: Callable[[str], None] = lambda message: None, timeout: float = 60.0,
    ):
        self.url = url.rstrip("/")
        self._cpf = cpf
        self._token = token
        self.retry = retry or RetryPolicy()
        self.log = log
        self.requests = 0  # every HTTP request sent, retries included
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 20.0)), verify=ssl_context(ca_bundle), trust_env=True,
            follow_redirects=False, headers={"User-Agent": f"vacina-d1-client/{__version__}"},
        )
        self._access: str | None = None

    def close(self) -> None:
        self.http.close()

    # -- the retry loop --------------------------------------------------------------------

    def _wait(self, attempt: int, why: str, retry_after: str | None = None) -> None:
        delay = retry_after_seconds(retry_after)
        if delay is None:
            delay = self.retry.backoff(attempt)
        elif delay > self.retry.max_wait_seconds:
            raise TransferFailed(f"{why}: o portal pediu para esperar {delay:.0f} s, mais que o limite de {self.retry.max_wait_seconds:.0f} s")
        self.log(f"{why}; nova tentativa em {delay:.1f} s")
        self.retry.sleep(delay)

    def send(self, method: str, url: str, **kwargs) -> httpx.Response:
        """One request with retries; the response is read whole (not for downloads)."""
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            try:
                self.requests += 1
                response = self.http.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise TransferFailed(f"{method} {_path(url)}: falha de rede: {exc or exc.__class__.__name__}") from None
                self._wait(attempt, f"{method} {_path(url)}: falha de rede ({exc.__class__.__name__})")
                continue
            if response.status_code in RETRY_STATUSES and not last:
                self._wait(attempt, f"{method} {_path(url)}: HTTP {response.status_code}", response.headers.get("retry-after"))
                continue
            if response.status_code in RETRY_STATUSES:
                raise TransferFailed(f"{method} {_path(url)}: {problem_detail(response)}")
            return response
        raise AssertionError("unreachable")

    # -- authentication --------------------------------------------------------------------

    def authenticate(self) -> None:
        response = self.send(
            "POST", f"{self.url}/token",
            data={"grant_type": "client_credentials", "client_id": self._cpf, "client_secret": self._token},
        )
        if response.status_code != 200:
            detail = problem_detail(response)
            raise AuthError(f"o portal recusou o token pessoal: {detail}")
        self._access = response.json()["access_token"]

    def _auth_headers(self) -> dict[str, str]:
        if self._access is None:
            self.authenticate()
        return {"Authorization": f"Bearer {self._access}"}

    def get_json(self, path: str, *, operation: str, params: dict | None = None) -> dict:
        response = self._authorized("GET", path, params=params)
        if response.status_code == 404:
            raise OutOfScope(f"{operation}: {problem_detail(response)} (a operação não existe ou a credencial não dá acesso a ela)")
        if response.status_code != 200:
            raise SyncError(f"GET {path}: {problem_detail(response)}")
        return response.json()

    def _authorized(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.send(method, f"{self.url}{path}", headers=self._auth_headers(), **kwargs)
        if response.status_code == 401:  # the access token expired mid-run: one new exchange
            self.authenticate()
            response = self.send(method, f"{self.url}{path}", headers=self._auth_headers(), **kwargs)
            if response.status_code == 401:
                raise AuthError(f"o portal recusou o acesso: {problem_detail(response)}")
        return response

    # -- listing ---------------------------------------------------------------------------

    def files_since(self, operation: str, since: dt.date) -> list[RemoteFile]:
        """The current file of every day on or after ``since``, oldest first."""
        found: list[RemoteFile] = []
        years = self.get_json(f"/operations/{operation}/years", operation=operation)["years"]
        for year in sorted(y for y in years if y >= since.year):
            months = self.get_json(f"/operations/{operation}/years/{year}/months", operation=operation)["months"]
            for month in sorted(m for m in months if (year, m) >= (since.year, since.month)):
                page = 1
                while True:
                    body = self.get_json(
                        f"/operations/{operation}/years/{year}/months/{month}/files", operation=operation,
                        params={"page": page, "page_size": PAGE_SIZE},
                    )
                    found.extend(RemoteFile.from_json(item) for item in body["items"])
                    if not body["items"] or page * PAGE_SIZE >= int(body["total"]):
                        break
                    page += 1
        return sorted((f for f in found if f.day >= since), key=lambda f: f.day)

    # -- terms of use ----------------------------------------------------------------------

    def terms(self, operation: str) -> dict:
        return self.get_json(f"/operations/{operation}/terms", operation=operation)

    def accept_terms(self, operation: str, version: int) -> None:
        response = self._authorized(
            "POST", f"/operations/{operation}/terms/acceptances", json={"version": version, "accepted": True}
        )
        if response.status_code not in (200, 201):
            raise SyncError(f"{operation}: o aceite dos termos foi recusado: {problem_detail(response)}")

    # -- download --------------------------------------------------------------------------

    @contextmanager
    def download(self, remote: RemoteFile, offset: int) -> Iterator[httpx.Response]:
        """The open response for ``remote`` from ``offset`` on (200, 206 or 416), after
        following the S3 redirect. Network errors propagate: the caller keeps what it
        has and resumes. 429/5xx before the body are waited out here."""
        path = f"/files/{remote.id}/content"
        ranged = {"Range": f"bytes={offset}-", "If-Range": f'"{remote.sha256}"'} if offset else {}
        for attempt in range(self.retry.attempts):
            last = attempt == self.retry.attempts - 1
            self.requests += 1
            request = self.http.build_request("GET", f"{self.url}{path}", headers={**self._auth_headers(), **ranged})
            response = self.http.send(request, stream=True)
            if response.status_code == 401:
                response.close()
                self.authenticate()
                continue
            if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                location = response.headers["location"]
                response.close()
                # The portal checked If-Range against the version it redirects to, and the
                # presigned object never changes under its key: only Range goes on, and no
                # Authorization leaves for the storage's host.
                self.requests += 1
                request = self.http.build_request(
                    "GET", httpx.URL(self.url).join(location), headers={"Range": ranged["Range"]} if offset else {}
                )
                response = self.http.send(request, stream=True)
                if response.status_code >= 400 and response.status_code not in (416, *RETRY_STATUSES):
                    # The storage refused the presigned URL (expired on a skewed clock, say):
                    # a new request to the portal makes a new one.
                    detail = f"armazenamento respondeu HTTP {response.status_code}"
                    response.close()
                    if last:
                        raise TransferFailed(f"{remote.name}: {detail} em todas as {self.retry.attempts} tentativas")
                    self._wait(attempt, f"{remote.name}: {detail}")
                    continue
            if response.status_code in RETRY_STATUSES:
                retry_after = response.headers.get("retry-after")
                detail = f"HTTP {response.status_code}"
                response.close()
                if last:
                    raise TransferFailed(f"{remote.name}: {detail} em todas as {self.retry.attempts} tentativas")
                self._wait(attempt, f"{remote.name}: {detail}", retry_after)
                continue
            if response.status_code == 403:
                response.read()
                body = _json_or_empty(response)
                response.close()
                if body.get("type", "").endswith("termos-nao-aceitos") or "termos" in problem_detail(response).lower():
                    raise TermsNotAccepted(problem_detail(response), remote.operation, body.get("terms_version"))
                raise SyncError(f"{remote.name}: {problem_detail(response)}")
            if response.status_code == 404:
                response.read()
                response.close()
                raise TransferFailed(f"{remote.name}: o arquivo não está mais disponível ({problem_detail(response)})")
            try:
                yield response
            finally:
                response.close()
            return
        raise TransferFailed(f"{remote.name}: o portal recusou o acesso repetidamente")


def _json_or_empty(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _path(url: str) -> str:
    return httpx.URL(url).path
