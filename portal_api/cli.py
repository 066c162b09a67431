"""``vacina-d1 serve`` and ``vacina-d1 admin …`` (registered by pipelines.cli).

Every admin command applies the migrations first, prints one JSON line when it
succeeds, and one line on stderr with a non-zero exit when it cannot.
"""

from __future__ import annotations

import argparse
from pathlib import Path


class LogTampered(ValueError):
    """verify-log found an entry that does not check out."""


def _settings():
    from portal_api.core.config import PortalSettings

    return PortalSettings()


def _database(settings):
    from portal_api.core.db import Database, upgrade

    upgrade(settings.resolved_catalog_url)
    return Database(settings.resolved_catalog_url)


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def _emit(payload: dict) -> None:
    from pipelines.cli import emit

    emit(payload)


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from portal_api.core.db import upgrade
    from portal_api.core.limits import HeadLimitedHttpToolsProtocol
    from portal_api.main import create_app

    settings = _settings()
    host = args.host or settings.host
    port = args.port or settings.port
    settings = settings.model_copy(update={"host": host, "port": port})  # the pages' return URLs use them
    workers = args.workers
    if workers < 1:
        raise ValueError("--workers precisa ser pelo menos 1")
    dev_login = getattr(args, "dev_login", False)
    upgrade(settings.resolved_catalog_url)  # once, here: the workers start on a migrated database
    options = dict(
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,
        server_header=False,
        # Heads over VACINA_D1_MAX_HEADER_BYTES get 431 in every worker (portal_api.core.limits).
        http=HeadLimitedHttpToolsProtocol,
    )
    _emit(
        {
            "command": "serve",
            "host": host,
            "port": port,
            "workers": workers,
            "catalog": settings.resolved_catalog_url.split("://")[0],
            "x_accel_redirect": settings.accel_redirect_prefix,
            "pages": f"http://{host}:{port}/",
            "dev_login": dev_login,
        }
    )
    if dev_login:
        import sys

        from portal_api.web.demo import banner

        print(banner(f"http://{host}:{port}/"), file=sys.stderr, flush=True)
    if workers == 1:
        uvicorn.run(create_app(settings, migrate=False, dev_login=dev_login), **options)
    else:
        import os

        # Each worker process builds its own app (and its own connection pool) from the environment.
        os.environ.update(VACINA_D1_DEV_LOGIN="1" if dev_login else "0", VACINA_D1_HOST=host, VACINA_D1_PORT=str(port))
        uvicorn.run("portal_api.main:create_worker_app", factory=True, workers=workers, **options)


def cmd_create_user(args):
    from portal_api import crud
    from portal_api.core.security import mask_cpf

    database = _database(_settings())
    with database.session() as session, session.begin():
        user = crud.create_user(session, cpf=args.cpf, name=args.name, email=args.email)
        _emit({"command": "admin create-user", "user_id": user.id, "cpf": mask_cpf(user.cpf), "name": user.name})


def cmd_create_credential(args):
    from portal_api import crud

    database = _database(_settings())
    with database.session() as session, session.begin():
        holder = crud.user_by_cpf(session, args.holder)
        credential = crud.create_credential(
            session,
            number=args.number,
            cnes=args.cnes,
            uf=args.uf,
            system_name=args.system,
            environment=args.environment,
            holder=holder,
            operations=args.operation,
        )
        _emit(
            {
                "command": "admin create-credential",
                "credential_id": credential.id,
                "number": credential.number,
                "uf": credential.uf,
                "environment": credential.environment,
                "operations": sorted(set(args.operation)),
            }
        )


def cmd_grant(args):
    from portal_api import crud
    from portal_api.core.security import mask_cpf

    database = _database(_settings())
    with database.session() as session, session.begin():
        user = crud.user_by_cpf(session, args.cpf)
        credential = crud.credential_by_number(session, args.credential)
        permission = crud.grant(session, user, credential)
        _emit(
            {"command": "admin grant", "permission_id": permission.id, "cpf": mask_cpf(user.cpf), "credential": credential.number}
        )


def cmd_issue_token(args):
    from portal_api import crud

    settings = _settings()
    database = _database(settings)
    with database.session() as session, session.begin():
        user = crud.user_by_cpf(session, args.cpf)
        row, plain = crud.issue_personal_token(
            session, settings.resolved_token_key(), user, name=args.name, days=args.days or settings.personal_token_days
        )
        _emit(
            {
                "command": "admin issue-token",
                "token_id": row.id,
                "client_id": user.cpf,
                "token": plain,
                "expires_at": row.expires_at.isoformat(),
                "note": "guarde o token agora: ele não será exibido de novo",
            }
        )


def cmd_revoke_token(args):
    from portal_api import crud

    database = _database(_settings())
    with database.session() as session, session.begin():
        row = crud.revoke_personal_token(session, args.token_id)
        _emit({"command": "admin revoke-token", "token_id": row.id, "revoked_at": _iso(row.revoked_at)})


def _terms_text(args) -> str:
    if args.text_file:
        return Path(args.text_file).read_text(encoding="utf-8")
    if args.text:
        return args.text
    raise ValueError("informe --text-file ou --text")


def cmd_publish_terms(args):
    from portal_api import crud

    text = _terms_text(args)
    database = _database(_settings())
    with database.session() as session, session.begin():
        terms = crud.publish_terms(session, args.operation, text)
        _emit(
            {
                "command": "admin publish-terms",
                "operation": terms.operation,
                "version": terms.version,
                "text_sha256": terms.text_sha256,
            }
        )


def cmd_verify_log(args):
    from portal_api import download_log

    database = _database(_settings())
    result = download_log.verify(database.engine)
    _emit({"command": "admin verify-log", **result.as_dict()})
    if not result.ok:
        raise LogTampered(f"registro de downloads adulterado: {result.reason} (primeira entrada inválida: {result.first_bad_id})")


def cmd_grant_role(args):
    from portal_api import crud
    from portal_api.core.security import mask_cpf
    from portal_api.solicitacoes import service

    database = _database(_settings())
    with database.session() as session, session.begin():
        user = crud.user_by_cpf(session, args.cpf)
        service.grant_role(session, user, args.role)
        _emit({"command": "admin grant-role", "cpf": mask_cpf(user.cpf), "role": args.role})


def cmd_revoke_role(args):
    from portal_api import crud
    from portal_api.core.security import mask_cpf
    from portal_api.solicitacoes import service

    database = _database(_settings())
    with database.session() as session, session.begin():
        user = crud.user_by_cpf(session, args.cpf)
        row = service.revoke_role(session, user, args.role)
        _emit(
            {
                "command": "admin revoke-role",
                "cpf": mask_cpf(user.cpf),
                "role": args.role,
                "revoked_at": _iso(row.revoked_at),
            }
        )


def cmd_publish_request_terms(args):
    from portal_api.solicitacoes import service

    text = _terms_text(args)
    database = _database(_settings())
    with database.session() as session, session.begin():
        terms = service.publish_request_terms(session, text)
        _emit({"command": "admin publish-request-terms", "version": terms.version, "text_sha256": terms.text_sha256})


def cmd_seed_demo(args):
    from portal_api.web import demo

    settings = _settings()
    database = _database(settings)
    with database.session() as session, session.begin():
        created = demo.seed(session)
    # The request wizard's certificate step: a demo chain (trusted only by serve --dev-login) and an e-CPF .pfx.
    from portal_api.web import solicitacoes_demo

    person = demo.PEOPLE[-1]
    pki = solicitacoes_demo.write(settings.home / solicitacoes_demo.DIRECTORY, cpf=person.cpf, name=person.name)
    _emit(
        {
            "command": "admin seed-demo",
            **created,
            "people": len(demo.PEOPLE),
            "certificado_demonstracao": {"arquivo": str(pki.pfx), "senha": pki.password, "titular": person.name},
        }
    )


def register(commands) -> None:
    serve = commands.add_parser("serve", help="sobe a API do portal (padrão 127.0.0.1:8000)")
    serve.add_argument("--host", help="endereço (padrão VACINA_D1_HOST ou 127.0.0.1)")
    serve.add_argument("--port", type=int, help="porta (padrão VACINA_D1_PORT ou 8000)")
    serve.add_argument(
        "--dev-login",
        action="store_true",
        help="serve também um emissor OpenID de desenvolvimento em /dev-issuer (login só com o CPF; nunca em produção)",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="processos que atendem (padrão 1); cada um com seu pool de conexões"
    )
    serve.set_defaults(handler=cmd_serve)

    admin = commands.add_parser("admin", help="usuários, papéis, credenciais, tokens, termos de uso e o registro de downloads")
    sub = admin.add_subparsers(dest="admin_command", required=True, metavar="AÇÃO")

    p = sub.add_parser("create-user", help="cria um usuário")
    p.add_argument("--cpf", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--email", required=True)
    p.set_defaults(handler=cmd_create_user)

    p = sub.add_parser("create-credential", help="cria uma credencial com suas operações aprovadas")
    p.add_argument("--number", required=True, help="número da credencial, como 3804/2024")
    p.add_argument("--cnes", required=True)
    p.add_argument("--uf", required=True)
    p.add_argument("--system", required=True, help="nome do sistema")
    p.add_argument("--environment", choices=["homologacao", "producao"], default="producao")
    p.add_argument("--holder", required=True, help="CPF do titular")
    p.add_argument("--operation", action="append", required=True, help="imunizacao-total-<uf>[-<ibge6>] (repetível)")
    p.set_defaults(handler=cmd_create_credential)

    p = sub.add_parser("grant", help="dá a um usuário acesso a uma credencial")
    p.add_argument("--cpf", required=True)
    p.add_argument("--credential", required=True, help="número da credencial")
    p.set_defaults(handler=cmd_grant)

    p = sub.add_parser("issue-token", help="emite um token pessoal (exibido uma única vez)")
    p.add_argument("--cpf", required=True)
    p.add_argument("--name", default="token pessoal")
    p.add_argument("--days", type=int, help="validade em dias (padrão VACINA_D1_PERSONAL_TOKEN_DAYS ou 90)")
    p.set_defaults(handler=cmd_issue_token)

    p = sub.add_parser("revoke-token", help="revoga um token pessoal e os tokens de acesso obtidos com ele")
    p.add_argument("--token-id", type=int, required=True)
    p.set_defaults(handler=cmd_revoke_token)

    p = sub.add_parser("publish-terms", help="publica uma nova versão dos termos de uso de uma operação")
    p.add_argument("--operation", required=True)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--text-file", help="arquivo UTF-8 com o texto")
    group.add_argument("--text")
    p.set_defaults(handler=cmd_publish_terms)

    p = sub.add_parser("verify-log", help="confere a cadeia de hashes do registro de downloads")
    p.set_defaults(handler=cmd_verify_log)

    p = sub.add_parser("grant-role", help="dá um papel a um usuário (analista: analisa solicitações de credencial)")
    p.add_argument("--cpf", required=True)
    p.add_argument("--role", choices=["analista"], default="analista")
    p.set_defaults(handler=cmd_grant_role)

    p = sub.add_parser("revoke-role", help="retira um papel de um usuário")
    p.add_argument("--cpf", required=True)
    p.add_argument("--role", choices=["analista"], default="analista")
    p.set_defaults(handler=cmd_revoke_role)

    p = sub.add_parser("seed-demo", help="cria (se faltarem) as pessoas, credenciais e termos da demonstração de make run")
    p.set_defaults(handler=cmd_seed_demo)

    p = sub.add_parser("publish-request-terms", help="publica uma nova versão dos termos de uso da solicitação de credencial")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--text-file", help="arquivo UTF-8 com o texto")
    group.add_argument("--text")
    p.set_defaults(handler=cmd_publish_request_terms)
