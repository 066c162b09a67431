"""The pages: Início, Gerenciar credenciais, Download CSV (with the terms of use, the
download and "Atualizar") and the personal API tokens.

Every page reads through the same functions the API does (``crud``, the catalog,
``deps.get_scope``), so the scope, the terms and the download log are the API's own
rules: a file outside the user's scope is "não encontrado", the terms are accepted
per version before the first download, every download is logged before its first
byte. State-changing routes take ``csrf.CsrfChecked``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse

from portal_api import charts, crud
from portal_api.api import deps
from portal_api.api.routes import files as file_routes
from portal_api.api.routes import listing as listing_routes
from portal_api.core import problems
from portal_api.models import PersonalToken, RefreshRequest, User
from portal_api.solicitacoes import catalog as api_catalog
from portal_api.web import csrf, dagster_runs
from portal_api.web.auth import CurrentWebUser, OptionalWebUser
from portal_api.web.render import MONTHS, render
from portal_api.web.sessions import WebUser

log = logging.getLogger("portal_api.web")

PAGE_SIZES = (10, 20, 50)
CREDENTIAL_TABS = (
    ("homologacao", "Homologação"),
    ("em_analise_producao", "Em análise para produção"),
    ("producao", "Produção"),
)
FileId = Annotated[int, Path(ge=1, le=2_147_483_647)]


def principal_of(user: WebUser) -> deps.Principal:
    return deps.Principal(user.id, user.name, user.cpf, user.email, "oidc")


def scope_of(request: Request, user: WebUser, session) -> deps.RequestScope:
    services = request.app.state.services
    return deps.get_scope(principal_of(user), session, services, request)


def _flash(request: Request, kind: str, text: str) -> None:
    request.session.setdefault("flash", []).append([kind, text])


def _messages(request: Request) -> list[tuple[str, str]]:
    return [tuple(m) for m in request.session.pop("flash", [])]


def _back(request: Request, fallback: str) -> str:
    """Where a form goes back to: its own ``voltar`` field when it is a path of this site."""
    from portal_api.web.auth import safe_next

    return safe_next(request.query_params.get("voltar") or fallback)


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    # -- Início ---------------------------------------------------------------------------

    @r.get("/")
    def inicio(request: Request, user: OptionalWebUser):
        return render(request, "inicio.html", {"apis": api_catalog.APIS, "messages": _messages(request)}, nav="inicio")

    @r.get("/favicon.ico")
    def favicon():
        from fastapi.responses import FileResponse

        from portal_api.web.app import STATIC_DIR

        return FileResponse(STATIC_DIR / "favicon.ico", headers={"Cache-Control": "public, max-age=86400"})

    @r.get("/entrar")
    def entrar(request: Request, user: OptionalWebUser, proximo: str | None = None):
        from portal_api.web.auth import safe_next

        if user is not None:
            return RedirectResponse(safe_next(proximo), status_code=303)
        if request.app.state.web_login is None:
            return render(
                request,
                "erro.html",
                {
                    "status": 503,
                    "title": "Login indisponível",
                    "detail": "O login gov.br não está configurado neste servidor (VACINA_D1_OIDC_DISCOVERY_URL).",
                },
                status=503,
            )
        return render(request, "entrar.html", {"proximo": safe_next(proximo)})

    # -- Gerenciar credenciais ----------------------------------------------------------------

    @r.get("/portal/credenciais")
    def credenciais(request: Request, user: CurrentWebUser, aba: str = "producao"):
        from portal_api.solicitacoes import service

        tabs = dict(CREDENTIAL_TABS)
        if aba not in tabs:
            aba = "producao"
        services = request.app.state.services
        with services.database.session() as session:
            counts = service.credential_counts(session, user.id)
            views = service.credentials_page(session, user.id, aba, offset=0, limit=100)
            days = _published_days(services, {op.operation for v in views for op in v.operations})
            cards = [_credential_card(v, user, days) for v in views]
        return render(
            request,
            "credenciais.html",
            {
                "tabs": CREDENTIAL_TABS,
                "aba": aba,
                "counts": counts,
                "cards": cards,
                "messages": _messages(request),
            },
            nav="credenciais",
        )

    # -- Download CSV ---------------------------------------------------------------------------

    @r.get("/portal/download-csv")
    def download_csv(
        request: Request,
        user: CurrentWebUser,
        operacao: Annotated[str | None, Query(max_length=64)] = None,
        ano: Annotated[str | None, Query(max_length=8)] = None,
        mes: Annotated[str | None, Query(max_length=4)] = None,
        pagina: Annotated[str | None, Query(max_length=8)] = None,
        exibir: Annotated[str | None, Query(max_length=4)] = None,
    ):
        services = request.app.state.services
        with services.database.session() as session:
            scope = scope_of(request, user, session)
            operations = sorted(scope.operations)
            context = {"operations": operations, "messages": _messages(request), "operacao": None}
            if not operations:
                return render(request, "download_csv.html", context, nav="download")
            if operacao is None:
                operacao = operations[0]
            deps.operation_in_scope(operacao, scope)  # 404 page outside the scope, like the API
            years = services.database.catalog.years(operacao)
            year_error = None
            year = _int_or_none(ano)
            if ano is not None and (year is None or not 2000 <= year <= 2100):
                year_error = "Ano inválido: informe quatro dígitos, como 2026."
                year = None
            if year is None:
                year = years[0] if years else dt.date.today().year
            months_with_files = services.database.catalog.months(operacao, year)
            month = _int_or_none(mes)
            if month not in months_with_files:
                month = months_with_files[0] if months_with_files else None
            size = _int_or_none(exibir)
            size = size if size in PAGE_SIZES else services.settings.page_size_default
            page = max(1, _int_or_none(pagina) or 1)
            items, total = [], 0
            if month is not None:
                listing = services.database.catalog.files(operacao, year, month, offset=(page - 1) * size, limit=size)
                if not listing.items and page > 1:
                    page = 1
                    listing = services.database.catalog.files(operacao, year, month, offset=0, limit=size)
                total = listing.total
                logs = crud.downloads_of_days(
                    session, operacao, [f.day for f in listing.items], per_day=services.settings.log_entries_per_file
                )
                refreshes = _latest_refreshes(session, operacao, [f.day for f in listing.items])
                states = dagster_runs.states(services.dagster, [r.run_id for r in refreshes.values() if r.run_id])
                for record in listing.items:
                    entries, entries_total = logs[record.day]
                    refresh = refreshes.get(record.day)
                    items.append(
                        {
                            "file": record,
                            "downloads": entries,
                            "downloads_total": entries_total,
                            "refresh": refresh,
                            "refresh_state": dagster_runs.label(refresh, states),
                        }
                    )
            chart_svg = _chart(services, operacao, year, month) if month is not None else None
            terms = crud.current_terms(session, operacao)
            accepted = bool(terms and crud.acceptance(session, user.id, terms))
            pages = max(1, -(-total // size)) if total else 1
            first = (page - 1) * size + 1 if items else 0
            context.update(
                {
                    "operacao": operacao,
                    "territory": _territory(operacao),
                    "years": years,
                    "year": year,
                    "year_error": year_error,
                    "months_with_files": months_with_files,
                    "month": month,
                    "items": items,
                    "total": total,
                    "page": page,
                    "pages": pages,
                    "size": size,
                    "sizes": PAGE_SIZES,
                    "first": first,
                    "last": first + len(items) - 1 if items else 0,
                    "terms": terms,
                    "terms_accepted": accepted,
                    "query": lambda **changes: _query(operacao, year, month, page, size, **changes),
                    "month_names": MONTHS,
                    "chart_svg": chart_svg,
                }
            )
        return render(request, "download_csv.html", context, nav="download")

    @r.get("/portal/arquivos/{file_id}/conteudo")
    def file_content(request: Request, user: CurrentWebUser, file_id: FileId, csrf_token: str | None = None):
        """The download itself: the API's own route (scope, terms, log before the first
        byte, Range), called with the page's user. The CSRF token in the link keeps
        another site from making a logged-in browser download (and log) a file."""
        if not csrf.token_matches(request, csrf_token):
            raise problems.ProblemError(403, "O link de download expirou. Recarregue a página e clique de novo.")
        services = request.app.state.services
        session = services.database.session()
        try:
            scope = scope_of(request, user, session)
            record = deps.file_in_scope(services, file_id, scope)
            terms = crud.current_terms(session, record.operation)
            if terms is None or crud.acceptance(session, user.id, terms) is None:
                # Without JavaScript the modal never opened: the terms page, then back here.
                return RedirectResponse(f"/portal/termos/{file_id}", status_code=303)
            return file_routes.download(
                file_id=file_id,
                request=request,
                services=services,
                session=session,
                principal=principal_of(user),
                scope=scope,
                format="csv.gz",
                range_header=request.headers.get("range"),
                if_range=request.headers.get("if-range"),
                accept_encoding=request.headers.get("accept-encoding"),
            )
        finally:
            session.close()

    @r.get("/portal/termos/{file_id}")
    def terms_page(request: Request, user: CurrentWebUser, file_id: FileId):
        services = request.app.state.services
        with services.database.session() as session:
            scope = scope_of(request, user, session)
            record = deps.file_in_scope(services, file_id, scope)
            terms = crud.current_terms(session, record.operation)
            if terms is None:
                raise problems.not_found("Ainda não há termos de uso publicados para esta operação.")
        return render(
            request, "termos.html", {"file": record, "terms": terms, "territory": _territory(record.operation)}, nav="download"
        )

    @r.post("/portal/termos")
    def accept_terms(
        request: Request,
        user: CurrentWebUser,
        _: csrf.CsrfChecked,
        operacao: Annotated[str, Form(max_length=64)],
        versao: Annotated[int, Form(ge=1)],
        arquivo: Annotated[int | None, Form(ge=1)] = None,
        aceito: Annotated[str | None, Form(max_length=10)] = None,
    ):
        services = request.app.state.services
        wants_json = "application/json" in request.headers.get("accept", "")
        with services.database.session() as session:
            scope = scope_of(request, user, session)
            deps.operation_in_scope(operacao, scope)
            terms = crud.current_terms(session, operacao)
            if terms is None:
                raise problems.not_found("Ainda não há termos de uso publicados para esta operação.")
            if aceito != "sim":
                raise problems.ProblemError(422, "Marque “Li e aceito os termos de uso” para confirmar.")
            if versao != terms.version:
                raise problems.ProblemError(
                    409,
                    f"Os termos de uso mudaram (versão {terms.version}). Leia a nova versão e confirme de novo.",
                )
            try:
                crud.accept_terms(session, user.id, terms)
                session.commit()
            except sa.exc.IntegrityError:
                session.rollback()  # accepted at the same moment in another tab: already recorded
        if wants_json:
            from fastapi.responses import JSONResponse

            return JSONResponse({"operacao": operacao, "versao": terms.version, "aceito": True})
        target = (
            f"/portal/arquivos/{arquivo}/conteudo?{urlencode({'csrf_token': csrf.csrf_token(request)})}"
            if arquivo
            else "/portal/download-csv"
        )
        return RedirectResponse(target, status_code=303)

    @r.post("/portal/arquivos/{file_id}/atualizar")
    def refresh(request: Request, user: CurrentWebUser, file_id: FileId, _: csrf.CsrfChecked):
        services = request.app.state.services
        with services.database.session() as session:
            scope = scope_of(request, user, session)
            record = deps.file_in_scope(services, file_id, scope)
            try:
                file_routes.refresh(
                    file_id=file_id, services=services, session=session, principal=principal_of(user), scope=scope
                )
            except problems.ProblemError as exc:
                _flash(request, "danger", exc.detail)
            else:
                _flash(
                    request,
                    "success",
                    f"Atualização de {record.day.strftime('%d/%m/%Y')} pedida: o estado aparece ao lado do arquivo.",
                )
        back = _query(record.operation, record.day.year, record.day.month, 1, services.settings.page_size_default)
        return RedirectResponse(f"/portal/download-csv?{back}#arquivo-{record.id}", status_code=303)

    # -- Tokens de API --------------------------------------------------------------------------

    @r.get("/portal/tokens")
    def tokens(request: Request, user: CurrentWebUser):
        services = request.app.state.services
        with services.database.session() as session:
            rows = session.scalars(
                sa.select(PersonalToken).where(PersonalToken.user_id == user.id).order_by(PersonalToken.id.desc())
            ).all()
        created = request.session.pop("new_token", None)
        return render(
            request,
            "tokens.html",
            {
                "tokens": rows,
                "created": created,
                "now": crud.utcnow(),
                "aware": crud.aware,
                "default_days": services.settings.personal_token_days,
                "messages": _messages(request),
            },
            nav="tokens",
        )

    @r.post("/portal/tokens")
    def create_token(
        request: Request,
        user: CurrentWebUser,
        _: csrf.CsrfChecked,
        nome: Annotated[str, Form(max_length=200)] = "",
        dias: Annotated[str, Form(max_length=6)] = "",
    ):
        services = request.app.state.services
        days = _int_or_none(dias) or services.settings.personal_token_days
        with services.database.session() as session:
            row_user = session.get(User, user.id)
            try:
                row, plain = crud.issue_personal_token(session, services.token_key, row_user, name=nome, days=days)
                session.commit()
            except ValueError as exc:
                _flash(request, "danger", f"Token não criado: {exc}.")
                return RedirectResponse("/portal/tokens", status_code=303)
        # Shown once, on the next page, then gone from the session.
        request.session["new_token"] = {"id": row.id, "name": row.name, "token": plain, "client_id": user.cpf}
        return RedirectResponse("/portal/tokens", status_code=303)

    @r.post("/portal/tokens/{token_id}/revogar")
    def revoke_token(request: Request, user: CurrentWebUser, token_id: FileId, _: csrf.CsrfChecked):
        services = request.app.state.services
        with services.database.session() as session:
            row = session.get(PersonalToken, token_id)
            if row is None or row.user_id != user.id:
                raise problems.not_found("Token não encontrado.")
            crud.revoke_personal_token(session, token_id)
            session.commit()
            _flash(
                request, "success", f"Token “{row.name}” revogado: ele e os tokens de acesso obtidos com ele deixaram de valer."
            )
        return RedirectResponse("/portal/tokens", status_code=303)

    return r


# -- helpers -------------------------------------------------------------------------------------


def _chart(services, operation: str, year: int, month: int) -> str | None:
    """The month's chart (issue 12), drawn on the server; the page goes on without it
    when the indicators cannot be read."""
    try:
        return charts.doses_chart_svg(listing_routes.month_indicators_of(services, operation, year, month))
    except Exception:  # noqa: BLE001 - a chart never takes the listing down
        log.exception("gráfico de %s %04d-%02d indisponível", operation, year, month)
        return None


def _int_or_none(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit() or len(text.strip()) > 6:
        return None
    return int(text.strip())


def _query(operation: str, year: int, month: int | None, page: int, size: int, **changes) -> str:
    values = {"operacao": operation, "ano": year, "mes": month, "pagina": page, "exibir": size}
    values.update(changes)
    return urlencode({k: v for k, v in values.items() if v is not None})


def _territory(operation: str) -> str:
    from portal_api.api.present import territory

    return territory(operation)[2]


def _published_days(services, operations: set[str]) -> dict[str, int]:
    """How many days each operation has published (the "Quantidade" of the table)."""
    if not operations:
        return {}
    from serving.catalog import PublishedFile

    with services.database.catalog.session() as session:
        rows = session.execute(
            sa.select(PublishedFile.operation, sa.func.count(sa.distinct(PublishedFile.day)))
            .where(PublishedFile.operation.in_(sorted(operations)))
            .group_by(PublishedFile.operation)
        ).all()
    return {operation: int(count) for operation, count in rows}


OPERATION_STATUS = {"aprovada": "Aprovada", "solicitada": "Solicitada", "reprovada": "Reprovada", "suspensa": "Suspensa"}


def _credential_card(view, user: WebUser, days: dict[str, int]) -> dict:
    from portal_api.core.security import mask_cpf
    from portal_api.models import D1_CSV_API

    credential = view.credential
    request_number = None
    if view.request is not None:
        request_number = getattr(view.request, "number", None) or f"{view.request.id}/{view.request.created_at.year}"
    operations = []
    for op in view.operations:
        downloadable = (
            credential.api == D1_CSV_API
            and op.operation.startswith("imunizacao-total-")
            and op.status == "aprovada"
            and credential.status == "ativa"
            and credential.environment == "producao"
        )
        operations.append(
            {
                "name": op.operation,
                "count": days.get(op.operation, 0),
                "status": OPERATION_STATUS.get(op.status, op.status),
                "approved": op.status == "aprovada",
                "downloadable": downloadable,
            }
        )
    api = api_catalog.BY_CODE.get(credential.api)
    return {
        "id": credential.id,
        "system": credential.system_name,
        "api": api.name if api else credential.api,
        "number": credential.number,
        "request_number": request_number or credential.number,
        "requester": credential.cnes,
        "holder": f"{view.holder.name} ({mask_cpf(view.holder.cpf)})",
        "environment": credential.environment,
        "status": credential.status,
        "operations": operations,
    }


def _latest_refreshes(session, operation: str, days: list[dt.date]) -> dict[dt.date, RefreshRequest]:
    if not days:
        return {}
    rows = session.scalars(
        sa.select(RefreshRequest)
        .where(RefreshRequest.operation == operation, RefreshRequest.day.in_(days))
        .order_by(RefreshRequest.id.desc())
    ).all()
    latest: dict[dt.date, RefreshRequest] = {}
    for row in rows:
        latest.setdefault(row.day, row)
    return latest
