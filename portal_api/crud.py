"""Reads and writes of the portal's tables. Functions flush, callers commit.

Bad input raises ``ValueError`` (unknown things ``LookupError``) with one line in
Portuguese: the CLI prints it as is, the routes turn it into a problem document.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from pipelines import contract, reference
from portal_api.core import security
from portal_api.models import (
    D1_CSV_API,
    ENVIRONMENTS,
    OPERATION_STATUSES,
    AccessToken,
    Credential,
    CredentialOperation,
    DownloadLogEntry,
    Permission,
    PersonalToken,
    RefreshRequest,
    TermsAcceptance,
    TermsVersion,
    User,
)
from portal_api.terms import DEFAULT_TERMS

_OPERATION = re.compile(r"^imunizacao-total-([a-z]{2})(?:-([0-9]{6}))?$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_CREDENTIAL_NUMBER = re.compile(r"^[0-9]{1,6}/[0-9]{4}$")
MAX_TERMS_CHARS = 100_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# -- operations ----------------------------------------------------------------------


@dataclass(frozen=True)
class OperationName:
    name: str
    uf: str
    ibge6: str | None


def parse_operation(name: str) -> OperationName:
    """An operation name the contract would produce, for a real UF (and a
    municipality of that UF), or ValueError."""
    match = _OPERATION.match(name or "")
    if not match:
        raise ValueError(f"operação inválida: {name!r} (use imunizacao-total-<uf> ou imunizacao-total-<uf>-<ibge6>)")
    uf, ibge6 = match[1].upper(), match[2]
    if uf not in reference.ufs():
        raise ValueError(f"operação inválida: {name!r} (UF {uf} não existe)")
    if ibge6 is not None:
        municipio = reference.municipios().get(ibge6)
        if municipio is None or municipio.uf != uf:
            raise ValueError(f"operação inválida: {name!r} (o município {ibge6} não é da UF {uf})")
        expected = contract.municipality_operation(uf, ibge6)
    else:
        expected = contract.state_operation(uf)
    assert expected == name
    return OperationName(name, uf, ibge6)


# -- users and credentials -----------------------------------------------------------


def create_user(session: Session, *, cpf: str, name: str, email: str) -> User:
    cpf = security.normalize_cpf(cpf)
    name = (name or "").strip()
    email = (email or "").strip().lower()
    if not name or len(name) > 200:
        raise ValueError("nome inválido: informe de 1 a 200 caracteres")
    if not _EMAIL.match(email) or len(email) > 254:
        raise ValueError(f"e-mail inválido: {email!r}")
    if session.scalar(sa.select(User.id).where(User.cpf == cpf)) is not None:
        raise ValueError(f"já existe um usuário com o CPF {security.mask_cpf(cpf)}")
    user = User(cpf=cpf, name=name, email=email, is_active=True)
    session.add(user)
    session.flush()
    return user


def user_by_cpf(session: Session, cpf: str) -> User:
    cpf = security.normalize_cpf(cpf)
    user = session.scalar(sa.select(User).where(User.cpf == cpf))
    if user is None:
        raise LookupError(f"nenhum usuário com o CPF {security.mask_cpf(cpf)}")
    return user


def credential_by_number(session: Session, number: str) -> Credential:
    credential = session.scalar(sa.select(Credential).where(Credential.number == number))
    if credential is None:
        raise LookupError(f"credencial não encontrada: {number}")
    return credential


def create_credential(
    session: Session,
    *,
    number: str,
    cnes: str,
    uf: str,
    system_name: str,
    environment: str,
    holder: User,
    operations: list[str],
    operation_status: str = "aprovada",
) -> Credential:
    """A credential with its operations; the holder is granted it. Every operation
    gets the default terms of use if it has none yet."""
    uf = (uf or "").strip().upper()
    system_name = (system_name or "").strip()
    if not _CREDENTIAL_NUMBER.match(number or ""):
        raise ValueError(f"número de credencial inválido: {number!r} (use NNNN/AAAA, como 3804/2024)")
    if not re.fullmatch(r"[0-9]{7}", cnes or ""):
        raise ValueError(f"CNES inválido: {cnes!r} (7 dígitos)")
    if uf not in reference.ufs():
        raise ValueError(f"UF inválida: {uf!r}")
    if not system_name or len(system_name) > 200:
        raise ValueError("nome do sistema inválido: informe de 1 a 200 caracteres")
    if environment not in ENVIRONMENTS:
        raise ValueError(f"ambiente inválido: {environment!r} (use {' ou '.join(ENVIRONMENTS)})")
    if not operations:
        raise ValueError("informe ao menos uma operação")
    if session.scalar(sa.select(Credential.id).where(Credential.number == number)) is not None:
        raise ValueError(f"a credencial {number} já existe")
    credential = Credential(
        number=number,
        cnes=cnes,
        uf=uf,
        system_name=system_name,
        environment=environment,
        status="ativa",
        holder_user_id=holder.id,
    )
    session.add(credential)
    session.flush()
    for operation in dict.fromkeys(operations):
        add_operation(session, credential, operation, status=operation_status)
    grant(session, holder, credential)
    return credential


def add_operation(session: Session, credential: Credential, operation: str, *, status: str = "aprovada") -> CredentialOperation:
    parsed = parse_operation(operation)
    if parsed.uf != credential.uf:
        raise ValueError(f"a operação {operation} não é da UF da credencial ({credential.uf})")
    if status not in OPERATION_STATUSES:
        raise ValueError(f"situação de operação inválida: {status!r}")
    row = CredentialOperation(credential_id=credential.id, operation=operation, status=status)
    session.add(row)
    session.flush()
    ensure_terms(session, operation)
    return row


def grant(session: Session, user: User, credential: Credential) -> Permission:
    permission = session.scalar(
        sa.select(Permission).where(Permission.user_id == user.id, Permission.credential_id == credential.id)
    )
    if permission is None:
        permission = Permission(user_id=user.id, credential_id=credential.id)
        session.add(permission)
    elif permission.revoked_at is not None:
        permission.revoked_at = None
        permission.granted_at = utcnow()
    session.flush()
    return permission


# -- scope -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The operations a user may see, each with the credential that grants it (the
    lowest id when several do), and those refused because every credential granting
    them has an IP range the caller's address is outside of (issue 6)."""

    operations: dict[str, int]
    blocked: dict[str, int] = field(default_factory=dict)

    def __contains__(self, operation: object) -> bool:
        return operation in self.operations

    def credential_for(self, operation: str) -> int:
        return self.operations[operation]


def scope_of(session: Session, user_id: int, *, environment: str = "producao", client_address=None) -> Scope:
    """Approved D-1 operations of the user's active credentials of ``environment`` (the
    one this instance serves). A credential with a registered IP range grants only to a
    caller inside it (``client_address``: ``ip_ranges.ClientAddress``'s address, None
    when unknown, which a range refuses)."""
    from portal_api.core.ip_ranges import admits

    query = (
        sa.select(CredentialOperation.operation, Credential.id, Credential.ip_range_start, Credential.ip_range_end)
        .join(Credential, Credential.id == CredentialOperation.credential_id)
        .join(Permission, Permission.credential_id == Credential.id)
        .where(
            Permission.user_id == user_id,
            Permission.revoked_at.is_(None),
            Credential.status == "ativa",
            Credential.environment == environment,
            Credential.api == D1_CSV_API,
            CredentialOperation.status == "aprovada",
        )
        .order_by(Credential.id)
    )
    operations: dict[str, int] = {}
    blocked: dict[str, int] = {}
    for operation, credential_id, start, end in session.execute(query):
        if operation in operations:
            continue
        if admits(start, end, client_address):
            operations[operation] = credential_id
            blocked.pop(operation, None)
        else:
            blocked.setdefault(operation, credential_id)
    return Scope(operations, blocked)


def credentials_of(session: Session, user_id: int) -> list[tuple[Credential, list[CredentialOperation]]]:
    """The D-1 credentials a user holds a live permission on (any environment), with all
    their operations (the other APIs' credentials are in "Gerenciar credenciais")."""
    credentials = session.scalars(
        sa.select(Credential)
        .join(Permission, Permission.credential_id == Credential.id)
        .where(Permission.user_id == user_id, Permission.revoked_at.is_(None), Credential.api == D1_CSV_API)
        .order_by(Credential.id)
    ).all()
    ids = [c.id for c in credentials]
    operations: dict[int, list[CredentialOperation]] = {i: [] for i in ids}
    if ids:
        for row in session.scalars(
            sa.select(CredentialOperation)
            .where(CredentialOperation.credential_id.in_(ids))
            .order_by(CredentialOperation.operation)
        ):
            operations[row.credential_id].append(row)
    return [(c, operations[c.id]) for c in credentials]


# -- tokens ------------------------------------------------------------------------------


def issue_personal_token(session: Session, key: bytes, user: User, *, name: str, days: int) -> tuple[PersonalToken, str]:
    """A new personal token; the clear value is returned once and never stored."""
    name = (name or "").strip() or "token pessoal"
    if len(name) > 100:
        raise ValueError("nome do token: no máximo 100 caracteres")
    if not 1 <= days <= 730:
        raise ValueError("validade do token: de 1 a 730 dias")
    plain = security.new_token(security.PERSONAL_TOKEN_PREFIX)
    row = PersonalToken(
        user_id=user.id, name=name, token_hash=security.token_hash(key, plain), expires_at=utcnow() + dt.timedelta(days=days)
    )
    session.add(row)
    session.flush()
    return row, plain


def revoke_personal_token(session: Session, token_id: int) -> PersonalToken:
    row = session.get(PersonalToken, token_id)
    if row is None:
        raise LookupError(f"token pessoal não encontrado: {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        # Its bearer tokens die with it (checked on every request); drop them too.
        session.execute(sa.delete(AccessToken).where(AccessToken.personal_token_id == row.id))
    session.flush()
    return row


def exchange_personal_token(
    session: Session, key: bytes, *, client_id: str, client_secret: str, seconds: int
) -> tuple[AccessToken, str] | None:
    """``POST /token``: a live personal token of the user named by ``client_id`` (the
    CPF) → a bearer token living ``seconds`` (never past the personal token)."""
    if not security.looks_like(client_secret, security.PERSONAL_TOKEN_PREFIX):
        return None
    try:
        cpf = security.normalize_cpf(client_id)
    except ValueError:
        return None
    now = utcnow()
    found = session.execute(
        sa.select(PersonalToken, User)
        .join(User, User.id == PersonalToken.user_id)
        .where(
            PersonalToken.token_hash == security.token_hash(key, client_secret),
            PersonalToken.revoked_at.is_(None),
            PersonalToken.expires_at > now,
            User.is_active.is_(True),
            User.cpf == cpf,
        )
    ).one_or_none()
    if found is None:
        return None
    personal, user = found
    personal.last_used_at = now
    session.execute(sa.delete(AccessToken).where(AccessToken.personal_token_id == personal.id, AccessToken.expires_at < now))
    plain = security.new_token(security.ACCESS_TOKEN_PREFIX)
    expires = min(now + dt.timedelta(seconds=seconds), aware(personal.expires_at))
    access = AccessToken(
        personal_token_id=personal.id, user_id=user.id, token_hash=security.token_hash(key, plain), expires_at=expires
    )
    session.add(access)
    session.flush()
    return access, plain


def user_of_access_token(session: Session, key: bytes, token: str) -> tuple[User, AccessToken] | None:
    """The user behind a live bearer token: not expired, its personal token neither
    expired nor revoked, the user active."""
    if not security.looks_like(token, security.ACCESS_TOKEN_PREFIX):
        return None
    now = utcnow()
    found = session.execute(
        sa.select(User, AccessToken)
        .join(AccessToken, AccessToken.user_id == User.id)
        .join(PersonalToken, PersonalToken.id == AccessToken.personal_token_id)
        .where(
            AccessToken.token_hash == security.token_hash(key, token),
            AccessToken.expires_at > now,
            PersonalToken.revoked_at.is_(None),
            PersonalToken.expires_at > now,
            User.is_active.is_(True),
        )
    ).one_or_none()
    return (found[0], found[1]) if found is not None else None


def aware(value: dt.datetime) -> dt.datetime:
    """UTC-aware (SQLite hands back naive datetimes; every timestamp is written in UTC)."""
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


# -- terms of use ------------------------------------------------------------------------


def current_terms(session: Session, operation: str) -> TermsVersion | None:
    return session.scalar(
        sa.select(TermsVersion).where(TermsVersion.operation == operation).order_by(TermsVersion.version.desc()).limit(1)
    )


def publish_terms(session: Session, operation: str, text: str) -> TermsVersion:
    parse_operation(operation)
    text = (text or "").strip()
    if not text:
        raise ValueError("o texto dos termos de uso está vazio")
    if len(text) > MAX_TERMS_CHARS:
        raise ValueError(f"o texto dos termos de uso passa de {MAX_TERMS_CHARS} caracteres")
    current = current_terms(session, operation)
    if current is not None and current.text == text:
        raise ValueError(f"o texto é igual ao da versão atual ({current.version}) de {operation}")
    row = TermsVersion(
        operation=operation,
        version=(current.version + 1) if current else 1,
        text=text,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
    )
    session.add(row)
    session.flush()
    return row


def ensure_terms(session: Session, operation: str) -> TermsVersion:
    return current_terms(session, operation) or publish_terms(session, operation, DEFAULT_TERMS)


def acceptance(session: Session, user_id: int, terms: TermsVersion) -> TermsAcceptance | None:
    return session.scalar(
        sa.select(TermsAcceptance).where(TermsAcceptance.user_id == user_id, TermsAcceptance.terms_version_id == terms.id)
    )


def accept_terms(session: Session, user_id: int, terms: TermsVersion) -> TermsAcceptance:
    """Record "Li e aceito os termos de uso" for this version (once per user and version)."""
    existing = acceptance(session, user_id, terms)
    if existing is not None:
        return existing
    row = TermsAcceptance(user_id=user_id, terms_version_id=terms.id, accepted_at=utcnow())
    session.add(row)
    session.flush()  # a concurrent acceptance of the same version: IntegrityError, the caller re-reads
    return row


# -- download log (reads) -------------------------------------------------------------


def downloads_of_days(
    session: Session, operation: str, days: list[dt.date], *, per_day: int
) -> dict[dt.date, tuple[list[tuple[DownloadLogEntry, User]], int]]:
    """The newest ``per_day`` log entries of each file (every version of the operation
    and day) and their total."""
    result: dict[dt.date, tuple[list[tuple[DownloadLogEntry, User]], int]] = {day: ([], 0) for day in days}
    if not days:
        return result
    totals = dict(
        session.execute(
            sa.select(DownloadLogEntry.day, sa.func.count())
            .where(DownloadLogEntry.operation == operation, DownloadLogEntry.day.in_(days))
            .group_by(DownloadLogEntry.day)
        ).all()
    )
    for day in days:
        if not totals.get(day):
            continue
        rows, _ = downloads_page(session, operation, day, offset=0, limit=per_day, total=False)
        result[day] = (rows, int(totals[day]))
    return result


def downloads_page(
    session: Session, operation: str, day: dt.date, *, offset: int, limit: int, total: bool = True
) -> tuple[list[tuple[DownloadLogEntry, User]], int]:
    where = (DownloadLogEntry.operation == operation, DownloadLogEntry.day == day)
    rows = session.execute(
        sa.select(DownloadLogEntry, User)
        .join(User, User.id == DownloadLogEntry.user_id)
        .where(*where)
        .order_by(DownloadLogEntry.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    count = session.scalar(sa.select(sa.func.count()).select_from(DownloadLogEntry).where(*where)) if total else len(rows)
    return [(entry, user) for entry, user in rows], int(count or 0)


# -- refresh requests -------------------------------------------------------------------


def recent_refreshes(session: Session, user_id: int, since: dt.datetime) -> list[dt.datetime]:
    """When the user's refresh requests that were not refused by the pipeline were made."""
    return [
        aware(value)
        for value in session.scalars(
            sa.select(RefreshRequest.requested_at)
            .where(RefreshRequest.user_id == user_id, RefreshRequest.requested_at > since, RefreshRequest.status != "falhou")
            .order_by(RefreshRequest.requested_at)
        )
    ]
