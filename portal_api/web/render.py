"""Rendering of the pages: one Jinja2 environment (autoescaped), Brazilian formats,
and the error page.

``render(request, "pagina.html", {...})`` puts in every template: ``user`` (or None),
``csrf_input()`` / ``csrf_token()``, ``nav`` (the header item to mark as current) and
``request``. Pages answer ``Cache-Control: no-store``: after "Sair com segurança" the
back button finds nothing in the cache.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from portal_api.web import csrf

TEMPLATES_DIR = Path(__file__).parent / "templates"
BRASILIA = ZoneInfo("America/Sao_Paulo")
MONTHS = (
    "Janeiro",
    "Fevereiro",
    "Março",
    "Abril",
    "Maio",
    "Junho",
    "Julho",
    "Agosto",
    "Setembro",
    "Outubro",
    "Novembro",
    "Dezembro",
)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def data_br(value: dt.date | dt.datetime | None) -> str:
    """``dd/mm/aaaa``."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = _local(value).date()
    return value.strftime("%d/%m/%Y")


def data_hora_br(value: dt.datetime | None) -> str:
    """``10/02/2024 às 10:10:10`` (hora de Brasília)."""
    if value is None:
        return ""
    return _local(value).strftime("%d/%m/%Y às %H:%M:%S")


def _local(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(BRASILIA)


def tamanho(size: int | None) -> str:
    """Bytes as people read them, with a decimal comma: ``1,4 MB``."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            text = f"{value:.0f}" if unit == "B" else f"{value:.1f}"
            return f"{text.replace('.', ',')} {unit}"
        value /= 1024
    return f"{size} B"


def numero(value: int | None) -> str:
    """``1.234.567``."""
    return "" if value is None else f"{value:,}".replace(",", ".")


def _mask_cpf(cpf: str) -> str:
    from portal_api.core.security import mask_cpf

    return mask_cpf(cpf)


templates.env.filters.update(data_br=data_br, data_hora_br=data_hora_br, tamanho=tamanho, numero=numero, mask_cpf=_mask_cpf)
templates.env.globals.update(MONTHS=MONTHS)


def render(
    request: Request, name: str, context: dict | None = None, *, status: int = 200, nav: str | None = None
) -> HTMLResponse:
    from portal_api.web.auth import optional_user

    values = {
        "user": optional_user(request),
        "nav": nav,
        "csrf_input": lambda: csrf.csrf_input(request),
        "csrf_token": lambda: csrf.csrf_token(request),
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, values, status_code=status, headers=NO_STORE)


ERROR_TITLES = {
    400: "Não foi possível atender ao pedido",
    403: "Acesso negado",
    404: "Página não encontrada",
    405: "Ação não permitida",
    409: "Conflito",
    413: "Envio grande demais",
    422: "Dados inválidos",
    429: "Muitas tentativas",
    500: "Erro interno",
    502: "Falha no pipeline",
    503: "Serviço indisponível",
}


def error_page(request: Request, status: int, detail: str | None = None, headers: dict[str, str] | None = None) -> HTMLResponse:
    title = ERROR_TITLES.get(status, "Erro")
    if status == 404 and not detail:
        detail = "O endereço não existe ou não está no escopo das suas credenciais."
    response = render(request, "erro.html", {"status": status, "title": title, "detail": detail or ""}, status=status)
    for key, value in (headers or {}).items():
        if key.lower() in ("retry-after", "allow"):
            response.headers[key] = value
    return response
