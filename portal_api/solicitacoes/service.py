"""The workflow's reads and writes. Functions flush; the routes commit.

Refusals: ``problems.ProblemError`` (422 naming the field, 409 for the state of
things) or ``workflow.InvalidTransition`` (409 naming the current state and the
action). Approving in homologação issues a row of ``credential`` — the model the
download API authorises — with its operations and the holder's permission; approving
for produção flips that same row's environment.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from pipelines import reference
from pipelines.cnes import CnesTable, Estabelecimento
from portal_api import crud
from portal_api.core import problems
from portal_api.core.config import PortalSettings
from portal_api.models import D1_CSV_API, Credential, CredentialOperation, Permission, TermsVersion, User
from portal_api.solicitacoes import catalog, certificates, evidence, workflow
from portal_api.solicitacoes.errors import body_error, field_problem
from portal_api.solicitacoes.models import (
    CredentialAccessRefusal,
    CredentialNumberSequence,
    CredentialRequest,
    HolderTransfer,
    RequestCertificate,
    RequestEstablishment,
    RequestEvidence,
    RequestOperation,
    RequestTermsAcceptance,
    UserRole,
)
from portal_api.solicitacoes.schemas import (
    CREDENTIAL_TABS,
    REQUEST_TABS,
    AprovacaoIn,
    EnvioIn,
    SolicitacaoIn,
    today_brasilia,
)

log = logging.getLogger("portal_api")

ANALYST = "analista"
REQUEST_TERMS_KEY = "solicitacao-credencial"
MAX_CHILDREN = 5000
MAX_IMPORT_LINES = 5000
DEFAULT_REQUEST_TERMS = """\
Termos de uso da solicitação de credencial de acesso às APIs do Ministério da Saúde

1. As informações desta solicitação são verdadeiras e o gestor responsável indicado
   responde pelo uso da credencial pelo sistema descrito.
2. A credencial é pessoal do estabelecimento e do sistema: não a compartilhe nem a use
   fora da faixa de IP registrada; acessos de fora dela são recusados e registrados.
3. Os dados obtidos pelas APIs são protegidos pela Lei nº 13.709/2018 (LGPD) e só podem
   ser usados nas finalidades de saúde previstas na solicitação.
4. O uso em produção depende de evidências dos testes em homologação e da aprovação do
   DATASUS; a credencial pode ser suspensa ou revogada em caso de uso indevido.
"""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# -- shared services -----------------------------------------------------------------------------


class WorkflowServices:
    """What the routes need beyond the database: the CNES table and the trust store,
    each loaded once, on first use (a full CNES dump takes seconds to read)."""

    def __init__(self, settings: PortalSettings):
        self.settings = settings
        self._lock = threading.Lock()
        self._cnes: CnesTable | None = None
        self._trust: certificates.TrustStore | None = None

    def cnes(self) -> CnesTable:
        with self._lock:
            if self._cnes is None:
                self._cnes = CnesTable.load(self.settings.cnes_table)
            return self._cnes

    def trust(self) -> certificates.TrustStore:
        with self._lock:
            if self._trust is None:
                self._trust = certificates.TrustStore.load(self.settings.trust_store)
            return self._trust


# -- roles ---------------------------------------------------------------------------------------


def has_role(session: Session, user_id: int, role: str = ANALYST) -> bool:
    return (
        session.scalar(
            sa.select(UserRole.id).where(UserRole.user_id == user_id, UserRole.role == role, UserRole.revoked_at.is_(None))
        )
        is not None
    )


def grant_role(session: Session, user: User, role: str) -> UserRole:
    if role != ANALYST:
        raise ValueError(f"papel desconhecido: {role!r} (use {ANALYST})")
    row = session.scalar(sa.select(UserRole).where(UserRole.user_id == user.id, UserRole.role == role))
    if row is None:
        row = UserRole(user_id=user.id, role=role, granted_at=utcnow())
        session.add(row)
    elif row.revoked_at is not None:
        row.revoked_at = None
        row.granted_at = utcnow()
    session.flush()
    return row


def revoke_role(session: Session, user: User, role: str) -> UserRole:
    row = session.scalar(sa.select(UserRole).where(UserRole.user_id == user.id, UserRole.role == role))
    if row is None or row.revoked_at is not None:
        raise LookupError(f"o usuário não tem o papel {role}")
    row.revoked_at = utcnow()
    session.flush()
    return row


# -- terms of the request ------------------------------------------------------------------------


def current_request_terms(session: Session) -> TermsVersion:
    """The current version of the request's terms (version 1, the default text, is
    written on first use; two first uses at once both find it)."""
    terms = crud.current_terms(session, REQUEST_TERMS_KEY)
    if terms is None:
        text = DEFAULT_REQUEST_TERMS.strip()
        session.execute(
            _insert(session, TermsVersion)
            .values(
                operation=REQUEST_TERMS_KEY,
                version=1,
                text=text,
                text_sha256=hashlib.sha256(text.encode()).hexdigest(),
                published_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["operation", "version"])
        )
        terms = crud.current_terms(session, REQUEST_TERMS_KEY)
        assert terms is not None  # inserted just above, or by a concurrent call
    return terms


def _insert(session: Session, model):
    """``INSERT`` of the session's dialect (both have ``ON CONFLICT DO NOTHING``)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(model)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(model)


def publish_request_terms(session: Session, text: str) -> TermsVersion:
    text = (text or "").strip()
    if not text:
        raise ValueError("o texto dos termos de uso está vazio")
    if len(text) > crud.MAX_TERMS_CHARS:
        raise ValueError(f"o texto dos termos de uso passa de {crud.MAX_TERMS_CHARS} caracteres")
    current = current_request_terms(session)
    if current.text.strip() == text:
        raise ValueError(f"o texto é igual ao da versão atual ({current.version}) dos termos da solicitação")
    return _insert_terms(session, text, current.version + 1)


def _insert_terms(session: Session, text: str, version: int) -> TermsVersion:
    row = TermsVersion(
        operation=REQUEST_TERMS_KEY,
        version=version,
        text=text,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        published_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


# -- requests: access ------------------------------------------------------------------------------

NOT_FOUND = "Solicitação não encontrada."


def visible_request(session: Session, request_id: int, user_id: int, *, analyst: bool) -> CredentialRequest:
    """The request, for its requester, or for an analyst once it was sent (a draft is its
    author's alone); 404 for anyone else, as for a request that does not exist."""
    row = session.get(CredentialRequest, request_id)
    if row is None or (row.requester_user_id != user_id and (not analyst or row.status == "rascunho")):
        raise problems.not_found(NOT_FOUND)
    return row


def own_request(session: Session, request_id: int, user_id: int, *, analyst: bool) -> CredentialRequest:
    """The request, for the requester's own actions (an analyst sees it but may not act for them)."""
    row = visible_request(session, request_id, user_id, analyst=analyst)
    if row.requester_user_id != user_id:
        raise problems.ProblemError(403, "Só o solicitante pode alterar ou enviar a solicitação.", slug="somente-solicitante")
    return row


def analysed_request(session: Session, request_id: int, user_id: int, *, analyst: bool) -> CredentialRequest:
    """The request, for an analyst's decision: never on their own request."""
    row = visible_request(session, request_id, user_id, analyst=analyst)
    if not analyst:
        raise analyst_required()
    if row.requester_user_id == user_id:
        raise problems.ProblemError(
            403, "Um analista não pode analisar a própria solicitação.", slug="analise-da-propria-solicitacao"
        )
    return row


def analyst_required() -> problems.ProblemError:
    return problems.ProblemError(403, "Esta ação exige o papel de analista.", slug="papel-analista-exigido")


# -- requests: the form ------------------------------------------------------------------------------


def create(session: Session, user_id: int, data: SolicitacaoIn, ws: WorkflowServices) -> CredentialRequest:
    drafts = session.scalars(
        sa.select(sa.func.count())
        .select_from(CredentialRequest)
        .where(CredentialRequest.requester_user_id == user_id, CredentialRequest.status == "rascunho")
    ).one()
    limit = ws.settings.drafts_per_user
    if drafts >= limit:
        raise problems.ProblemError(
            409,
            f"Você já tem {drafts} rascunhos (o máximo é {limit}): envie ou reaproveite um deles.",
            slug="limite-de-rascunhos",
        )
    now = utcnow()
    row = CredentialRequest(requester_user_id=user_id, status="rascunho", created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    workflow.record_creation(session, workflow.REQUEST, row, actor_user_id=user_id, state="rascunho")
    _save(session, row, data, ws)
    return row


def update(session: Session, row: CredentialRequest, data: SolicitacaoIn, ws: WorkflowServices) -> None:
    workflow.lock_for_edit(session, row, "editar")
    _save(session, row, data, ws)


def _save(session: Session, row: CredentialRequest, data: SolicitacaoIn, ws: WorkflowServices) -> None:
    if data.origem is not None:
        row.origem = data.origem
    if data.estabelecimento is not None:
        _save_establishment(session, row, data, ws)
    if data.api is not None:
        _save_api(session, row, data)
    if data.gestor is not None:
        row.gestor_nome, row.gestor_cns, row.gestor_cpf = data.gestor.nome, data.gestor.cns, data.gestor.cpf
        row.gestor_email = data.gestor.email
    if data.sistema is not None:
        row.sistema = data.sistema.model_dump(mode="json")
    session.flush()


def operations_of(session: Session, request_id: int) -> list[str]:
    return list(
        session.scalars(
            sa.select(RequestOperation.operation)
            .where(RequestOperation.request_id == request_id)
            .order_by(RequestOperation.position)
        )
    )


def children_of(session: Session, request_id: int) -> list[RequestEstablishment]:
    return list(
        session.scalars(
            sa.select(RequestEstablishment).where(RequestEstablishment.request_id == request_id).order_by(RequestEstablishment.id)
        )
    )


def _save_api(session: Session, row: CredentialRequest, data: SolicitacaoIn) -> None:
    chosen = data.api
    assert chosen is not None  # _save calls this only when the form has the api
    api = catalog.get(chosen.codigo)
    operations = list(chosen.operacoes)
    if chosen.adicionar_todas:
        if api.by_territory and not row.est_uf:
            raise body_error(
                "api.adicionar_todas",
                "informe antes o estabelecimento: as operações da API D-1 são as da UF do estabelecimento",
            )
        operations = list(dict.fromkeys([*operations, *catalog.operations(api, row.est_uf)]))
    if api.by_territory and row.est_uf:
        errors = []
        for number, name in enumerate(chosen.operacoes):
            uf = crud.parse_operation(name).uf
            if uf != row.est_uf:
                errors.append(
                    {
                        "location": "body",
                        "field": f"api.operacoes.{number}",
                        "message": f"{name} é da UF {uf}, e o estabelecimento principal é da UF {row.est_uf}",
                    }
                )
        if errors:
            raise field_problem(errors)
    row.api_code, row.api_version = api.code, chosen.versao
    session.execute(sa.delete(RequestOperation).where(RequestOperation.request_id == row.id))
    session.add_all(RequestOperation(request_id=row.id, operation=name, position=n) for n, name in enumerate(operations))


def lookup(ws: WorkflowServices, *, cnes: str | None, cnpj: str | None) -> list[Estabelecimento]:
    table = ws.cnes()
    if cnes:
        found = table.by_cnes(cnes)
        return [found] if found is not None else []
    return table.by_cnpj(cnpj)[:50]


def _save_establishment(session: Session, row: CredentialRequest, data: SolicitacaoIn, ws: WorkflowServices) -> None:
    chosen = data.estabelecimento
    assert chosen is not None  # _save calls this only when the form has the establishment
    found = lookup(ws, cnes=chosen.cnes, cnpj=chosen.cnpj)
    field = "estabelecimento.cnes" if chosen.cnes else "estabelecimento.cnpj"
    if not found:
        raise body_error(field, "não encontrado na tabela CNES")
    if len(found) > 1:
        codes = ", ".join(e.cnes for e in found[:10])
        raise body_error(field, f"há {len(found)} estabelecimentos com este CNPJ na tabela CNES ({codes}): informe o CNES")
    establishment = found[0]
    if not establishment.uf:
        raise body_error(field, f"o estabelecimento {establishment.cnes} não tem município válido na tabela CNES")
    children = children_of(session, row.id)
    if any(child.cnes == establishment.cnes for child in children):
        raise body_error(field, f"o estabelecimento {establishment.cnes} já está entre os vinculados: remova-o de lá antes")
    other_uf = sorted({child.uf for child in children if child.uf != establishment.uf})
    if other_uf:
        raise body_error(
            field, f"o estabelecimento é da UF {establishment.uf}, e há vinculados da UF {', '.join(other_uf)}: remova-os antes"
        )
    if row.api_code == D1_CSV_API and data.api is None:
        foreign = [op for op in operations_of(session, row.id) if crud.parse_operation(op).uf != establishment.uf]
        if foreign:
            raise body_error(
                field,
                f"o estabelecimento é da UF {establishment.uf}, e as operações escolhidas não ({foreign[0]}): "
                "escolha as operações de novo junto com o estabelecimento",
            )
    row.est_cnes = establishment.cnes
    row.est_cnpj = establishment.cnpj or establishment.cnpj_mantenedora
    row.est_razao_social = _cut(establishment.razao_social)
    row.est_fantasia = _cut(establishment.fantasia)
    row.est_ibge6 = establishment.ibge6
    row.est_uf = establishment.uf
    row.est_telefone = chosen.telefone or _phone_or_none(establishment.telefone)
    row.est_email = chosen.email or _email_or_none(establishment.email)


def _cut(text: str | None, size: int = 200) -> str | None:
    return text[:size] if text else None


def _phone_or_none(text: str | None) -> str | None:
    from portal_api.solicitacoes.schemas import valid_phone

    try:
        return valid_phone(text)
    except ValueError:
        return None


def _email_or_none(text: str | None) -> str | None:
    from portal_api.solicitacoes.schemas import valid_email

    try:
        return valid_email(text)
    except ValueError:
        return None


# -- child establishments --------------------------------------------------------------------------


def _child_problem(row: CredentialRequest, establishment: Estabelecimento | None, code: str, existing: set[str]) -> str | None:
    if establishment is None:
        return "não encontrado na tabela CNES"
    if code == row.est_cnes:
        return "é o estabelecimento principal"
    if code in existing:
        return "já está entre os vinculados"
    if establishment.uf != row.est_uf:
        return f"é da UF {establishment.uf or 'desconhecida'}; os vinculados precisam ser da UF do principal ({row.est_uf})"
    return None


def _require_main(row: CredentialRequest) -> None:
    if not row.est_cnes:
        raise problems.ProblemError(
            409,
            "Informe antes o estabelecimento principal: os vinculados precisam ser da mesma UF.",
            slug="estabelecimento-principal-ausente",
        )


def add_child(session: Session, row: CredentialRequest, code: str, ws: WorkflowServices) -> RequestEstablishment:
    workflow.lock_for_edit(session, row, "editar")
    _require_main(row)
    existing = {child.cnes for child in children_of(session, row.id)}
    if len(existing) >= MAX_CHILDREN:
        raise problems.ProblemError(409, f"A solicitação já tem {MAX_CHILDREN} estabelecimentos vinculados (o máximo).")
    establishment = ws.cnes().by_cnes(code)
    problem = _child_problem(row, establishment, code, existing)
    if problem == "já está entre os vinculados":
        raise problems.ProblemError(409, f"O estabelecimento {code} já está entre os vinculados.", slug="vinculado-repetido")
    if problem:
        raise body_error("cnes", problem)
    assert establishment is not None  # a missing one is a problem
    child = _child_row(row, establishment, "manual")
    session.add(child)
    session.flush()
    return child


def _child_row(row: CredentialRequest, establishment: Estabelecimento, via: str) -> RequestEstablishment:
    return RequestEstablishment(
        request_id=row.id,
        cnes=establishment.cnes,
        razao_social=_cut(establishment.razao_social),
        fantasia=_cut(establishment.fantasia),
        ibge6=establishment.ibge6,
        uf=establishment.uf,
        added_via=via,
        added_at=utcnow(),
    )


@dataclass
class ImportResult:
    added: list[RequestEstablishment]
    refused: list[tuple[int, str, str]]  # (line, value, why)


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("latin-1")


def import_children(session: Session, row: CredentialRequest, content: bytes, ws: WorkflowServices) -> ImportResult:
    """A CSV or TXT of CNES codes (the first field of each line; ``;`` or ``,``; a header
    line is skipped; codes whose leading zeros a spreadsheet dropped are padded): every
    line is added or refused with its reason."""
    workflow.lock_for_edit(session, row, "editar")
    _require_main(row)
    if b"\x00" in content:
        raise body_error("arquivo", "não é um arquivo de texto (CSV ou TXT)")
    lines = _decode(content).splitlines()
    if len(lines) > MAX_IMPORT_LINES:
        raise body_error("arquivo", f"a lista tem {len(lines)} linhas; o máximo é {MAX_IMPORT_LINES}")
    existing = {child.cnes for child in children_of(session, row.id)}
    table = ws.cnes()
    result = ImportResult([], [])
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        fields = next(csv.reader([text], delimiter=";" if ";" in text else ","), [""])
        value = (fields[0] if fields else "").strip().strip('"').strip()
        if number == 1 and not re.fullmatch(r"\d+", value):
            continue  # a header (CNES, co_cnes, ...)
        shown = value[:40]
        if not re.fullmatch(r"\d{1,7}", value):
            result.refused.append((number, shown, "CNES precisa ter 7 dígitos"))
            continue
        code = value.zfill(7)
        if len(existing) >= MAX_CHILDREN:
            result.refused.append((number, shown, f"limite de {MAX_CHILDREN} vinculados atingido"))
            continue
        establishment = table.by_cnes(code)
        problem = _child_problem(row, establishment, code, existing)
        if problem:
            result.refused.append((number, shown, problem))
            continue
        assert establishment is not None  # a missing one is a problem
        child = _child_row(row, establishment, "lista")
        session.add(child)
        existing.add(code)
        result.added.append(child)
    session.flush()
    return result


def remove_child(session: Session, row: CredentialRequest, code: str) -> None:
    workflow.lock_for_edit(session, row, "editar")
    deleted = cast(
        CursorResult[Any],
        session.execute(  # a DELETE: a cursor result, with its rowcount
            sa.delete(RequestEstablishment).where(RequestEstablishment.request_id == row.id, RequestEstablishment.cnes == code)
        ),
    ).rowcount
    if not deleted:
        raise problems.not_found(f"O estabelecimento {code} não está entre os vinculados desta solicitação.")


# -- certificate ----------------------------------------------------------------------------------


def set_certificate(
    session: Session, row: CredentialRequest, data: bytes, password: str | None, ws: WorkflowServices
) -> RequestCertificate:
    workflow.lock_for_edit(session, row, "editar")
    try:
        trust = ws.trust()
    except certificates.TrustStoreMissing as exc:
        log.error("certificado recusado: %s", exc)
        raise problems.ProblemError(
            503,
            "O repositório de autoridades certificadoras confiáveis não está configurado; tente mais tarde.",
            slug="repositorio-de-acs-indisponivel",
        ) from None
    try:
        checked = certificates.check(data, password, trust)
    except certificates.CertificateRefused as exc:
        raise body_error(exc.field, str(exc)) from None
    stored = session.scalar(sa.select(RequestCertificate).where(RequestCertificate.request_id == row.id))
    if stored is None:
        stored = RequestCertificate(request_id=row.id)
        session.add(stored)
    stored.der = checked.der
    stored.sha256 = checked.sha256
    stored.kind = checked.kind
    stored.subject = checked.subject
    stored.issuer = checked.issuer
    stored.serial = checked.serial
    stored.not_before = checked.not_before
    stored.not_after = checked.not_after
    stored.holder_kind = checked.ids.holder_kind
    stored.cpf = checked.ids.cpf
    stored.cnpj = checked.ids.cnpj
    stored.responsible_cpf = checked.ids.responsible_cpf
    stored.responsible_name = checked.ids.responsible_name
    stored.chain = " > ".join(checked.chain)[:2000]
    stored.uploaded_at = utcnow()
    session.flush()
    return stored


def certificate_of(session: Session, request_id: int) -> RequestCertificate | None:
    return session.scalar(sa.select(RequestCertificate).where(RequestCertificate.request_id == request_id))


# -- submission ---------------------------------------------------------------------------------


def pending(session: Session, row: CredentialRequest) -> list[str]:
    """What is missing before the request can be sent (empty: complete)."""
    missing = []
    if not row.origem:
        missing.append("origem da solicitação")
    if not row.api_code:
        missing.append("API e operações")
    elif not operations_of(session, row.id):
        missing.append("operações")
    if not row.est_cnes:
        missing.append("estabelecimento")
    else:
        if not row.est_telefone:
            missing.append("telefone do estabelecimento")
        if not row.est_email:
            missing.append("e-mail do estabelecimento")
    if not row.gestor_cpf:
        missing.append("gestor responsável")
    if not row.sistema:
        missing.append("sistema")
    stored = certificate_of(session, row.id)
    if stored is None:
        missing.append("certificado digital")
    elif crud.aware(stored.not_after) < utcnow():
        missing.append("certificado digital válido (o enviado expirou)")
    if row.api_code == D1_CSV_API and row.est_uf:
        foreign = [op for op in operations_of(session, row.id) if crud.parse_operation(op).uf != row.est_uf]
        if foreign:
            missing.append(f"operações da UF do estabelecimento ({row.est_uf}); {foreign[0]} não é")
    return missing


def submit(session: Session, row: CredentialRequest, user_id: int, body: EnvioIn) -> None:
    workflow.require_state(workflow.REQUEST, row, workflow.REQUEST.actions["enviar"].label, ("rascunho",))
    missing = pending(session, row)
    if missing:
        raise problems.ProblemError(
            409,
            f"A solicitação está incompleta; falta: {'; '.join(missing)}.",
            slug="solicitacao-incompleta",
            extra={"pendencias": missing},
        )
    terms = current_request_terms(session)
    if body.versao_termos != terms.version:
        raise problems.ProblemError(
            409,
            f"A versão {body.versao_termos} dos termos não é a vigente; a versão atual é a {terms.version}.",
            slug="versao-dos-termos-desatualizada",
        )
    workflow.apply(session, workflow.REQUEST, row, "enviar", actor_user_id=user_id)
    now = utcnow()
    row.submitted_at = now
    session.add(RequestTermsAcceptance(request_id=row.id, user_id=user_id, terms_version_id=terms.id, accepted_at=now))
    session.flush()


def acceptance_of(session: Session, request_id: int) -> tuple[RequestTermsAcceptance, TermsVersion] | None:
    found = session.execute(
        sa.select(RequestTermsAcceptance, TermsVersion)
        .join(TermsVersion, TermsVersion.id == RequestTermsAcceptance.terms_version_id)
        .where(RequestTermsAcceptance.request_id == request_id)
        .order_by(RequestTermsAcceptance.id.desc())
        .limit(1)
    ).first()
    return (found[0], found[1]) if found else None


# -- analysis ---------------------------------------------------------------------------------------


def next_credential_number(session: Session, year: int) -> str:
    """``N/AAAA``, sequential per year, never one already taken (admin-made credentials
    included). The sequence row is updated before it is read: concurrent approvals
    queue on its lock."""
    suffix = f"/{year}"
    taken = [
        int(number.split("/")[0])
        for number in session.scalars(sa.select(Credential.number).where(Credential.number.like(f"%{suffix}")))
        if re.fullmatch(r"\d{1,6}/\d{4}", number)
    ]
    floor = max(taken, default=0)
    dialect = session.get_bind().dialect.name
    session.execute(
        _insert(session, CredentialNumberSequence)
        .values(year=year, last_number=floor)
        .on_conflict_do_nothing(index_elements=["year"])
    )
    while True:
        session.execute(
            sa.update(CredentialNumberSequence)
            .where(CredentialNumberSequence.year == year)
            .values(
                last_number=sa.func.greatest(CredentialNumberSequence.last_number + 1, floor + 1)
                if dialect == "postgresql"
                else sa.func.max(CredentialNumberSequence.last_number + 1, floor + 1)
            )
            .execution_options(synchronize_session=False)
        )
        number = session.scalars(
            sa.select(CredentialNumberSequence.last_number).where(CredentialNumberSequence.year == year)
        ).one()
        candidate = f"{number}{suffix}"
        if session.scalar(sa.select(Credential.id).where(Credential.number == candidate)) is None:
            return candidate
        floor = number


def approve(session: Session, row: CredentialRequest, analyst_id: int, body: AprovacaoIn) -> Credential:
    """Em análise → homologação: the credential is issued (environment homologacao)."""
    workflow.require_state(workflow.REQUEST, row, workflow.REQUEST.actions["aprovar"].label, ("em_analise",))
    requested = operations_of(session, row.id)
    assert row.api_code is not None  # a request is sent for analysis with its api
    api = catalog.get(row.api_code)
    if body.operacoes is None:
        approved = list(requested)
    else:
        approved = []
        errors = []
        for number, value in enumerate(body.operacoes):
            name = catalog.normalize(api, value)
            if name not in requested:
                errors.append(
                    {"location": "body", "field": f"operacoes.{number}", "message": f"{value!r} não foi pedida nesta solicitação"}
                )
            elif name not in approved:
                approved.append(name)
        if errors:
            raise field_problem(errors)
        if not approved:
            raise body_error("operacoes", "aprove ao menos uma operação, ou reprove a solicitação")
    workflow.apply(session, workflow.REQUEST, row, "aprovar", actor_user_id=analyst_id, reason=body.observacao)
    holder = session.get_one(User, row.requester_user_id)
    from portal_api.api.present import BRASILIA

    credential = Credential(
        number=next_credential_number(session, dt.datetime.now(BRASILIA).year),
        cnes=row.est_cnes,
        uf=row.est_uf,
        system_name=(row.sistema or {}).get("nome", "")[:200] or "sistema",
        environment="homologacao",
        status="ativa",
        holder_user_id=holder.id,
        api=row.api_code,
        ip_range_start=(row.sistema or {}).get("ip_inicio"),
        ip_range_end=(row.sistema or {}).get("ip_fim"),
    )
    session.add(credential)
    session.flush()
    for name in requested:
        status = "aprovada" if name in approved else "reprovada"
        if api.by_territory:
            crud.add_operation(session, credential, name, status=status)
        else:
            session.add(CredentialOperation(credential_id=credential.id, operation=name, status=status))
    crud.grant(session, holder, credential)
    row.credential_id = credential.id
    session.flush()
    return credential


def reject(session: Session, row: CredentialRequest, analyst_id: int, reason: str, *, production: bool = False) -> None:
    workflow.apply(
        session, workflow.REQUEST, row, "reprovar_producao" if production else "reprovar", actor_user_id=analyst_id, reason=reason
    )


def approve_production(session: Session, row: CredentialRequest, analyst_id: int, note: str | None) -> Credential:
    workflow.apply(session, workflow.REQUEST, row, "aprovar_producao", actor_user_id=analyst_id, reason=note)
    credential = session.get_one(Credential, row.credential_id)
    credential.environment = "producao"
    credential.updated_at = utcnow()
    session.flush()
    return credential


# -- evidence and production ---------------------------------------------------------------------------


def evidence_of(session: Session, request_id: int) -> list[RequestEvidence]:
    return list(
        session.scalars(
            sa.select(RequestEvidence)
            .options(sa.orm.defer(RequestEvidence.content))
            .where(RequestEvidence.request_id == request_id)
            .order_by(RequestEvidence.id)
        )
    )


def _safe_name(name: str | None, media_type: str) -> str:
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f\"<>|:*?]", "", base).strip().strip(".")[:150]
    extension = ".pdf" if media_type == evidence.PDF else ".png"
    if not base:
        base = "evidencia"
    return base if base.lower().endswith(extension) else base + extension


def add_evidence(
    session: Session, row: CredentialRequest, file_name: str | None, data: bytes, ws: WorkflowServices
) -> RequestEvidence:
    workflow.lock_for_edit(session, row, "anexar evidências")
    try:
        media = evidence.media_type(data, max_bytes=ws.settings.evidence_max_bytes)
    except evidence.EvidenceRefused as exc:
        raise body_error("arquivo", str(exc)) from None
    unsent = [e for e in evidence_of(session, row.id) if e.submitted_at is None]
    if len(unsent) >= ws.settings.evidence_max_files:
        raise problems.ProblemError(
            409,
            f"A solicitação já tem {len(unsent)} evidências a enviar (o máximo é {ws.settings.evidence_max_files}).",
            slug="limite-de-evidencias",
        )
    row_evidence = RequestEvidence(
        request_id=row.id,
        file_name=_safe_name(file_name, media),
        media_type=media,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content=data,
        uploaded_at=utcnow(),
    )
    session.add(row_evidence)
    session.flush()
    return row_evidence


def visible_evidence(session: Session, row: CredentialRequest, evidence_id: int) -> RequestEvidence:
    found = session.get(RequestEvidence, evidence_id)
    if found is None or found.request_id != row.id:
        raise problems.not_found("Evidência não encontrada nesta solicitação.")
    return found


def remove_evidence(session: Session, row: CredentialRequest, evidence_id: int) -> None:
    workflow.lock_for_edit(session, row, "anexar evidências")
    found = visible_evidence(session, row, evidence_id)
    if found.submitted_at is not None:
        raise problems.ProblemError(
            409, "Esta evidência já foi enviada para análise e não pode ser removida.", slug="evidencia-ja-enviada"
        )
    session.delete(found)
    session.flush()


def submit_production(session: Session, row: CredentialRequest, user_id: int) -> int:
    """Homologação (or reprovada para produção) → em análise para produção, with the
    evidence files not sent yet; returns how many were sent."""
    action = workflow.REQUEST.actions["enviar_producao"]
    workflow.require_state(workflow.REQUEST, row, action.label, action.sources)
    unsent = [e for e in evidence_of(session, row.id) if e.submitted_at is None]
    if not unsent:
        raise problems.ProblemError(
            409,
            "Anexe ao menos uma evidência dos testes em homologação (PDF ou PNG) antes de enviar para produção: "
            f"POST /solicitacoes/{row.id}/evidencias.",
            slug="evidencias-ausentes",
            title="Evidências ausentes",
        )
    workflow.apply(session, workflow.REQUEST, row, "enviar_producao", actor_user_id=user_id)
    now = utcnow()
    session.execute(
        sa.update(RequestEvidence)
        .where(RequestEvidence.request_id == row.id, RequestEvidence.submitted_at.is_(None))
        .values(submitted_at=now)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return len(unsent)


# -- listings --------------------------------------------------------------------------------------------


def _request_filter(user_id: int | None):
    """One user's requests; or, for analysts (None), every request that was sent."""
    if user_id is None:
        return [CredentialRequest.status != "rascunho"]
    return [CredentialRequest.requester_user_id == user_id]


def request_counts(session: Session, user_id: int | None) -> dict[str, int]:
    rows = dict(
        session.execute(
            sa.select(CredentialRequest.status, sa.func.count())
            .where(*_request_filter(user_id))
            .group_by(CredentialRequest.status)
        ).all()
    )
    return {tab: sum(rows.get(s, 0) for s in states) for tab, states in REQUEST_TABS.items()}


def requests_page(
    session: Session, user_id: int | None, tab: str, *, offset: int, limit: int
) -> list[tuple[CredentialRequest, User, str | None]]:
    query = (
        sa.select(CredentialRequest, User, Credential.number)
        .join(User, User.id == CredentialRequest.requester_user_id)
        .outerjoin(Credential, Credential.id == CredentialRequest.credential_id)
        .where(CredentialRequest.status.in_(REQUEST_TABS[tab]), *_request_filter(user_id))
        .order_by(CredentialRequest.updated_at.desc(), CredentialRequest.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [(r, u, n) for r, u, n in session.execute(query).all()]


def all_requests_of(session: Session, user_id: int) -> list[tuple[CredentialRequest, str | None]]:
    query = (
        sa.select(CredentialRequest, Credential.number)
        .outerjoin(Credential, Credential.id == CredentialRequest.credential_id)
        .where(CredentialRequest.requester_user_id == user_id)
        .order_by(CredentialRequest.id)
    )
    return [(r, n) for r, n in session.execute(query).all()]


def _credential_tab():
    return sa.case(
        (CredentialRequest.status == "em_analise_producao", "em_analise_producao"),
        (Credential.environment == "producao", "producao"),
        else_="homologacao",
    )


def _credential_scope(user_id: int | None):
    if user_id is None:
        return []
    permitted = sa.select(Permission.credential_id).where(Permission.user_id == user_id, Permission.revoked_at.is_(None))
    return [sa.or_(Credential.holder_user_id == user_id, Credential.id.in_(permitted))]


def credential_counts(session: Session, user_id: int | None) -> dict[str, int]:
    tab = _credential_tab().label("aba")
    rows: dict[str, int] = dict(
        session.execute(
            sa.select(tab, sa.func.count())
            .select_from(Credential)
            .outerjoin(CredentialRequest, CredentialRequest.credential_id == Credential.id)
            .where(*_credential_scope(user_id))
            .group_by(tab)
        ).all()
    )
    return {name: int(rows.get(name, 0)) for name in CREDENTIAL_TABS}


@dataclass
class CredentialView:
    credential: Credential
    tab: str
    request: CredentialRequest | None
    holder: User
    holder_kind: str | None
    operations: list[CredentialOperation]


def credentials_page(session: Session, user_id: int | None, tab: str, *, offset: int, limit: int) -> list[CredentialView]:
    tab_expr = _credential_tab()
    rows = session.execute(
        sa.select(Credential, CredentialRequest, User, RequestCertificate.holder_kind)
        .outerjoin(CredentialRequest, CredentialRequest.credential_id == Credential.id)
        .outerjoin(RequestCertificate, RequestCertificate.request_id == CredentialRequest.id)
        .join(User, User.id == Credential.holder_user_id)
        .where(tab_expr == tab, *_credential_scope(user_id))
        .order_by(Credential.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    ids = [credential.id for credential, *_ in rows]
    operations: dict[int, list[CredentialOperation]] = {i: [] for i in ids}
    if ids:
        for op in session.scalars(
            sa.select(CredentialOperation).where(CredentialOperation.credential_id.in_(ids)).order_by(CredentialOperation.id)
        ):
            operations[op.credential_id].append(op)
    return [CredentialView(c, tab, r, u, kind, operations[c.id]) for c, r, u, kind in rows]


# -- holder transfer ("Adquirir titularidade de credencial") -----------------------------------------------


def request_transfer(session: Session, user_id: int, number: str, justification: str) -> HolderTransfer:
    """Record a claim, whatever the number: the answer must not tell whether it is a
    credential (issue 11). An unknown or inactive number, or one the claimant already
    holds, is recorded without a credential; the analyst sees every pending claim and
    rejects those. Claims never block each other."""
    found = session.scalar(sa.select(Credential).where(Credential.number == number))
    credential = found if found is not None and found.status == "ativa" and found.holder_user_id != user_id else None
    now = utcnow()
    row = HolderTransfer(
        credential_number=number,
        credential_id=credential.id if credential else None,
        requester_user_id=user_id,
        previous_holder_user_id=credential.holder_user_id if credential else None,
        status="pendente",
        justification=justification,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    workflow.record_creation(session, workflow.TRANSFER, row, actor_user_id=user_id, state="pendente")
    return row


def decide_transfer(
    session: Session, row: HolderTransfer, analyst_id: int, *, approve: bool, reason: str | None, keep_previous: bool = False
) -> None:
    if row.requester_user_id == analyst_id:
        raise problems.ProblemError(
            403, "Um analista não pode decidir o próprio pedido de titularidade.", slug="analise-do-proprio-pedido"
        )
    credential = session.get(Credential, row.credential_id) if row.credential_id is not None else None
    if approve and row.status == "pendente" and (credential is None or credential.status != "ativa"):
        raise problems.ProblemError(
            409,
            f"O número {row.credential_number} não é uma credencial ativa de outro titular: reprove o pedido.",
            slug="credencial-nao-encontrada",
        )
    workflow.apply(session, workflow.TRANSFER, row, "aprovar" if approve else "reprovar", actor_user_id=analyst_id, reason=reason)
    if not approve:
        return
    assert credential is not None  # approving a pending claim needs one (409 above)
    previous = credential.holder_user_id
    credential.holder_user_id = row.requester_user_id
    credential.updated_at = utcnow()
    row.keep_previous_holder = keep_previous
    crud.grant(session, session.get_one(User, row.requester_user_id), credential)
    if not keep_previous and previous != row.requester_user_id:
        session.execute(
            sa.update(Permission)
            .where(Permission.credential_id == credential.id, Permission.user_id == previous, Permission.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    session.flush()


def transfers_page(
    session: Session, user_id: int | None, *, pending_only: bool, offset: int, limit: int
) -> tuple[list[HolderTransfer], int]:
    where = []
    if user_id is not None:
        where.append(HolderTransfer.requester_user_id == user_id)
    if pending_only:
        where.append(HolderTransfer.status == "pendente")
    total = session.scalar(sa.select(sa.func.count()).select_from(HolderTransfer).where(*where))
    rows = session.scalars(
        sa.select(HolderTransfer).where(*where).order_by(HolderTransfer.id.desc()).offset(offset).limit(limit)
    ).all()
    return list(rows), int(total or 0)


def gestor_matches(session: Session, row: HolderTransfer) -> bool:
    """Whether the person asking is the responsible manager of the request that issued the credential."""
    if row.credential_id is None:
        return False
    requester = session.get(User, row.requester_user_id)
    gestor_cpf = session.scalar(
        sa.select(CredentialRequest.gestor_cpf).where(CredentialRequest.credential_id == row.credential_id)
    )
    return bool(gestor_cpf) and requester is not None and requester.cpf == gestor_cpf


# -- refusals by IP range ------------------------------------------------------------------------------------


def record_refusal(
    engine: sa.Engine, *, credential_id: int, user_id: int, client_address: str | None, peer: str | None, method: str, path: str
) -> None:
    """Write a refusal in its own transaction (the refused request rolls back its own)."""
    with Session(engine) as session, session.begin():
        session.add(
            CredentialAccessRefusal(
                credential_id=credential_id,
                user_id=user_id,
                client_address=(client_address or None) and client_address[:64],
                peer_address=(peer or None) and peer[:64],
                method=method[:8],
                path=path[:300],
                created_at=utcnow(),
            )
        )


def municipio_name(ibge6: str | None) -> str | None:
    municipio = reference.municipios().get(ibge6 or "")
    return municipio.nome if municipio else None


def today() -> dt.date:
    return today_brasilia()
