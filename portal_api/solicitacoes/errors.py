"""Refusals of the workflow's routes as problem documents whose messages name the field
in Portuguese ("CPF do gestor responsável: dígito verificador inválido"), in the same
``ValidationProblem`` shape (``errors``: location, field, message) as the rest of the API.

``LabeledRoute`` is the routers' route class: it turns FastAPI's request-validation
errors into that problem, so schema refusals (FastAPI) and semantic ones (``service``)
read alike.
"""

from __future__ import annotations

from typing import Any, Callable

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from portal_api.core import problems
from portal_api.solicitacoes.schemas import label
from portal_api.solicitacoes.workflow import InvalidTransition


def labeled(location: str, field: str, message: str) -> dict[str, str]:
    return {"location": location, "field": field, "message": f"{label(location, field)}: {message}"}


def field_problem(errors: list[dict[str, str]]) -> problems.ProblemError:
    """422 with each error's message prefixed by its field's label (errors as
    ``{"location", "field", "message"}``, messages without the label)."""
    items = [labeled(e["location"], e["field"], e["message"]) for e in errors]
    names = ", ".join(dict.fromkeys(label(e["location"], e["field"]) for e in errors))
    return problems.ProblemError(422, f"Campos recusados: {names}.", extra={"errors": items})


def body_error(field: str, message: str) -> problems.ProblemError:
    return field_problem([{"location": "body", "field": field, "message": message}])


def conflict(exc: InvalidTransition) -> problems.ProblemError:
    return problems.ProblemError(
        409,
        exc.message,
        slug="transicao-invalida",
        title="Ação inválida no estado atual",
        extra={"situacao_atual": exc.current, "acao": exc.attempted},
    )


class LabeledRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def labeled_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                if await problems.anonymous_on_caller_path(request):  # the caller first, then the fields
                    raise problems.unauthenticated() from None
                raise field_problem(problems.validation_errors(list(exc.errors()))) from None
            except InvalidTransition as exc:
                raise conflict(exc) from None

        return labeled_handler
