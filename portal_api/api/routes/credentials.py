"""Who is calling, their credentials and the operations they may consult."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter

from portal_api import crud, schemas
from portal_api.api import present
from portal_api.api.deps import CurrentPrincipal, ScopeDep, ServicesDep, SessionDep
from portal_api.core import problems, security
from portal_api.models import Credential, TermsAcceptance, TermsVersion

router = APIRouter(tags=["credenciais"])


@router.get(
    "/me",
    response_model=schemas.MeOut,
    summary="Usuário e credenciais",
    description=(
        "O usuário autenticado e as credenciais a que tem acesso, cada uma com suas operações e a situação de "
        "cada operação. Só operações aprovadas de credenciais ativas dão acesso a arquivos."
    ),
    responses=problems.responses(401, 503),
)
def me(principal: CurrentPrincipal, session: SessionDep, scope: ScopeDep, services: ServicesDep) -> schemas.MeOut:
    credentials = []
    for credential, operations in crud.credentials_of(session, principal.user_id):
        served = credential.environment == services.settings.served_environment
        rows = []
        for op in operations:
            uf, ibge6, name = present.territory(op.operation)
            accessible = credential.status == "ativa" and op.status == "aprovada" and served and op.operation in scope
            rows.append(
                schemas.OperationOut(
                    operation=op.operation, status=op.status, uf=uf, ibge6=ibge6, territory=name, accessible=accessible
                )
            )
        credentials.append(
            schemas.CredentialOut(
                id=credential.id,
                number=credential.number,
                cnes=credential.cnes,
                uf=credential.uf,
                system_name=credential.system_name,
                environment=credential.environment,
                status=credential.status,
                is_holder=credential.holder_user_id == principal.user_id,
                operations=rows,
            )
        )
    user = schemas.UserOut(id=principal.user_id, name=principal.name, cpf=security.mask_cpf(principal.cpf), email=principal.email)
    return schemas.MeOut(user=user, credentials=credentials)


@router.get(
    "/operations",
    response_model=list[schemas.AccessibleOperationOut],
    summary="Operações que posso consultar",
    description="As operações aprovadas das credenciais ativas do usuário, com a versão atual dos termos de uso e se já foi aceita.",
    responses=problems.responses(401, 503),
)
def operations(principal: CurrentPrincipal, session: SessionDep, scope: ScopeDep) -> list[schemas.AccessibleOperationOut]:
    names = sorted(scope.operations)
    if not names:
        return []
    numbers = dict(
        session.execute(
            sa.select(Credential.id, Credential.number).where(Credential.id.in_(set(scope.operations.values())))
        ).all()
    )
    latest = (
        sa.select(TermsVersion.operation, sa.func.max(TermsVersion.version).label("version"))
        .where(TermsVersion.operation.in_(names))
        .group_by(TermsVersion.operation)
        .subquery()
    )
    current = session.execute(
        sa.select(TermsVersion.operation, TermsVersion.version, TermsAcceptance.id)
        .join(latest, sa.and_(latest.c.operation == TermsVersion.operation, latest.c.version == TermsVersion.version))
        .outerjoin(
            TermsAcceptance,
            sa.and_(TermsAcceptance.terms_version_id == TermsVersion.id, TermsAcceptance.user_id == principal.user_id),
        )
    ).all()
    terms = {operation: (version, acceptance_id is not None) for operation, version, acceptance_id in current}
    result = []
    for name in names:
        uf, ibge6, territory = present.territory(name)
        version, accepted = terms.get(name, (None, False))
        result.append(
            schemas.AccessibleOperationOut(
                operation=name,
                uf=uf,
                ibge6=ibge6,
                territory=territory,
                credential_number=numbers[scope.credential_for(name)],
                terms_version=version,
                terms_accepted=accepted,
            )
        )
    return result
