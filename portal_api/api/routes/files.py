"""A file: its details and download log, the download itself, and "Atualizar".

Download design (documented in the OpenAPI description too):

* The stored object is the gzip file, and by default that file is what is sent:
  ``Content-Type: application/gzip``, no ``Content-Encoding``, named
  ``imunizacao-total-df_2026-11-21.csv.gz``. Sending it as ``text/csv`` with
  ``Content-Encoding: gzip`` would make browsers and ``curl --compressed`` decode it
  on the fly and save plain CSV under a ``.gz`` name, and byte ranges would refer
  to encoded bytes the client never keeps, so a resumed download would not be
  byte-exact. As ``application/gzip`` the bytes received are the bytes stored:
  ``Range`` offsets, the ETag (the SHA-256 of those bytes) and the catalog's digest
  all describe the same bytes, with compression on the wire for everyone.
* ``?format=csv`` asks for the CSV itself: sent gzip-encoded (``Content-Encoding:
  gzip``, the stored bytes untouched) when ``Accept-Encoding`` allows gzip, else
  decompressed on the fly. No ranges on that representation (``Accept-Ranges: none``);
  the resumable, byte-exact download is the default one.
* ``?format=parquet`` sends the file's typed Parquet (same rows and order, codes as
  text, dates as dates), published beside the CSV under the same version: byte-exact
  and resumable like the default, ETag = its own SHA-256; logged as ``parquet`` with
  that SHA-256 (``delivered_sha256``).
* On S3 the stored representations are a ``307`` to a presigned URL made for this
  request only, living ``VACINA_D1_PRESIGN_SECONDS``.
* The download is written to the log before the first byte (or the redirect)
  leaves; when the log cannot be written the download is refused with 503. Every
  GET that transfers bytes is logged, ranged continuations included, each with its
  range: the log never under-counts who received the data, and a continuation is
  told apart by its range. HEAD, 304-less revalidation and 416 transfer no data and
  are not logged.
* Behind nginx (``VACINA_D1_ACCEL_REDIRECT_PREFIX``, local store): after authorising
  and logging, the answer is an ``X-Accel-Redirect`` and nginx sends the bytes, Range
  included (deploy/nginx/vacina-d1.conf).
* Integrity (issue 11): a version with a recorded incident, or whose stored size is not
  the catalog's, answers 503 until republished; a whole stored body streamed here is
  hashed on the way and, if it does not match, cut short before its last chunk (the
  incident recorded, the alert raised).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import logging
import math
import zlib
from typing import Annotated, Iterable, Iterator, Literal, NoReturn
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from portal_api import crud, download_log, schemas
from portal_api.api import present
from portal_api.api.deps import CurrentPrincipal, ScopeDep, Services, ServicesDep, SessionDep, file_in_scope, release
from portal_api.api.routes.listing import PAGE_SIZE_MAX
from portal_api.core import problems, ranges
from portal_api.core.ip_ranges import client_address
from portal_api.models import RefreshRequest
from portal_api.observability import current_request_id
from portal_api.refresh import DagsterRefused, DagsterUnavailable, partition_key
from serving.alerts import raise_alert
from serving.catalog import FileRecord, RepresentationRecord
from serving.storage import StorageError

log = logging.getLogger("portal_api")
router = APIRouter()

FileIdPath = Annotated[int, Path(ge=1, le=2_147_483_647, description="Id do arquivo (uma versão de um arquivo do dia).")]
Format = Literal["csv.gz", "csv", "parquet"]
PARQUET = "parquet"


@router.get(
    "/files/{file_id}",
    response_model=schemas.FileOut,
    tags=["arquivos"],
    summary="Um arquivo",
    description="Data, nome, registros, tamanho, SHA-256 e os downloads mais recentes de um arquivo (qualquer versão, atual ou anterior).",
    responses=problems.responses(401, 404, 422, 503),
)
def file_detail(file_id: FileIdPath, services: ServicesDep, session: SessionDep, scope: ScopeDep) -> schemas.FileOut:
    record = file_in_scope(services, file_id, scope)
    logs = crud.downloads_of_days(session, record.operation, [record.day], per_day=services.settings.log_entries_per_file)
    release(session)  # in this thread, before the answer is built and sent
    return present.file(record, *logs[record.day])


@router.get(
    "/files/{file_id}/downloads",
    response_model=schemas.DownloadPage,
    tags=["arquivos"],
    summary="Registro de downloads do arquivo",
    description="Quem baixou o arquivo (todas as versões do dia) e quando, do mais recente ao mais antigo, paginado.",
    responses=problems.responses(401, 404, 422, 503),
)
def file_downloads(
    file_id: FileIdPath,
    services: ServicesDep,
    session: SessionDep,
    scope: ScopeDep,
    page: Annotated[int, Query(ge=1, le=100_000, description="Página (a partir de 1).")] = 1,
    page_size: Annotated[int | None, Query(ge=1, le=PAGE_SIZE_MAX, description="Itens por página (máximo 100).")] = None,
) -> schemas.DownloadPage:
    record = file_in_scope(services, file_id, scope)
    size = page_size or services.settings.page_size_default
    rows, total = crud.downloads_page(session, record.operation, record.day, offset=(page - 1) * size, limit=size)
    release(session)
    items = [present.download(entry, user) for entry, user in rows]
    return schemas.DownloadPage(file_id=record.id, items=items, **present.paging(total, page, size, len(items)))


# -- download -----------------------------------------------------------------------------

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_DOWNLOAD_HEADERS = {
    "Content-Disposition": {
        "description": "`attachment` com o nome do arquivo (RFC 6266, com `filename*`).",
        "schema": {"type": "string"},
    },
    "ETag": {"description": "SHA-256 do conteúdo entregue, entre aspas.", "schema": {"type": "string"}},
    "Accept-Ranges": {"description": "`bytes` no arquivo comprimido; `none` no CSV.", "schema": {"type": "string"}},
}
_DOWNLOAD_RESPONSES = {
    200: {
        "description": "O arquivo inteiro.",
        "content": {"application/gzip": _BINARY, "text/csv": _BINARY, "application/vnd.apache.parquet": _BINARY},
        "headers": _DOWNLOAD_HEADERS,
    },
    206: {
        "description": "Um intervalo do arquivo comprimido (retomada), com Content-Range.",
        "content": {"application/gzip": _BINARY, "text/csv": _BINARY},
        "headers": {
            **_DOWNLOAD_HEADERS,
            "Content-Range": {"description": "`bytes início-fim/tamanho`.", "schema": {"type": "string"}},
        },
    },
    307: {
        "description": "Armazenamento S3: redirecionamento para uma URL pré-assinada de curta duração, feita para esta requisição.",
        "headers": {"Location": {"description": "A URL pré-assinada.", "schema": {"type": "string"}}},
    },
    **problems.responses(
        401,
        403,
        404,
        416,
        422,
        503,
        descriptions={
            503: "O registro de downloads não pôde ser gravado (o download é recusado), o armazenamento está indisponível, "
            "ou o arquivo foi encontrado danificado e aguarda republicação (`arquivo-danificado`).",
        },
    ),
}
_DOWNLOAD_DESCRIPTION = (
    "Baixa o arquivo. Exige o aceite da versão vigente dos termos de uso da operação (403 sem ele). "
    "Por padrão entrega o arquivo `.csv.gz` como está armazenado (`application/gzip`, sem `Content-Encoding`): os "
    "bytes recebidos são os bytes publicados, o SHA-256 confere com o do catálogo, e `Range`/`If-Range` (com o "
    "ETag) retomam um download interrompido byte a byte (206; 416 fora do arquivo). `format=csv` entrega o CSV: "
    "com `Content-Encoding: gzip` se `Accept-Encoding` permitir, senão descomprimido; sem intervalos. "
    "No armazenamento S3, responde 307 para uma URL pré-assinada de curta duração. Todo download é gravado no "
    "registro antes do primeiro byte (continuações também, com o intervalo); se o registro não puder ser gravado, "
    "o download é recusado (503). `format=parquet` entrega o Parquet tipado publicado junto com o CSV (mesmas "
    "linhas e ordem; códigos como texto, datas como datas), com retomada como o padrão."
)


def _is_gzip(record: FileRecord) -> bool:
    return (
        (record.content_encoding or "").lower() == "gzip"
        or record.content_type in ("application/gzip", "application/x-gzip")
        or record.file_name.endswith(".gz")
    )


class _Plan:
    """What a download request will deliver, decided before anything is logged."""

    def __init__(self, record: FileRecord, fmt: Format, accept_encoding: str | None, parquet: RepresentationRecord | None = None):
        self.record = record
        self.object_key = record.object_key
        self.sha256_object = record.sha256_stored  # what the stored object must hash to
        self.delivered_sha256: str | None = None
        if parquet is not None:
            self._parquet(record, parquet)
            return
        stored_gzip = _is_gzip(record)
        self.stored = fmt == "csv.gz" or not stored_gzip
        self.representation = "csv.gz" if stored_gzip and self.stored else "csv"
        self.size = record.bytes_stored
        self.headers: dict[str, str] = {
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "Last-Modified": email.utils.format_datetime(crud.aware(record.published_at), usegmt=True),
        }
        if self.stored:
            self.media_type = "application/gzip" if stored_gzip else "text/csv; charset=utf-8"
            self.filename = record.file_name
            self.etag = f'"{record.sha256_stored}"'
            self.encode_gzip = False
            self.decode = False
            self.headers.update({"Accept-Ranges": "bytes", "Repr-Digest": _repr_digest(record.sha256_stored)})
        else:
            self.media_type = "text/csv; charset=utf-8"
            self.filename = record.file_name.removesuffix(".gz")
            self.encode_gzip = ranges.accepts_gzip(accept_encoding)
            self.decode = not self.encode_gzip
            self.etag = f'"{record.sha256_csv}-gzip"' if self.encode_gzip else f'"{record.sha256_csv}"'
            self.headers.update({"Accept-Ranges": "none", "Vary": "Accept-Encoding"})
            if self.encode_gzip:
                self.headers["Content-Encoding"] = "gzip"
        self.headers["Content-Disposition"] = ranges.content_disposition(self.filename)
        self.headers["ETag"] = self.etag

    def _parquet(self, record: FileRecord, rep: RepresentationRecord) -> None:
        self.stored = True
        self.representation = PARQUET
        self.object_key = rep.object_key
        self.sha256_object = rep.sha256
        self.delivered_sha256 = rep.sha256
        self.size = rep.bytes
        self.media_type = rep.content_type
        self.filename = rep.file_name
        self.etag = f'"{rep.sha256}"'
        self.encode_gzip = self.decode = False
        self.headers = {
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "Last-Modified": email.utils.format_datetime(crud.aware(record.published_at), usegmt=True),
            "Accept-Ranges": "bytes",
            "Repr-Digest": _repr_digest(rep.sha256),
            "Content-Disposition": ranges.content_disposition(rep.file_name),
            "ETag": self.etag,
        }


def _repr_digest(sha256_hex: str) -> str:
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


def _prepare(services: Services, session, principal, scope, file_id: int, fmt: Format, accept_encoding: str | None) -> _Plan:
    record = file_in_scope(services, file_id, scope)
    terms = crud.current_terms(session, record.operation)
    if terms is None or crud.acceptance(session, principal.user_id, terms) is None:
        version = terms.version if terms is not None else None
        which = f" (versão {version})" if version else ""
        raise problems.ProblemError(
            403,
            f"Aceite os termos de uso vigentes da operação {record.operation}{which} antes de baixar: "
            f"POST /operations/{record.operation}/terms/acceptances.",
            slug="termos-nao-aceitos",
            title="Termos de uso não aceitos",
            extra={"operation": record.operation, "terms_version": version},
        )
    if services.database.catalog.incident(record.id, session) is not None:
        raise _damaged()
    parquet = None
    if fmt == PARQUET:
        parquet = services.database.catalog.representation(record.id, PARQUET)
        if parquet is None:
            raise problems.ProblemError(
                404,
                f"O arquivo {record.file_name} não tem versão Parquet (publicado antes dela); baixe o CSV.",
                slug="sem-parquet",
            )
    plan = _Plan(record, fmt, accept_encoding, parquet)
    try:
        info = services.storage.head(plan.object_key)
    except StorageError as exc:
        log.error("armazenamento indisponível para %s: %s", plan.object_key, exc)
        raise problems.ProblemError(503, "O armazenamento de arquivos está indisponível; tente novamente.") from None
    if info is None:
        log.error("objeto %s ausente do armazenamento", plan.object_key)
        raise problems.ProblemError(503, "O arquivo está indisponível no armazenamento; tente novamente mais tarde.")
    if info.size != plan.size:
        session.close()
        _damaged_object(services, plan, f"tamanho {info.size} != {plan.size} do catálogo", None)
    return plan


def _damaged() -> problems.ProblemError:
    return problems.ProblemError(
        503,
        "Este arquivo foi encontrado danificado no armazenamento e está indisponível até ser republicado. "
        "A equipe foi avisada; tente novamente mais tarde.",
        slug="arquivo-danificado",
        title="Arquivo danificado",
        headers={"Retry-After": "3600"},
    )


def _incident(services: Services, record: FileRecord, reason: str, found_sha256: str | None) -> None:
    """Record the damaged version (once) and raise the alert; the version answers 503 from now on."""
    log.error("objeto %s danificado: %s", record.object_key, reason)
    try:
        new = services.database.catalog.record_incident(record, detected_by="portal", reason=reason, found_sha256=found_sha256)
    except Exception:  # noqa: BLE001 - the alert still goes out
        log.exception("incidente de %s não registrado", record.object_key)
        new = True
    if new:
        raise_alert(
            {
                "tipo": "arquivo danificado",
                "detectado por": "portal",
                "arquivo": record.id,
                "operação": record.operation,
                "dia": record.day.isoformat(),
                "versão": record.version,
                "objeto": record.object_key,
                "motivo": reason,
            },
            services.settings.home,
            log,
        )


def _damaged_object(services: Services, plan: _Plan, reason: str, found_sha256: str | None) -> NoReturn:
    """A stored object that is not what the catalog says: never served. The CSV object makes
    the version unavailable (an incident, 503 until republished); a damaged Parquet is
    refused and alerted, and its CSV stays available."""
    if plan.representation != PARQUET:
        _incident(services, plan.record, reason, found_sha256)
        raise _damaged()
    record = plan.record
    log.error("objeto %s danificado: %s", plan.object_key, reason)
    raise_alert(
        {
            "tipo": "arquivo danificado",
            "detectado por": "portal",
            "arquivo": record.id,
            "operação": record.operation,
            "dia": record.day.isoformat(),
            "versão": record.version,
            "objeto": plan.object_key,
            "motivo": reason,
        },
        services.settings.home,
        log,
    )
    raise problems.ProblemError(
        503, "A versão Parquet deste arquivo está indisponível; baixe o CSV ou tente mais tarde.", slug="parquet-indisponivel"
    )


def _verified(services: Services, plan: _Plan, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The whole stored object, hashed on the way: the last chunk is held back until the
    digest is known, so a damaged object never reaches the client complete — the
    connection is cut short (the body falls short of Content-Length) and the damage
    recorded."""
    digest = hashlib.sha256()
    size = 0
    held = None
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        if held is not None:
            yield held
        held = chunk
    found = digest.hexdigest()
    if size != plan.size or found != plan.sha256_object:
        try:
            _damaged_object(services, plan, f"SHA-256 {found} != {plan.sha256_object} do catálogo ({size} bytes lidos)", found)
        except problems.ProblemError:
            pass
        raise RuntimeError(f"objeto {plan.object_key} danificado: transferência interrompida")
    if held is not None:
        yield held


def _log(services: Services, plan: _Plan, principal, scope, *, delivery: str, byte_range, request: Request) -> None:
    record = plan.record
    try:
        download_log.append(
            services.database.engine,
            published_file_id=record.id,
            operation=record.operation,
            day=record.day,
            file_version=record.version,
            file_sha256=record.sha256_stored,
            user_id=principal.user_id,
            credential_id=scope.credential_for(record.operation),
            representation=plan.representation,
            delivery=delivery,
            range_start=byte_range[0] if byte_range else None,
            range_end=byte_range[1] if byte_range else None,
            client_address=client_address(request, services.settings).text,
            delivered_sha256=plan.delivered_sha256,
            http_request_id=current_request_id(),
        )
    except Exception:  # noqa: BLE001 - whatever failed, no byte leaves unlogged
        log.exception("registro de downloads indisponível; download de %s recusado", record.object_key)
        raise problems.ProblemError(
            503,
            "Não foi possível registrar o download, por isso ele não foi iniciado. Tente novamente em instantes.",
            slug="registro-de-downloads-indisponivel",
        ) from None


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a gzip stream (every member of it) chunk by chunk."""
    decompressor = zlib.decompressobj(wbits=31)
    for chunk in chunks:
        while chunk:
            out = decompressor.decompress(chunk)
            if out:
                yield out
            if decompressor.eof:
                chunk = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=31)
            else:
                chunk = b""
    tail = decompressor.flush()
    if tail:
        yield tail


FormatQuery = Annotated[
    Format,
    Query(
        description=(
            "`csv.gz` (padrão): o arquivo publicado, com retomada. `csv`: o CSV, sem retomada. "
            "`parquet`: o Parquet tipado (códigos como texto, datas como datas), com retomada."
        )
    ),
]


@router.get(
    "/files/{file_id}/content",
    tags=["downloads"],
    summary="Baixar o arquivo",
    description=_DOWNLOAD_DESCRIPTION,
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
)
def download(
    file_id: FileIdPath,
    request: Request,
    services: ServicesDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    scope: ScopeDep,
    format: FormatQuery = "csv.gz",
    range_header: Annotated[
        str | None, Header(alias="Range", max_length=200, description="`bytes=início-` para retomar.")
    ] = None,
    if_range: Annotated[
        str | None, Header(alias="If-Range", max_length=200, description="O ETag do arquivo que se está retomando.")
    ] = None,
    accept_encoding: Annotated[str | None, Header(alias="Accept-Encoding", max_length=200)] = None,
):
    plan = _prepare(services, session, principal, scope, file_id, format, accept_encoding)
    session.close()  # nothing more to read: free the connection before a long stream
    if plan.stored:
        try:
            byte_range = ranges.parse_range(range_header, plan.size) if ranges.if_range_matches(if_range, plan.etag) else None
        except ranges.RangeNotSatisfiable:
            raise problems.ProblemError(
                416,
                f"O intervalo {range_header!r} está fora do arquivo ({plan.size} bytes).",
                headers={"Content-Range": f"bytes */{plan.size}"},
            ) from None
        try:
            url = services.storage.presigned_get_url(
                plan.object_key,
                expires_seconds=services.settings.presign_seconds,
                filename=plan.filename,
                content_type=plan.media_type,
            )
        except StorageError as exc:
            log.error("URL pré-assinada indisponível para %s: %s", plan.object_key, exc)
            raise problems.ProblemError(503, "O armazenamento de arquivos está indisponível; tente novamente.") from None
        if url is not None:
            _log(services, plan, principal, scope, delivery="redirect", byte_range=byte_range, request=request)
            return Response(status_code=307, headers={"Location": url, "Cache-Control": "no-store"})
        accel = services.settings.accel_redirect_prefix
        if accel:
            # nginx sends the bytes (Range included) from its internal location over the store.
            _log(services, plan, principal, scope, delivery="x-accel", byte_range=byte_range, request=request)
            headers = {**plan.headers, "X-Accel-Redirect": accel + quote(plan.object_key), "X-Accel-Buffering": "no"}
            return Response(status_code=200, headers=headers, media_type=plan.media_type)
        _log(services, plan, principal, scope, delivery="stream", byte_range=byte_range, request=request)
        headers = dict(plan.headers)
        start, end = byte_range if byte_range else (0, plan.size - 1)
        headers["Content-Length"] = str(end - start + 1)
        status = 200
        if byte_range:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{plan.size}"
        body = services.storage.iter_range(plan.object_key, start, end)
        if not byte_range:
            body = _verified(services, plan, body)
        return StreamingResponse(body, status_code=status, headers=headers, media_type=plan.media_type)

    _log(services, plan, principal, scope, delivery="stream", byte_range=None, request=request)
    body = _verified(services, plan, services.storage.iter_range(plan.object_key))
    headers = dict(plan.headers)
    if plan.decode:
        body = _gunzip(body)
    else:
        headers["Content-Length"] = str(plan.size)
    return StreamingResponse(body, status_code=200, headers=headers, media_type=plan.media_type)


@router.head(
    "/files/{file_id}/content",
    tags=["downloads"],
    summary="Cabeçalhos do download",
    description="Os cabeçalhos que o download teria (tamanho, ETag, nome), sem corpo e sem registro. Exige o aceite dos termos.",
    response_class=Response,
    responses={
        200: {"description": "Os cabeçalhos do arquivo inteiro.", "headers": _DOWNLOAD_HEADERS},
        **problems.responses(401, 403, 404, 422, 503),
    },
)
def download_head(
    file_id: FileIdPath,
    services: ServicesDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    scope: ScopeDep,
    format: FormatQuery = "csv.gz",
    accept_encoding: Annotated[str | None, Header(alias="Accept-Encoding", max_length=200)] = None,
):
    plan = _prepare(services, session, principal, scope, file_id, format, accept_encoding)
    headers = dict(plan.headers)
    if not plan.decode:
        headers["Content-Length"] = str(plan.size)
    return Response(status_code=200, headers=headers, media_type=plan.media_type)


# -- refresh ----------------------------------------------------------------------------------


@router.post(
    "/files/{file_id}/refresh",
    response_model=schemas.RefreshOut,
    status_code=202,
    tags=["atualização"],
    summary="Atualizar o arquivo",
    description=(
        "Pede ao pipeline que reprocesse o dia do arquivo para a UF inteira (job `d1_uf_job` do Dagster, partição "
        "`AAAA-MM-DD|UF`). Responde 202 com o id da execução; a nova versão aparece na listagem quando for "
        "publicada. Limitado por usuário (`VACINA_D1_REFRESH_PER_HOUR` pedidos por hora; 429 com Retry-After)."
    ),
    responses=problems.responses(401, 404, 422, 429, 502, 503),
)
def refresh(
    file_id: FileIdPath, services: ServicesDep, session: SessionDep, principal: CurrentPrincipal, scope: ScopeDep
) -> schemas.RefreshOut:
    record = file_in_scope(services, file_id, scope)
    limit = services.settings.refresh_per_hour
    now = crud.utcnow()
    recent = crud.recent_refreshes(session, principal.user_id, now - dt.timedelta(hours=1))
    if len(recent) >= limit:
        retry = 3600 if limit == 0 else math.ceil((recent[len(recent) - limit] + dt.timedelta(hours=1) - now).total_seconds())
        raise problems.ProblemError(
            429,
            f"Limite de {limit} pedidos de atualização por hora atingido; tente de novo em {max(1, retry)} segundos.",
            headers={"Retry-After": str(max(1, retry))},
        )
    key = partition_key(record.day, record.uf)
    request_row = RefreshRequest(
        user_id=principal.user_id,
        published_file_id=record.id,
        operation=record.operation,
        day=record.day,
        uf=record.uf,
        partition_key=key,
        status="solicitado",
        requested_at=now,
    )
    session.add(request_row)
    session.commit()
    try:
        run_id = services.dagster.launch_day(record.day, record.uf, requested_by=principal.user_id)
    except (DagsterUnavailable, DagsterRefused) as exc:
        request_row.status = "falhou"
        session.commit()
        log.error("Dagster não lançou %s: %s", key, exc)
        if isinstance(exc, DagsterUnavailable):
            raise problems.ProblemError(
                503, "O orquestrador do pipeline (Dagster) está indisponível; tente novamente mais tarde."
            ) from None
        raise problems.ProblemError(502, "O orquestrador do pipeline (Dagster) recusou o pedido de atualização.") from None
    request_row.status = "lancado"
    request_row.run_id = run_id
    session.commit()
    return schemas.RefreshOut(
        run_id=run_id, file_id=record.id, operation=record.operation, day=record.day, uf=record.uf, partition_key=key
    )
