"""What the request wizard, the analyst's pages and Permissões share: the page
foundation they use (layout, logged-in user, CSRF — issue 9's), and the one mapping
from the workflow service's refusals to "the message beside the field".

The pages never validate by themselves: they build the same inputs the API routes
build (``schemas.SolicitacaoIn`` and friends) and call the same ``service`` functions,
so a page and a script calling the API are refused by the same rules, in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fastapi import Request
from pydantic import ValidationError

from portal_api.api.present import local_time
from portal_api.core import problems
from portal_api.solicitacoes import schemas, workflow
from portal_api.solicitacoes.errors import conflict, labeled

TEMPLATES = Path(__file__).with_name("templates")


# -- refusals → messages beside the fields -------------------------------------------------------


@dataclass
class Refusal:
    """What a form shows after a refused submission: each field's message (keyed by the
    field's path, as the API names it: ``sistema.ip_fim``) and a message for the whole
    form when the refusal names no field (a 409, say)."""

    fields: dict[str, str] = field(default_factory=dict)
    general: str | None = None

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def add(self, path: str, message: str) -> None:
        self.fields.setdefault(path, message)


def refusal_of(exc: Exception) -> Refusal:
    """The refusal of a schema (pydantic) or of the service (``ProblemError``,
    ``InvalidTransition``), with the API's Portuguese labels ("CPF do gestor
    responsável: dígito verificador inválido")."""
    found = Refusal()
    if isinstance(exc, ValidationError):
        errors = problems.validation_errors([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])
        for error in errors:
            found.add(error["field"], labeled("body", error["field"], error["message"])["message"])
        return found
    if isinstance(exc, workflow.InvalidTransition):
        exc = conflict(exc)
    if isinstance(exc, problems.ProblemError):
        for error in exc.extra.get("errors", []):
            found.add(error["field"], error["message"])
        if not found.fields:
            found.general = exc.detail
        return found
    raise exc


def renamed(refusal: Refusal, path: str, name: str) -> Refusal:
    """The API calls every upload "Arquivo"; the page says which file it is ("Certificado
    digital: …", "Evidência: …")."""
    message = refusal.fields.get(path)
    if message and message.startswith("Arquivo: "):
        refusal.fields[path] = f"{name}: " + message.removeprefix("Arquivo: ")
    return refusal


def required(refusal: Refusal, path: str) -> None:
    """A section the page asks for was left empty: the API's wording for a missing field."""
    refusal.add(path, labeled("body", path, "campo obrigatório")["message"])


def attempt(action: Callable[[], Any]) -> tuple[Any, Refusal]:
    """Run a service call; its refusal (if any) as a ``Refusal`` instead of an exception."""
    try:
        return action(), Refusal()
    except (ValidationError, problems.ProblemError, workflow.InvalidTransition) as exc:
        return None, refusal_of(exc)


# -- presentation helpers (templates) --------------------------------------------------------------


def date_time(value) -> str:
    if value is None:
        return ""
    return f"{local_time(value):%d/%m/%Y} às {local_time(value):%H:%M:%S}"


def date_br(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        import datetime as dt

        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            return value
    return f"{value:%d/%m/%Y}"


def state_label(code: str) -> str:
    return workflow.REQUEST.label(code)


def transfer_state_label(code: str) -> str:
    return workflow.TRANSFER.label(code)


FILTERS = {
    "data_hora": date_time,
    "data": date_br,
    "situacao": state_label,
    "situacao_titularidade": transfer_state_label,
}
GLOBALS = {
    "ORIGENS": schemas.ORIGINS,
    "TIPOS_EQUIPE": schemas.TEAM_TYPES,
    "PERIODOS": schemas.PERIODS,
    "PERIODO_ROTULOS": schemas.PERIOD_LABELS,
}


def form_text(form, name: str) -> str | None:
    """A form field, stripped; None when empty (the schemas then say "campo obrigatório")."""
    value = form.get(name)
    if value is None or not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def filled(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


async def form_of(request: Request):
    return await request.form()
