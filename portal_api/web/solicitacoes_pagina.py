"""The page foundation the wizard, the analyst's pages and Permissões stand on — the
logged-in user, CSRF, the layout, "não encontrado" — in one place, so these pages
follow issue 9's foundation through this module alone.

PROVISIONAL until issue 9's branch is merged: no login exists yet, so ``page_user``
refuses everyone (tests override it) and CSRF is not checked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from portal_api.models import User
from portal_api.web import solicitacoes_comum as comum

PAGES = "/portal"
LAYOUT = "solicitacoes/_layout.html"

templates = Jinja2Templates(directory=str(comum.TEMPLATES))
templates.env.filters.update(comum.FILTERS)
templates.env.globals.update(comum.GLOBALS)
templates.env.filters["tamanho"] = lambda size: f"{size} B"


def page_user(request: Request) -> User:
    from portal_api.core import problems

    raise problems.unauthorized("Entre com gov.br.")


PageUser = Annotated[User, Depends(page_user)]


def csrf_token(request: Request) -> str:
    return ""


async def check_csrf(request: Request):
    return await request.form()


def render(request: Request, template: str, *, status_code: int = 200, nav: str | None = None, **context: Any) -> HTMLResponse:
    context.setdefault("erros", None)
    nav = nav or template.split("/")[0]
    return templates.TemplateResponse(
        request, template, {"layout": LAYOUT, "csrf_input": lambda: "", "nav": nav, **context}, status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def not_found_page(request: Request, user: User | None = None) -> HTMLResponse:
    return render(request, "solicitacoes/nao_encontrado.html", status_code=404, user=user)
