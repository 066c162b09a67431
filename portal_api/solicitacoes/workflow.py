"""The lifecycles as state machines, with every transition recorded (who, when, why).

A request (solicitação)::

    rascunho ──enviar──▶ em_analise ──aprovar──▶ homologacao ──enviar_producao──▶ em_analise_producao
                              │                      ▲                                 │        │
                              └──reprovar──▶ reprovada   reprovada_producao ◀──reprovar_producao │
                                                          └──enviar_producao (novas evidências)──┘
                                                                      em_analise_producao ──aprovar_producao──▶ producao

A holder transfer (titularidade): pendente ──aprovar──▶ aprovada | ──reprovar──▶ reprovada.

An action names the states it leaves from, the state it reaches and who may take it
(the requester or an analyst). ``apply`` moves a row with a compare-and-set UPDATE
(``… WHERE id = :id AND status = :from``), so two analysts deciding at once cannot
both succeed, and writes the transition in the same transaction. An action from any
other state is ``InvalidTransition``: the API answers 409 naming the current state and
the action attempted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from portal_api.solicitacoes.models import CredentialRequest, HolderTransfer, WorkflowTransition

REQUESTER = "solicitante"
ANALYST = "analista"


@dataclass(frozen=True)
class Action:
    name: str
    label: str  # as a sentence names it: "aprovar em homologação"
    sources: tuple[str, ...]
    target: str
    role: str
    reason_required: bool = False


@dataclass(frozen=True)
class Machine:
    entity: str  # workflow_transition.entity
    noun: str  # "a solicitação", "o pedido de titularidade"
    model: type[CredentialRequest] | type[HolderTransfer]
    states: dict[str, str]  # code → label
    actions: dict[str, Action]

    def label(self, state: str) -> str:
        return self.states.get(state, state)

    def available(self, state: str, role: str) -> list[str]:
        return [a.name for a in self.actions.values() if state in a.sources and a.role == role]


REQUEST = Machine(
    entity="solicitacao",
    noun="a solicitação",
    model=CredentialRequest,
    states={
        "rascunho": "rascunho",
        "em_analise": "em análise",
        "reprovada": "reprovada",
        "homologacao": "aprovada em homologação",
        "em_analise_producao": "em análise para produção",
        "producao": "em produção",
        "reprovada_producao": "reprovada para produção",
    },
    actions={
        a.name: a
        for a in (
            Action("enviar", "enviar para análise", ("rascunho",), "em_analise", REQUESTER),
            Action("aprovar", "aprovar em homologação", ("em_analise",), "homologacao", ANALYST),
            Action("reprovar", "reprovar", ("em_analise",), "reprovada", ANALYST, reason_required=True),
            Action(
                "enviar_producao", "enviar para produção", ("homologacao", "reprovada_producao"), "em_analise_producao", REQUESTER
            ),
            Action("aprovar_producao", "aprovar para produção", ("em_analise_producao",), "producao", ANALYST),
            Action(
                "reprovar_producao",
                "reprovar para produção",
                ("em_analise_producao",),
                "reprovada_producao",
                ANALYST,
                reason_required=True,
            ),
        )
    },
)

TRANSFER = Machine(
    entity="titularidade",
    noun="o pedido de titularidade",
    model=HolderTransfer,
    states={"pendente": "pendente", "aprovada": "aprovado", "reprovada": "reprovado"},
    actions={
        a.name: a
        for a in (
            Action("aprovar", "aprovar a troca de titular", ("pendente",), "aprovada", ANALYST),
            Action("reprovar", "reprovar a troca de titular", ("pendente",), "reprovada", ANALYST, reason_required=True),
        )
    },
)

# Edits of a draft are not transitions, but they too only exist in some states.
EDIT_STATES = {
    "editar": ("rascunho",),
    "anexar evidências": ("homologacao", "reprovada_producao"),
}


class InvalidTransition(Exception):
    """An action from a state it does not leave from."""

    def __init__(self, machine: Machine, entity_id: int, current: str, attempted: str, allowed_from: tuple[str, ...]):
        self.current = current
        self.attempted = attempted
        where = " ou ".join(f"'{machine.label(s)}'" for s in allowed_from)
        self.message = (
            f"Não é possível {attempted}: {machine.noun} {entity_id} está em '{machine.label(current)}', "
            f"e essa ação só é possível em {where}."
        )
        super().__init__(self.message)


def require_state(machine: Machine, row, attempted: str, allowed: tuple[str, ...]) -> None:
    if row.status not in allowed:
        raise InvalidTransition(machine, row.id, row.status, attempted, allowed)


def lock_for_edit(session: Session, row: CredentialRequest, attempted: str) -> None:
    """Take the row for an edit only while it is in an editable state: a conditional
    UPDATE (row lock on PostgreSQL, write lock on SQLite) so a concurrent transition
    either waits for the edit or makes it fail here."""
    allowed = EDIT_STATES[attempted]
    now = dt.datetime.now(dt.timezone.utc)
    result = cast(
        CursorResult[Any],
        session.execute(  # an UPDATE: a cursor result, with its rowcount
            sa.update(CredentialRequest)
            .where(CredentialRequest.id == row.id, CredentialRequest.status.in_(allowed))
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:
        session.refresh(row)
        raise InvalidTransition(REQUEST, row.id, row.status, attempted, allowed)
    row.updated_at = now


def apply(
    session: Session, machine: Machine, row, action_name: str, *, actor_user_id: int, reason: str | None = None
) -> WorkflowTransition:
    """Move ``row`` by ``action_name`` and record it (the caller commits)."""
    action = machine.actions[action_name]
    current = row.status
    if current not in action.sources:
        raise InvalidTransition(machine, row.id, current, action.label, action.sources)
    if action.reason_required and not (reason or "").strip():
        raise ValueError("informe o motivo")
    now = dt.datetime.now(dt.timezone.utc)
    model = machine.model
    result = cast(
        CursorResult[Any],
        session.execute(  # an UPDATE: a cursor result, with its rowcount
            sa.update(model)
            .where(model.id == row.id, model.status == current)
            .values(status=action.target, updated_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:  # someone moved it first
        session.refresh(row)
        raise InvalidTransition(machine, row.id, row.status, action.label, action.sources)
    row.status = action.target
    row.updated_at = now
    transition = WorkflowTransition(
        entity=machine.entity,
        entity_id=row.id,
        action=action.name,
        from_status=current,
        to_status=action.target,
        actor_user_id=actor_user_id,
        actor_role=action.role,
        reason=(reason or "").strip() or None,
        created_at=now,
    )
    session.add(transition)
    session.flush()
    return transition


def record_creation(session: Session, machine: Machine, row, *, actor_user_id: int, state: str) -> None:
    """The first transition of a row (from nothing to its initial state)."""
    session.add(
        WorkflowTransition(
            entity=machine.entity,
            entity_id=row.id,
            action="criar",
            from_status=None,
            to_status=state,
            actor_user_id=actor_user_id,
            actor_role=REQUESTER,
            reason=None,
            created_at=dt.datetime.now(dt.timezone.utc),
        )
    )
    session.flush()


def history(session: Session, machine: Machine, entity_id: int) -> list[WorkflowTransition]:
    return list(
        session.scalars(
            sa.select(WorkflowTransition)
            .where(WorkflowTransition.entity == machine.entity, WorkflowTransition.entity_id == entity_id)
            .order_by(WorkflowTransition.id)
        )
    )
