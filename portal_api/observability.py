"""What monitoring reads from the portal: Prometheus metrics at ``/metrics``, a request
id on every request (``X-Request-ID``, in each log line and in the download's log
line), and optional JSON logs (``VACINA_D1_LOG_FORMAT=json``).

Metrics (``prometheus-client``):

- ``vacina_d1_http_requests_total{method,route,status}`` and
  ``vacina_d1_http_request_duration_seconds{method,route}`` (latency);
- ``vacina_d1_http_errors_total{status}`` (every answer >= 400);
- ``vacina_d1_downloads_total{kind,scope,representation,delivery}`` (one per download log
  entry written) and ``vacina_d1_download_bytes_sent_total{representation}``;
- ``vacina_d1_refusals_total{reason}``: ``escopo`` (404 outside the caller's scope),
  ``termos`` (terms not accepted), ``faixa_ip`` (credential used outside its IP range),
  ``limite`` (429);
- ``vacina_d1_publication_lag_seconds{uf}``: age of the newest published day of each UF,
  read from the catalog at scrape time (``serving.freshness``);
- the pipeline's own metrics (its lag and its check results), read from the file the
  Dagster sensor writes (``serving.freshness.pipeline_metrics_path``), in the same scrape.

Several server processes (``uvicorn --workers N``): set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before they start; each process writes its counters there and any of
them answers ``/metrics`` with the sum (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel

log = logging.getLogger("portal_api")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("vacina_d1_request_id", default=None)

REQUESTS = Counter("vacina_d1_http_requests", "Requisições atendidas.", ["method", "route", "status"])
LATENCY = Histogram(
    "vacina_d1_http_request_duration_seconds",
    "Tempo de resposta (até o último byte).",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ERRORS = Counter("vacina_d1_http_errors", "Respostas de erro, por status.", ["status"])
DOWNLOADS = Counter("vacina_d1_downloads", "Downloads registrados.", ["kind", "scope", "representation", "delivery"])
BYTES_SENT = Counter("vacina_d1_download_bytes_sent", "Bytes de arquivos enviados.", ["representation"])
REFUSALS = Counter("vacina_d1_refusals", "Recusas: escopo, termos, faixa de IP, limite.", ["reason"])

_DOWNLOAD_PATH = re.compile(r"^/files/[0-9]+/content$")
_OPERATION = re.compile(r"^(?P<kind>.+?)-(?P<uf>[a-z]{2})(?:-(?P<ibge>[0-9]{6}))?$")
_REFUSAL_SLUGS = {"termos-nao-aceitos": "termos", "fora-da-faixa-de-ip": "faixa_ip"}
_PROBLEM_TYPE = "application/problem+json"


def operation_labels(operation: str) -> tuple[str, str]:
    """``imunizacao-total-sp-355030`` -> (``imunizacao-total``, ``municipio``)."""
    match = _OPERATION.match(operation)
    if match is None:
        return operation, "desconhecido"
    return match["kind"], "municipio" if match["ibge"] else "uf"


def current_request_id() -> str | None:
    return request_id_var.get()


# -- the middleware ---------------------------------------------------------------------------


class ObservabilityMiddleware:
    """Request id, latency, errors, refusals and download bytes of every HTTP request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_PATTERN.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "problem": None, "sent": 0, "problem_body": b""}
        is_download = scope["method"] == "GET" and bool(_DOWNLOAD_PATH.match(scope.get("path", "")))

        async def observed_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                headers = list(message.get("headers") or [])
                content_type = dict(headers).get(b"content-type", b"").decode("latin-1")
                state["problem"] = content_type.startswith(_PROBLEM_TYPE)
                state["content_type"] = content_type
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if state["problem"] and len(state["problem_body"]) < 16384:
                    state["problem_body"] += body
                elif is_download and state["status"] in (200, 206):
                    state["sent"] += len(body)
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(sem rota)"
            status = state["status"]
            REQUESTS.labels(scope["method"], template, str(status)).inc()
            LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)
            if status >= 400:
                ERRORS.labels(str(status)).inc()
                reason = _refusal_reason(status, state["problem_body"])
                if reason:
                    REFUSALS.labels(reason).inc()
            if state["sent"]:
                representation = "csv.gz" if "gzip" in state.get("content_type", "") else "csv"
                BYTES_SENT.labels(representation).inc(state["sent"])
            request_id_var.reset(token)


def _refusal_reason(status: int, body: bytes) -> str | None:
    if status == 429:
        return "limite"
    if status not in (403, 404) or not body:
        return None
    try:
        problem = json.loads(body)
    except ValueError:
        return None
    slug = str(problem.get("type", "")).rsplit(":", 1)[-1]
    if slug in _REFUSAL_SLUGS:
        return _REFUSAL_SLUGS[slug]
    if status == 404:
        from portal_api.api.deps import NOT_IN_SCOPE

        if problem.get("detail") == NOT_IN_SCOPE:
            return "escopo"
    return None


def _count_download(mapper, connection, entry) -> None:
    """After a download log entry is inserted: the counter, and a log line with the request id."""
    kind, scope = operation_labels(entry.operation)
    DOWNLOADS.labels(kind, scope, entry.representation, entry.delivery).inc()
    log.info(
        "download registrado: entrada %s, operação %s, dia %s, %s/%s, request_id %s",
        entry.id,
        entry.operation,
        entry.day,
        entry.representation,
        entry.delivery,
        entry.http_request_id or "-",
    )


_listening = False


def _listen_for_downloads() -> None:
    global _listening
    if not _listening:
        from portal_api.models import DownloadLogEntry

        sa.event.listen(DownloadLogEntry, "after_insert", _count_download)
        _listening = True


# -- /metrics --------------------------------------------------------------------------------


def _lag_registry(engine: sa.Engine) -> CollectorRegistry:
    from serving.freshness import lag_by_uf

    registry = CollectorRegistry()
    gauge = Gauge(
        "vacina_d1_publication_lag_seconds",
        "Idade do dia publicado mais novo de cada UF (segundos desde o fim do dia em America/Sao_Paulo).",
        ["uf"],
        registry=registry,
    )
    for uf, seconds in sorted(lag_by_uf(engine).items()):
        gauge.labels(uf).set(seconds)
    return registry


def _process_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_text(engine: sa.Engine, home: Path) -> bytes:
    from serving.freshness import pipeline_metrics_path

    parts = [generate_latest(_process_registry())]
    try:
        parts.append(generate_latest(_lag_registry(engine)))
    except sa.exc.SQLAlchemyError as exc:
        log.error("atraso da publicação não medido: %s", exc)
    pipeline = pipeline_metrics_path(home)
    if pipeline.is_file():
        text = pipeline.read_bytes()
        parts.append(text if text.endswith(b"\n") else text + b"\n")
    return b"".join(parts)


# -- JSON logs ---------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "em": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "nivel": record.levelname,
            "logger": record.name,
            "mensagem": record.getMessage(),
            "request_id": current_request_id(),
        }
        if record.exc_info:
            payload["erro"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(log_format: str | None = None) -> None:
    """``json``: one JSON object a line (with the request id) for the portal's loggers."""
    log_format = (log_format or os.environ.get("VACINA_D1_LOG_FORMAT", "")).strip().lower()
    if log_format != "json":
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("portal_api", "uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


# -- installing it -----------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """The middleware, the download counter, ``GET /metrics`` and the two probes."""
    configure_logging()
    _listen_for_downloads()
    app.add_middleware(ObservabilityMiddleware)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        services = request.app.state.services
        body = metrics_text(services.database.engine, Path(services.settings.home))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    # Probes and /metrics are for the load balancer and Prometheus, outside the API's document.
    @app.get("/health/live", include_in_schema=False, response_model=HealthOut)
    def health_live() -> HealthOut:
        return HealthOut(status="ok")

    @app.get("/health/ready", include_in_schema=False, response_model=ReadyOut)
    def health_ready(request: Request):
        services = request.app.state.services
        failures = readiness_failures(services.database.engine, services.storage)
        if failures:
            for part, reason in failures.items():
                log.error("não pronto: %s inacessível (%s)", part, reason)
            body = ReadyOut(status="indisponivel", falhas=failures).model_dump()
            return JSONResponse(body, status_code=503, headers={"Cache-Control": "no-store"})
        return ReadyOut(status="ok", falhas={})


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    falhas: dict[str, str]


def readiness_failures(engine: sa.Engine, storage) -> dict[str, str]:
    """Part name (``banco de dados``, ``armazenamento``) -> why it is not reachable."""
    failures: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure makes the part unavailable
        failures["banco de dados"] = _reason(exc)
    try:
        _check_storage(storage)
    except Exception as exc:  # noqa: BLE001
        failures["armazenamento"] = _reason(exc)
    return failures


def _check_storage(storage) -> None:
    client, bucket = getattr(storage, "client", None), getattr(storage, "bucket", None)
    if client is not None and bucket is not None:
        client.head_bucket(Bucket=bucket)
        return
    root = getattr(storage, "root", None)
    if root is not None:
        root = Path(root)
        if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
            raise OSError(f"diretório {root} ausente ou ilegível")
        return
    next(iter(storage.list_keys("manifests/")), None)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}"[:300]
