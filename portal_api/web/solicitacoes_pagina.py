"""The page foundation the wizard, the analyst's pages and Permissões stand on — issue
9's logged-in user, CSRF check, layout and "não encontrado" page — bound in one place,
and ``install(app)``, which mounts these pages (called by ``portal_api.web.app``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse

from portal_api.web import auth, csrf
from portal_api.web import render as web_render
from portal_api.web import solicitacoes_comum as comum
from portal_api.web.sessions import WebUser

PAGES = "/portal"
LAYOUT = "base.html"

PageUser = Annotated[WebUser, Depends(auth.require_user)]

web_render.templates.env.filters.update({k: v for k, v in comum.FILTERS.items() if k not in web_render.templates.env.filters})
web_render.templates.env.globals.update(comum.GLOBALS)


def _is_analyst(user: WebUser | None) -> bool:
    """For the header: whether to show "Análise" (a query per page, for logged-in users only)."""
    if user is None:
        return False
    from portal_api.solicitacoes import service

    with _database().session() as session:
        return service.has_role(session, user.id)


_app: FastAPI | None = None


def _database():
    if _app is None:
        raise RuntimeError("páginas de solicitação usadas antes de montadas no aplicativo")
    return _app.state.services.database


async def check_csrf(request: Request):
    """403 (the portal's error page) for a form without the session's token; else the form."""
    await csrf.require_csrf(request)
    return await request.form()


def render(request: Request, template: str, *, status_code: int = 200, nav: str | None = None, **context: Any) -> HTMLResponse:
    context.setdefault("erros", None)
    context.pop("user", None)  # the layout's user is the session's (issue 9's render puts it)
    return web_render.render(
        request, template, {"layout": LAYOUT, **context}, status=status_code, nav=nav or template.split("/")[0]
    )


def not_found_page(request: Request, user: WebUser | None = None) -> HTMLResponse:
    return web_render.error_page(request, 404)


def install(app: FastAPI) -> None:
    global _app
    _app = app
    from portal_api.web import analise, permissoes, solicitacoes

    web_render.templates.env.globals["e_analista"] = _is_analyst
    _demo_trust_store(app)
    for module in (solicitacoes, analise, permissoes):
        app.include_router(module.router)


def _demo_trust_store(app: FastAPI) -> None:
    """With ``--dev-login`` and no trust store configured, the demo chain ``admin
    seed-demo`` wrote (if any) is the trust store, so ``make run``'s wizard accepts the
    demo e-CPF. Never without the development issuer."""
    from portal_api.solicitacoes.service import WorkflowServices
    from portal_api.web import solicitacoes_demo

    workflow = app.state.solicitacoes
    demo = workflow.settings.home / solicitacoes_demo.DIRECTORY / "acs"
    if getattr(app.state, "dev_issuer", None) is None or workflow.settings.trust_store is not None or not demo.is_dir():
        return
    app.state.solicitacoes = WorkflowServices(workflow.settings.model_copy(update={"trust_store": demo}))
