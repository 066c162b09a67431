"""The people, credentials and terms of ``make run``'s demo (idempotent: a second run
finds them and changes nothing). They log in through the development issuer with the
CPF alone."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal_api import crud
from portal_api.models import Credential, User

SAO_PAULO = "imunizacao-total-sp-355030"
RIO_DE_JANEIRO = "imunizacao-total-rj"


@dataclass(frozen=True)
class DemoPerson:
    cpf: str
    name: str
    email: str
    role: str  # what the banner says about them


PEOPLE = (
    DemoPerson(
        "35503000188",
        "Marta Ribeiro",
        "marta.ribeiro@prefeitura.sp.gov.br",
        "gestora municipal de São Paulo (355030): baixa os arquivos do município",
    ),
    DemoPerson(
        "33000000259", "Rafael Costa", "rafael.costa@saude.rj.gov.br", "gestor estadual do Rio de Janeiro: arquivos da UF RJ"
    ),
    DemoPerson("12345600381", "Daniela Alves", "daniela.alves@saude.gov.br", "analista do DATASUS"),
    DemoPerson("98765400410", "Joana Pereira", "joana.pereira@example.org", "sem credenciais"),
)

# (number, cnes, uf, system, environment, holder cpf, operations)
CREDENTIALS = (
    ("3406/2024", "2077485", "SP", "Vigilância em Saúde — SMS São Paulo", "producao", "35503000188", [SAO_PAULO]),
    (
        "3407/2024",
        "2077485",
        "SP",
        "Vigilância em Saúde — SMS São Paulo (homologação)",
        "homologacao",
        "35503000188",
        [SAO_PAULO],
    ),
    ("3410/2024", "2269880", "RJ", "CIEVS — SES Rio de Janeiro", "producao", "33000000259", [RIO_DE_JANEIRO]),
)


def seed(session: Session) -> dict:
    """Create what is missing; report what exists."""
    from portal_api.solicitacoes import service

    created = {"users": 0, "credentials": 0}
    users: dict[str, User] = {}
    for person in PEOPLE:
        user = session.scalar(sa.select(User).where(User.cpf == person.cpf))
        if user is None:
            user = crud.create_user(session, cpf=person.cpf, name=person.name, email=person.email)
            created["users"] += 1
        users[person.cpf] = user
    analyst = users[PEOPLE[2].cpf]
    if not service.has_role(session, analyst.id):
        service.grant_role(session, analyst, service.ANALYST)
    for number, cnes, uf, system, environment, holder, operations in CREDENTIALS:
        if session.scalar(sa.select(Credential.id).where(Credential.number == number)) is None:
            crud.create_credential(
                session,
                number=number,
                cnes=cnes,
                uf=uf,
                system_name=system,
                environment=environment,
                holder=users[holder],
                operations=operations,
            )
            created["credentials"] += 1
    for operation in (SAO_PAULO, RIO_DE_JANEIRO):
        crud.ensure_terms(session, operation)
    session.flush()
    return created


def banner(url: str) -> str:
    lines = [
        "",
        "  Portal de Serviços (demonstração) em " + url,
        "  Clique em “Entrar com GOV.BR” e digite um destes CPFs (o emissor de desenvolvimento não pede senha):",
    ]
    for person in PEOPLE:
        lines.append(f"    {person.cpf[:3]}.{person.cpf[3:6]}.{person.cpf[6:9]}-{person.cpf[9:]}  {person.name} — {person.role}")
    lines += [
        "  Depois: Download CSV → mês → ↓ → aceite o TERMO DE USO → o arquivo baixa e seu nome aparece no registro.",
        "  Solicitação de credencial: entre como Joana → Solicitações → Solicitar Acesso para Homologação; no passo"
        " Certificado digital use o .pfx de demonstração indicado por `admin seed-demo` (senha demo-a1);"
        " depois entre como Daniela → Análise para decidir.",
        "  A API continua em " + url.rstrip("/") + "/docs. Ctrl+C para parar.",
        "",
    ]
    return "\n".join(lines)
