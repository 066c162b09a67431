"""The app factory: ``create_app(settings=None)``.

Applies the migrations (serving's, then the portal's) when the app is made, opens the
catalog's database and the storage the pipeline publishes to, and wires every error
to a problem document.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from portal_api import docs_offline, observability
from portal_api.api.deps import AccessTokenProvider, Services
from portal_api.api.main import api_router
from portal_api.core import problems
from portal_api.core.config import PortalSettings
from portal_api.core.db import Database, upgrade
from portal_api.refresh import DagsterClient
from portal_api.solicitacoes.service import WorkflowServices
from serving.stores import open_storage

# The routes that take files (certificate, CNES list, evidence): larger bodies — the API's
# and the request wizard's pages (/portal/solicitacoes/{id}/passo/certificado, ...).
UPLOAD_PATHS = (
    r"/solicitacoes/[0-9]+/(certificado|estabelecimentos/importacao|evidencias)"
    r"|/portal/solicitacoes/[0-9]+/(passo/certificado|passo/vinculados|evidencias/envio)"
)

DESCRIPTION = """\
Os registros de vacinação D-1 da RNDS em arquivos CSV por UF e município, para quem
tem credencial: listagem por operação, ano e mês; termos de uso; download registrado;
pedido de atualização de um dia. E a solicitação de credencial do Portal de Serviços:
solicitação, análise, homologação e produção.

Autenticação: troque o token pessoal por um token de acesso em `POST /token` e envie-o
em `Authorization: Bearer`. Tudo o que está fora do escopo das suas credenciais responde
404, como o que não existe. Erros seguem a RFC 9457 (`application/problem+json`).
"""

TAGS = [
    {"name": "autenticação", "description": "Token de acesso a partir do token pessoal."},
    {"name": "credenciais", "description": "O usuário, suas credenciais e operações."},
    {"name": "arquivos", "description": "Listagem por operação, ano e mês, com o registro de downloads de cada arquivo."},
    {"name": "termos de uso", "description": "Termos versionados por operação; aceite antes do primeiro download."},
    {"name": "downloads", "description": "O arquivo, com retomada (Range) e registro antes do primeiro byte."},
    {"name": "atualização", "description": "Reprocessamento de um dia pelo pipeline (Dagster)."},
    {"name": "catálogo", "description": "As APIs que se pode solicitar e a busca de estabelecimentos no CNES."},
    {"name": "solicitações", "description": "Solicitação de credencial: rascunho, certificado, envio, evidências, produção."},
    {"name": "análise", "description": "Decisões do analista do DATASUS (exige o papel de analista)."},
    {"name": "gerenciar credenciais", "description": "Credenciais por ambiente e troca de titular."},
    {"name": "saúde", "description": "Monitoração."},
]


def _operation_id(route: APIRoute) -> str:
    return route.name  # the handler's name: unique, readable in generated clients


def _threads_within_the_pool(connections: int):
    """The sync routes run in anyio's thread pool (40 threads by default). A request holds
    at most one database connection at a time, so with no more threads than the pool has
    connections no request ever waits on the pool — under overload they queue for a
    thread (no timeout) instead of failing with 503 after the pool timeout."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        limiter = anyio.to_thread.current_default_thread_limiter()
        previous = limiter.total_tokens
        limiter.total_tokens = max(2, connections)
        try:
            yield
        finally:
            limiter.total_tokens = previous

    return lifespan


def create_app(settings: PortalSettings | None = None, *, migrate: bool = True, dev_login: bool = False) -> FastAPI:
    settings = settings or PortalSettings()
    url = settings.resolved_catalog_url
    if migrate:
        upgrade(url)
    database = Database(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
    )
    token_key = settings.resolved_token_key()
    services = Services(
        settings=settings,
        database=database,
        storage=open_storage(settings.resolved_storage_url),
        token_key=token_key,
        dagster=DagsterClient(
            graphql_url=settings.dagster_graphql_url,
            location=settings.dagster_location,
            repository=settings.dagster_repository,
            job=settings.dagster_job,
            timeout_seconds=settings.dagster_timeout_seconds,
        ),
        identity_providers=[AccessTokenProvider(token_key)],
    )
    app = FastAPI(
        title="vacina-d1 — Portal de Serviços: Download CSV",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        generate_unique_id_function=_operation_id,
        redirect_slashes=False,
        docs_url=None,  # served from local files by docs_offline (no CDN)
        redoc_url=None,
        lifespan=_threads_within_the_pool(settings.db_pool_size + settings.db_max_overflow),
    )
    app.state.services = services
    app.state.solicitacoes = WorkflowServices(settings)
    problems.install(app)
    app.add_middleware(
        problems.BodyLimitMiddleware,
        max_body_size=settings.max_body_bytes,
        larger=((UPLOAD_PATHS, settings.upload_max_bytes),),
    )
    app.include_router(api_router)
    # The pages in the browser (issue 9); dev_login also serves the development OpenID issuer.
    from portal_api import web

    web.install(app, settings, dev_login=dev_login)
    docs_offline.install(app)
    observability.install(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(problems.openapi_schemas())
            # FastAPI's own 422 models are replaced by ValidationProblem everywhere.
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            # FastAPI describes every success as "Successful Response": say it in Portuguese.
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for response in operation.get("responses", {}).values():
                        if response.get("description") == "Successful Response":
                            response["description"] = f"Sucesso: {operation.get('summary', 'a resposta')}."
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
    return app


def create_worker_app() -> FastAPI:
    """The app of one worker of ``vacina-d1 serve --workers N`` (settings from the
    environment; the parent process already applied the migrations)."""
    import os

    return create_app(migrate=False, dev_login=os.environ.get("VACINA_D1_DEV_LOGIN") == "1")
