"""Rows → the workflow's answers (times in Brasília, labels as the portal shows them)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal_api.api.present import local_time
from portal_api.models import Credential, CredentialOperation, User
from portal_api.solicitacoes import catalog, certificates, schemas, service, workflow
from portal_api.solicitacoes.models import CredentialRequest, HolderTransfer, WorkflowTransition


def state(machine: workflow.Machine, code: str) -> schemas.Codigo:
    return schemas.Codigo(codigo=code, rotulo=machine.label(code))


def _users(session: Session, ids: set[int]) -> dict[int, User]:
    if not ids:
        return {}
    return {u.id: u for u in session.scalars(sa.select(User).where(User.id.in_(ids)))}


def transitions(session: Session, rows: list[WorkflowTransition]) -> list[schemas.TransicaoOut]:
    users = _users(session, {t.actor_user_id for t in rows})
    return [
        schemas.TransicaoOut(
            acao=t.action,
            de=t.from_status,
            para=t.to_status,
            ator=schemas.UsuarioOut(id=t.actor_user_id, nome=users[t.actor_user_id].name),
            papel=t.actor_role,
            motivo=t.reason,
            em=local_time(t.created_at),
        )
        for t in rows
    ]


def operations_with_status(
    api_code: str | None, names: list[str], statuses: dict[str, str], default: str
) -> list[schemas.OperacaoSituacaoOut]:
    result = []
    for name in names:
        shown, method = catalog.display(api_code, name)
        result.append(schemas.OperacaoSituacaoOut(operacao=shown, metodo=method, situacao=statuses.get(name, default)))
    return result


def request(session: Session, row: CredentialRequest, *, viewer_id: int, analyst: bool) -> schemas.SolicitacaoOut:
    requester = session.get_one(User, row.requester_user_id)
    credential = session.get(Credential, row.credential_id) if row.credential_id else None
    names = service.operations_of(session, row.id)
    statuses: dict[str, str] = {}
    if credential is not None:
        statuses = dict(
            session.execute(
                sa.select(CredentialOperation.operation, CredentialOperation.status).where(
                    CredentialOperation.credential_id == credential.id
                )
            ).all()
        )
    default = "reprovada" if row.status == "reprovada" else "solicitada"
    api = None
    if row.api_code:
        entry = catalog.get(row.api_code)
        api = schemas.ApiEscolhidaOut(
            codigo=entry.code,
            nome=entry.name,
            versao=row.api_version or entry.version,
            data=entry.date,
            operacoes=operations_with_status(row.api_code, names, statuses, default),
        )
    establishment = None
    if row.est_cnes:
        establishment = schemas.EstabelecimentoPrincipalOut(
            cnes=row.est_cnes,
            cnpj=row.est_cnpj,
            razao_social=row.est_razao_social,
            fantasia=row.est_fantasia,
            ibge6=row.est_ibge6,
            municipio=service.municipio_name(row.est_ibge6),
            uf=row.est_uf,
            telefone=row.est_telefone,
            email=row.est_email,
        )
    children = [
        schemas.VinculadoOut(
            cnes=c.cnes,
            razao_social=c.razao_social,
            fantasia=c.fantasia,
            ibge6=c.ibge6,
            municipio=service.municipio_name(c.ibge6),
            uf=c.uf,
            incluido_por=c.added_via,
        )
        for c in service.children_of(session, row.id)
    ]
    gestor = None
    if row.gestor_cpf:
        gestor = schemas.GestorOut(
            nome=row.gestor_nome, cns=row.gestor_cns, cpf=row.gestor_cpf, email=row.gestor_email, cnes=row.est_cnes
        )
    stored = service.certificate_of(session, row.id)
    certificate = None
    if stored is not None:
        certificate = schemas.CertificadoOut(
            formato=stored.kind,
            titular=stored.subject,
            tipo_titular=stored.holder_kind,
            cpf=stored.cpf,
            cnpj=stored.cnpj,
            responsavel_cpf=stored.responsible_cpf,
            responsavel_nome=stored.responsible_name,
            emissor=stored.issuer,
            numero_serie=stored.serial,
            valido_de=local_time(stored.not_before),
            valido_ate=local_time(stored.not_after),
            sha256=stored.sha256,
            cadeia=[part for part in stored.chain.split(" > ") if part],
            pem=certificates.to_pem(stored.der),
        )
    files = [
        schemas.EvidenciaOut(
            id=e.id,
            nome=e.file_name,
            tipo=e.media_type,
            tamanho=e.size,
            sha256=e.sha256,
            enviada_em=local_time(e.uploaded_at),
            submetida_em=local_time(e.submitted_at) if e.submitted_at else None,
        )
        for e in service.evidence_of(session, row.id)
    ]
    terms = service.current_request_terms(session)
    accepted = service.acceptance_of(session, row.id)
    acceptance = None
    if accepted is not None:
        acceptance = schemas.AceiteOut(
            versao=accepted[1].version, aceito_em=local_time(accepted[0].accepted_at), usuario_id=accepted[0].user_id
        )
    mine = viewer_id == row.requester_user_id
    actions = workflow.REQUEST.available(row.status, workflow.REQUESTER) if mine else []
    if analyst and not mine:
        actions += workflow.REQUEST.available(row.status, workflow.ANALYST)
    if mine and row.status == "rascunho":
        actions = ["editar", *actions]
    if mine and row.status in workflow.EDIT_STATES["anexar evidências"]:
        actions = ["anexar_evidencias", *actions]
    return schemas.SolicitacaoOut(
        id=row.id,
        situacao=state(workflow.REQUEST, row.status),
        solicitante=schemas.UsuarioOut(id=requester.id, nome=requester.name),
        criada_em=local_time(row.created_at),
        atualizada_em=local_time(row.updated_at),
        enviada_em=local_time(row.submitted_at) if row.submitted_at else None,
        origem=schemas.Codigo(codigo=row.origem, rotulo=schemas.ORIGINS[row.origem]) if row.origem else None,
        api=api,
        estabelecimento=establishment,
        estabelecimentos_vinculados=children,
        gestor=gestor,
        sistema=row.sistema,
        certificado=certificate,
        evidencias=files,
        termos=schemas.TermosSituacaoOut(versao_vigente=terms.version, aceite=acceptance),
        credencial=schemas.CredencialResumoOut(
            id=credential.id, numero=credential.number, ambiente=credential.environment, situacao=credential.status
        )
        if credential
        else None,
        pendencias=service.pending(session, row) if row.status == "rascunho" else [],
        acoes_disponiveis=actions,
        historico=transitions(session, workflow.history(session, workflow.REQUEST, row.id)),
    )


def request_item(row: CredentialRequest, requester: User, number: str | None) -> schemas.SolicitacaoItemOut:
    return schemas.SolicitacaoItemOut(
        id=row.id,
        situacao=state(workflow.REQUEST, row.status),
        solicitante=schemas.UsuarioOut(id=requester.id, nome=requester.name),
        api=row.api_code,
        cnes=row.est_cnes,
        estabelecimento=row.est_fantasia or row.est_razao_social,
        sistema=(row.sistema or {}).get("nome"),
        criada_em=local_time(row.created_at),
        enviada_em=local_time(row.submitted_at) if row.submitted_at else None,
        credencial=number,
    )


def credential(view: service.CredentialView) -> schemas.CredencialGestaoOut:
    c = view.credential
    return schemas.CredencialGestaoOut(
        id=c.id,
        numero=c.number,
        aba=view.tab,
        ambiente=c.environment,
        situacao=c.status,
        api=c.api,
        cnes=c.cnes,
        uf=c.uf,
        sistema=c.system_name,
        solicitante_id=view.request.requester_user_id if view.request else None,
        titular=schemas.UsuarioOut(id=view.holder.id, nome=view.holder.name),
        tipo_usuario=view.holder_kind,
        origem=view.request.origem if view.request else None,
        solicitacao_id=view.request.id if view.request else None,
        operacoes=operations_with_status(
            c.api, [op.operation for op in view.operations], {op.operation: op.status for op in view.operations}, "solicitada"
        ),
        criada_em=local_time(c.created_at),
    )


def transfer(session: Session, row: HolderTransfer, *, analyst: bool) -> schemas.TitularidadeOut:
    """The claimant sees their claim and its state, never who holds the number nor
    whether it is a credential (issue 11); the analyst sees both."""
    users = _users(session, {row.requester_user_id} | ({row.previous_holder_user_id} if row.previous_holder_user_id else set()))
    previous = None
    if analyst and row.previous_holder_user_id is not None:
        previous = schemas.UsuarioOut(id=row.previous_holder_user_id, nome=users[row.previous_holder_user_id].name)
    return schemas.TitularidadeOut(
        id=row.id,
        numero_credencial=row.credential_number,
        situacao=state(workflow.TRANSFER, row.status),
        solicitante=schemas.UsuarioOut(id=row.requester_user_id, nome=users[row.requester_user_id].name),
        titular_anterior=previous,
        credencial_encontrada=(row.credential_id is not None) if analyst else None,
        justificativa=row.justification,
        gestor_confere=service.gestor_matches(session, row) if analyst else None,
        criado_em=local_time(row.created_at),
        historico=transitions(session, workflow.history(session, workflow.TRANSFER, row.id)),
    )
