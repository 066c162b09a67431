"""Every error as an RFC 9457 problem document (``application/problem+json``), in
Portuguese, without stack traces: our own errors, Starlette's HTTP errors (404 of an
unknown path, 405), request validation (422), the database being unreachable (503)
and anything unexpected (500, logged on the server with its traceback)."""

from __future__ import annotations

import logging
import re
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("portal_api")

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:vacina-d1:problema:"


class Problem(BaseModel):
    """Um erro no formato RFC 9457 (problem+json)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    type: str = Field(description="Identificador do tipo de problema (URN).", examples=[TYPE_PREFIX + "nao-encontrado"])
    title: str = Field(description="Resumo do tipo de problema, em português.")
    status: int = Field(ge=400, le=599, description="O código HTTP da resposta.")
    detail: str = Field(description="O que aconteceu nesta requisição, em português.")
    instance: str | None = Field(None, description="O caminho da requisição que falhou.")


class FieldError(BaseModel):
    location: str = Field(description="Onde está o valor: path, query, header, cookie ou body.")
    field: str = Field(description="O nome do campo (caminho com pontos, em objetos).")
    message: str = Field(description="Por que o valor foi recusado, em português.")


class ValidationProblem(Problem):
    """Dados da requisição recusados, campo a campo."""

    errors: list[FieldError] = Field(description="Cada campo recusado e o motivo.")


# status → (slug, title, default detail)
_DEFAULTS: dict[int, tuple[str, str, str]] = {
    400: ("requisicao-invalida", "Requisição inválida", "A requisição não pôde ser entendida."),
    401: ("nao-autenticado", "Não autenticado", "Envie um token de acesso válido no cabeçalho Authorization: Bearer."),
    403: ("proibido", "Acesso negado", "Esta ação não é permitida."),
    404: ("nao-encontrado", "Não encontrado", "O recurso pedido não existe ou não está no escopo das suas credenciais."),
    405: ("metodo-nao-permitido", "Método não permitido", "Este método HTTP não é aceito neste caminho."),
    406: ("nao-aceitavel", "Formato não disponível", "Não há representação no formato pedido."),
    409: ("conflito", "Conflito", "A requisição conflita com o estado atual do recurso."),
    413: ("corpo-muito-grande", "Corpo da requisição muito grande", "O corpo da requisição excede o limite aceito."),
    415: ("tipo-nao-suportado", "Tipo de conteúdo não suportado", "O tipo do corpo da requisição não é aceito."),
    416: ("intervalo-invalido", "Intervalo não satisfatível", "O intervalo de bytes pedido está fora do arquivo."),
    422: ("dados-invalidos", "Dados inválidos", "Um ou mais campos da requisição foram recusados."),
    429: ("limite-excedido", "Limite de requisições excedido", "Muitas requisições; tente novamente mais tarde."),
    500: ("erro-interno", "Erro interno", "Ocorreu um erro inesperado; ele foi registrado. Tente novamente mais tarde."),
    502: ("pipeline-recusou", "Resposta inválida do pipeline", "O orquestrador do pipeline recusou o pedido."),
    503: ("indisponivel", "Serviço indisponível", "Um serviço de que a API depende está indisponível; tente novamente."),
}


def _defaults(status: int) -> tuple[str, str, str]:
    if status in _DEFAULTS:
        return _DEFAULTS[status]
    return ("erro-cliente" if status < 500 else "erro-servidor", "Erro", "A requisição não pôde ser atendida.")


class ProblemError(Exception):
    """Raised anywhere in the API to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        default_slug, default_title, default_detail = _defaults(status)
        self.status = status
        self.slug = slug or default_slug
        self.title = title or default_title
        self.detail = detail or default_detail
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)


def not_found(detail: str | None = None) -> ProblemError:
    return ProblemError(404, detail)


def unauthorized(detail: str | None = None, *, error: str = "invalid_token") -> ProblemError:
    return ProblemError(401, detail, headers={"WWW-Authenticate": f'Bearer error="{error}"'})


def problem_response(request: Request | None, problem: ProblemError) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update(problem.extra)
    headers = {"Cache-Control": "no-store", **problem.headers}
    return JSONResponse(body, status_code=problem.status, headers=headers, media_type=MEDIA_TYPE)


_MESSAGES = {
    "missing": "campo obrigatório",
    "int_parsing": "deve ser um número inteiro",
    "int_type": "deve ser um número inteiro",
    "int_from_float": "deve ser um número inteiro",
    "bool_parsing": "deve ser verdadeiro ou falso",
    "bool_type": "deve ser verdadeiro ou falso",
    "string_type": "deve ser um texto",
    "string_pattern_mismatch": "formato inválido",
    "json_invalid": "JSON inválido",
    "json_type": "JSON inválido",
    "dict_type": "deve ser um objeto JSON",
    "model_attributes_type": "deve ser um objeto JSON",
    "model_type": "deve ser um objeto JSON",
    "extra_forbidden": "campo não permitido",
    "date_parsing": "data inválida (use AAAA-MM-DD)",
    "date_from_datetime_parsing": "data inválida (use AAAA-MM-DD)",
    "uuid_parsing": "identificador inválido",
}


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "greater_than_equal":
        return f"deve ser maior ou igual a {ctx.get('ge')}"
    if kind == "greater_than":
        return f"deve ser maior que {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"deve ser menor ou igual a {ctx.get('le')}"
    if kind == "less_than":
        return f"deve ser menor que {ctx.get('lt')}"
    if kind == "string_too_long":
        return f"deve ter no máximo {ctx.get('max_length')} caracteres"
    if kind == "string_too_short":
        return f"deve ter pelo menos {ctx.get('min_length')} caracteres"
    if kind == "too_long":
        return f"deve ter no máximo {ctx.get('max_length')} itens"
    if kind == "literal_error":
        return f"deve ser um de: {ctx.get('expected')}"
    if kind == "enum":
        return f"deve ser um de: {ctx.get('expected')}"
    if kind == "value_error":
        # Our own validators raise ValueError with a Portuguese message.
        return str(ctx.get("error") or error.get("msg", "valor inválido")).removeprefix("Value error, ")
    return "valor inválido"


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    result = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc else "body"
        result.append({"location": location, "field": ".".join(loc[1:]) or location, "message": _message(error)})
    return result


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a problem document."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError):
        return problem_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        # Starlette's and FastAPI's own messages are English ("Not Found"); the API raises
        # ProblemError itself, so these get the Portuguese default for their status.
        if exc.status_code in (404, 405) and await anonymous_on_caller_path(request):
            return problem_response(request, unauthenticated())
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        return problem_response(request, ProblemError(exc.status_code, headers=headers))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        if await anonymous_on_caller_path(request):  # a malformed body is not looked at before the caller
            return problem_response(request, unauthenticated())
        errors = validation_errors(list(exc.errors()))
        fields = ", ".join(sorted({e["field"] for e in errors}))
        detail = f"Campos recusados: {fields}." if fields else None
        return problem_response(request, ProblemError(422, detail, extra={"errors": errors}))

    @app.exception_handler(sa.exc.OperationalError)
    async def _database(request: Request, exc: sa.exc.OperationalError):
        log.error("banco de dados indisponível: %s", str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__)
        return problem_response(request, ProblemError(503, "O banco de dados está indisponível; tente novamente em instantes."))

    @app.exception_handler(sa.exc.TimeoutError)
    async def _pool_exhausted(request: Request, exc: sa.exc.TimeoutError):
        # Every connection of the pool busy past VACINA_D1_DB_POOL_TIMEOUT_SECONDS: busy, not broken.
        log.error("sem conexão livre no pool do banco: %s %s", request.method, request.url.path)
        return problem_response(
            request,
            ProblemError(503, "O portal está sobrecarregado; tente novamente em instantes.", headers={"Retry-After": "5"}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("erro inesperado em %s %s", request.method, request.url.path)
        return problem_response(request, ProblemError(500))


def unauthenticated() -> ProblemError:
    return ProblemError(
        401,
        "Envie um token de acesso válido no cabeçalho Authorization: Bearer (obtido em POST /token).",
        headers={"WWW-Authenticate": 'Bearer realm="vacina-d1"'},
    )


def _needs_caller(dependant) -> bool:
    from portal_api.api.deps import get_principal

    return any(d.call is get_principal or _needs_caller(d) for d in dependant.dependencies)


def _caller_patterns(app) -> list[re.Pattern]:
    """Every operation needing a caller as a loose pattern (any value in each parameter
    segment), computed once. A path one of them matches but no route accepts (a CNES
    that is not 7 digits, an id that is not a number) answers 401 to an anonymous caller,
    as the operation itself would: nothing is looked at before the caller."""
    cached = getattr(app.state, "caller_patterns", None)
    if cached is not None:
        return cached
    from fastapi.routing import APIRoute

    def routes(items):
        for route in items:
            included = getattr(route, "original_router", None)  # FastAPI's lazily included router (no prefixes here)
            yield from routes(included.routes) if included is not None else (route,)

    patterns = []
    for route in routes(app.routes):
        if isinstance(route, APIRoute) and _needs_caller(route.dependant):
            loose = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(route.path_format))
            patterns.append(re.compile(f"^{loose}$"))
    app.state.caller_patterns = patterns
    return patterns


async def anonymous_on_caller_path(request: Request) -> bool:
    route = request.scope.get("route")
    if route is not None and hasattr(route, "dependant"):
        if not _needs_caller(route.dependant):
            return False
    elif not any(p.match(request.url.path) for p in _caller_patterns(request.app)):
        return False
    from starlette.concurrency import run_in_threadpool

    from portal_api.api.deps import caller_of

    return await run_in_threadpool(caller_of, request) is None


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts on this path (Starlette's 405 names only the first
    route's, and a path served by several routes — GET and POST — has more)."""
    from starlette.routing import Match

    scope = {"type": "http", "path": request.url.path, "method": "", "root_path": ""}
    methods: set[str] = set()

    def visit(routes) -> None:
        for route in routes:
            nested = getattr(route, "effective_candidates", None)  # FastAPI's included routers
            if callable(nested):
                visit(nested())
                continue
            match, _ = route.matches(scope)
            if match != Match.NONE and getattr(route, "methods", None):
                methods.update(route.methods)

    visit(request.app.routes)
    return ", ".join(sorted(methods))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_RESPONSE_DESCRIPTIONS = {
    400: "Corpo da requisição ilegível (por exemplo, bytes que não são UTF-8).",
    401: "Token ausente, expirado, revogado ou inválido.",
    403: "Termos de uso da operação ainda não aceitos (ou aceitos numa versão anterior).",
    404: "Não existe, ou está fora do escopo das credenciais de quem chama (nunca 403, para que ids não possam ser sondados).",
    409: "Conflito com o estado atual.",
    413: "Corpo da requisição acima do limite.",
    416: "Intervalo de bytes fora do arquivo.",
    422: "Parâmetros ou corpo recusados, campo a campo.",
    429: "Limite de pedidos por hora excedido; veja Retry-After.",
    500: "Erro inesperado (registrado no servidor, sem detalhes internos na resposta).",
    502: "O orquestrador do pipeline (Dagster) recusou o pedido.",
    503: "Banco de dados, armazenamento, registro de downloads ou orquestrador indisponível.",
}

_RESPONSE_HEADERS = {
    401: {"WWW-Authenticate": {"description": "Esquema de autenticação esperado (Bearer).", "schema": {"type": "string"}}},
    416: {"Content-Range": {"description": "bytes */<tamanho do arquivo>", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Segundos até um novo pedido ser aceito.", "schema": {"type": "integer"}}},
}


def responses(*codes: int, descriptions: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for problem documents (always with 500; 422 with its field list)."""
    result: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, 500}):
        entry: dict[str, Any] = {
            "description": (descriptions or {}).get(code, _RESPONSE_DESCRIPTIONS.get(code, _defaults(code)[1])),
            "content": {MEDIA_TYPE: {"schema": _ref("ValidationProblem" if code == 422 else "Problem")}},
        }
        if code in _RESPONSE_HEADERS:
            entry["headers"] = _RESPONSE_HEADERS[code]
        result[code] = entry
    return result


def openapi_schemas() -> dict[str, Any]:
    """Component schemas of the problem documents (the routes only reference them)."""
    schemas: dict[str, Any] = {}
    for model in (Problem, FieldError, ValidationProblem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


class _BodyTooLarge(StarletteHTTPException):
    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodyLimitMiddleware:
    """Bounds every request body (declared or streamed) and answers 413 as a problem
    document (Starlette's own limiter answers in plain text). ``larger`` lets a few
    paths (regular expressions, e.g. file uploads) take a larger body."""

    def __init__(self, app, max_body_size: int, larger: tuple[tuple[str, int], ...] = ()):
        import re

        self.app = app
        self.max_body_size = max_body_size
        self.larger = tuple((re.compile(pattern), size) for pattern, size in larger)

    def _limit(self, path: str) -> int:
        for pattern, size in self.larger:
            if pattern.fullmatch(path):
                return size
        return self.max_body_size

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        try:
            too_large = declared is not None and int(declared) > limit
        except ValueError:
            too_large = False
        if too_large:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()  # becomes the 413 problem through the HTTP handler
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, scope, receive, send, limit: int):
        from starlette.requests import Request

        response = problem_response(Request(scope), ProblemError(413, f"O corpo da requisição passa de {limit} bytes."))
        await response(scope, receive, send)
