"""CSRF protection of the pages: a synchronizer token kept in the session.

Every form of a page carries ``<input type="hidden" name="csrf_token">`` (the
``csrf_input()`` template global) and every ``fetch`` sends the header
``X-CSRF-Token`` (read from ``<meta name="csrf-token">``). State-changing page routes
depend on ``require_csrf`` (``CsrfChecked``); a request without the session's token is
refused with 403 and changes nothing. A cross-site ``Origin`` is refused as well.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Request
from markupsafe import Markup, escape

from portal_api.core import problems

SESSION_FIELD = "csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def csrf_token(request: Request) -> str:
    token = request.session.get(SESSION_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_FIELD] = token
    return token


def csrf_input(request: Request) -> Markup:
    return Markup(f'<input type="hidden" name="{FORM_FIELD}" value="{escape(csrf_token(request))}">')


def rotate(request: Request) -> None:
    request.session[SESSION_FIELD] = secrets.token_urlsafe(32)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


def token_matches(request: Request, sent: str | None) -> bool:
    expected = request.session.get(SESSION_FIELD)
    return bool(expected and sent) and hmac.compare_digest(str(expected).encode(), str(sent).encode())


async def require_csrf(request: Request) -> None:
    sent = request.headers.get(HEADER)
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()  # cached by Starlette: the route reads it again for free
            value = form.get(FORM_FIELD)
            sent = value if isinstance(value, str) else None
    if not _same_origin(request) or not token_matches(request, sent):
        raise problems.ProblemError(
            403,
            "A requisição foi recusada: o formulário expirou ou não veio desta página. Recarregue a página e tente de novo.",
            slug="csrf",
            title="Requisição recusada",
        )


CsrfChecked = Annotated[None, Depends(require_csrf)]
