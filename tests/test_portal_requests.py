"""The credential-request workflow through the HTTP API (TestClient): a request walked
from rascunho to produção and then used to download with issue 5's routes, a request
rejected in analysis, production without evidence, invalid transitions, roles, the
listings, holder transfer, the IP range of a credential, and the same walk on
PostgreSQL.

Every request comes from a trusted proxy (10.0.0.2) forwarding the client's address
(200.130.5.10, inside the range the form registers) unless a test says otherwise.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re

import pytest
import sqlalchemy as sa

from portal_api import download_log
from portal_api.models import Credential, CredentialOperation, TermsVersion
from portal_api.solicitacoes.models import CredentialAccessRefusal, RequestTermsAcceptance, WorkflowTransition
from tests.portal import requests_world as rw
from tests.portal import world as w

PROBLEM = "application/problem+json"
DAY = dt.date(2026, 11, 21)


@pytest.fixture
def setup(tmp_path):
    world, pki = rw.build(tmp_path)
    client = rw.client_for(world)
    with client:
        yield world, pki, client
    client.app.state.services.database.dispose()
    world.database.dispose()


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and "Traceback" not in response.text
    return body


def year_now() -> int:
    from portal_api.api.present import BRASILIA

    return dt.datetime.now(BRASILIA).year


# -- the whole walk -----------------------------------------------------------------------------------


def walk_to_production(client, world, pki, bruno, daniel) -> tuple[int, dict]:
    request_id = rw.create_complete(client, bruno, pki)
    summary = client.get(f"/solicitacoes/{request_id}", headers=bruno).json()
    assert summary["pendencias"] == [] and summary["situacao"] == {"codigo": "rascunho", "rotulo": "rascunho"}
    sent = rw.submit(client, bruno, request_id)
    assert sent.status_code == 200, sent.text
    approved = client.post(f"/solicitacoes/{request_id}/aprovacao", json={"observacao": "dados conferidos"}, headers=daniel)
    assert approved.status_code == 200, approved.text
    evidence = client.post(
        f"/solicitacoes/{request_id}/evidencias",
        headers=bruno,
        files={"arquivo": ("testes-homologacao.pdf", rw.minimal_pdf(), "application/pdf")},
    )
    assert evidence.status_code == 201, evidence.text
    to_production = client.post(f"/solicitacoes/{request_id}/envio-producao", headers=bruno)
    assert to_production.status_code == 200, to_production.text
    production = client.post(f"/solicitacoes/{request_id}/aprovacao-producao", json={}, headers=daniel)
    assert production.status_code == 200, production.text
    return request_id, production.json()


def test_a_request_walks_from_rascunho_to_producao_and_then_downloads(setup):
    world, pki, client = setup
    bruno, daniel = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, rw.DANIEL_CPF)
    sp_state = world.file(w.SP_STATE, DAY)
    assert client.get(f"/files/{sp_state.id}", headers=bruno).status_code == 404  # not Bruno's yet

    # The form, section by section, as the wizard saves it.
    created = client.post("/solicitacoes", json={"origem": "outros"}, headers=bruno)
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    assert set(created.json()["pendencias"]) >= {
        "API e operações",
        "estabelecimento",
        "gestor responsável",
        "sistema",
        "certificado digital",
    }
    found = client.get("/estabelecimentos", params={"cnpj": "46177400000178"}, headers=bruno).json()
    assert [(e["cnes"], e["uf"], e["municipio"]) for e in found] == [(rw.SP_MAIN, "SP", "São Paulo")]
    patched = client.patch(
        f"/solicitacoes/{request_id}",
        headers=bruno,
        json={
            "estabelecimento": {"cnpj": "46.177.400/0001-78", "email": "Vacinas@Prefeitura.SP.gov.br"},
            "api": {
                "codigo": "vacinacao-d1-csv",
                "versao": "1.0",
                "operacoes": ["imunizacao-total-sp GET", "imunizacao-total-sp-355030"],
            },
        },
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["estabelecimento"] | {} == {
        "cnes": rw.SP_MAIN,
        "cnpj": "46177400000178",
        "razao_social": "PREFEITURA DO MUNICIPIO DE SAO PAULO",
        "fantasia": "UBS SE",
        "ibge6": "355030",
        "municipio": "São Paulo",
        "uf": "SP",
        "telefone": "1133972000",
        "email": "vacinas@prefeitura.sp.gov.br",
    }
    assert [(o["operacao"], o["metodo"], o["situacao"]) for o in body["api"]["operacoes"]] == [
        ("imunizacao-total-sp", "GET", "solicitada"),
        ("imunizacao-total-sp-355030", "GET", "solicitada"),
    ]
    client.patch(
        f"/solicitacoes/{request_id}", headers=bruno, json={"gestor": rw.form()["gestor"], "sistema": rw.sistema()}
    ).raise_for_status()
    # Children: one by one, then a list with refusals.
    assert client.post(f"/solicitacoes/{request_id}/estabelecimentos", json={"cnes": "2077493"}, headers=bruno).status_code == 201
    listing = "CNES;nome\n2077507;AMA SE\n2019999;Campinas\n0010456;DF\n2077493;repetido\n2077485;principal\n9999999;nada\n12AB;lixo\n\n"
    imported = client.post(
        f"/solicitacoes/{request_id}/estabelecimentos/importacao",
        headers=bruno,
        files={"arquivo": ("vinculados.csv", listing.encode("latin-1"), "text/csv")},
    )
    assert imported.status_code == 200, imported.text
    result = imported.json()
    assert [c["cnes"] for c in result["incluidos"]] == ["2077507", "2019999"] and result["total_vinculados"] == 3
    assert {(r["linha"], r["valor"]): r["motivo"] for r in result["recusados"]} == {
        (4, "0010456"): "é da UF DF; os vinculados precisam ser da UF do principal (SP)",
        (5, "2077493"): "já está entre os vinculados",
        (6, "2077485"): "é o estabelecimento principal",
        (7, "9999999"): "não encontrado na tabela CNES",
        (8, "12AB"): "CNES precisa ter 7 dígitos",
    }
    # Certificate: an A1 .pfx; only the public certificate is kept.
    issued = pki.e_cpf(w.BRUNO_CPF, "BRUNO LIMA", rsa=True)
    upload = client.put(
        f"/solicitacoes/{request_id}/certificado",
        headers=bruno,
        data={"senha": rw.PFX_PASSWORD},
        files={"arquivo": ("bruno.pfx", pki.pfx(issued, rw.PFX_PASSWORD), "application/octet-stream")},
    )
    assert upload.status_code == 200, upload.text
    certificate = upload.json()
    assert (certificate["formato"], certificate["tipo_titular"], certificate["cpf"], certificate["cnpj"]) == (
        "pfx",
        "pessoa_fisica",
        w.BRUNO_CPF,
        None,
    )
    assert certificate["sha256"] == hashlib.sha256(issued.der).hexdigest() and "AC Raiz Teste" in certificate["cadeia"][-1]
    assert certificate["pem"].encode() == issued.pem

    # The summary screen, then terms and submission.
    summary = client.get(f"/solicitacoes/{request_id}", headers=bruno).json()
    assert summary["pendencias"] == [] and summary["acoes_disponiveis"] == ["editar", "enviar"]
    assert summary["gestor"]["cnes"] == rw.SP_MAIN and summary["sistema"]["ip_inicio"] == rw.RANGE[0]
    assert [c["incluido_por"] for c in summary["estabelecimentos_vinculados"]] == ["manual", "lista", "lista"]
    terms = client.get("/solicitacoes/termos", headers=bruno).json()
    assert terms["versao"] == 1 and "LGPD" in terms["texto"]
    problem(client.post(f"/solicitacoes/{request_id}/envio", json={"versao_termos": 2, "aceito": True}, headers=bruno), 409)
    problem(client.post(f"/solicitacoes/{request_id}/envio", json={"versao_termos": 1, "aceito": False}, headers=bruno), 422)
    sent = rw.submit(client, bruno, request_id)
    assert sent.status_code == 200 and sent.json()["situacao"]["codigo"] == "em_analise"
    assert sent.json()["termos"]["aceite"]["versao"] == 1
    # Locked once sent.
    locked = problem(client.patch(f"/solicitacoes/{request_id}", json={"origem": "ministerio_saude"}, headers=bruno), 409)
    assert "'em análise'" in locked["detail"] and "editar" in locked["detail"]

    # The analyst approves in homologação: a credential N/AAAA is issued, environment homologacao.
    problem(client.post(f"/solicitacoes/{request_id}/aprovacao", json={}, headers=bruno), 403)  # not an analyst
    problem(
        client.post(f"/solicitacoes/{request_id}/aprovacao", json={"operacoes": ["imunizacao-total-df"]}, headers=daniel), 422
    )
    approved = client.post(
        f"/solicitacoes/{request_id}/aprovacao",
        headers=daniel,
        json={"operacoes": ["imunizacao-total-sp"], "observacao": "município fica para depois"},
    )
    assert approved.status_code == 200, approved.text
    credential = approved.json()["credencial"]
    assert credential["ambiente"] == "homologacao" and re.fullmatch(rf"\d+/{year_now()}", credential["numero"])
    assert [(o["operacao"], o["situacao"]) for o in approved.json()["api"]["operacoes"]] == [
        ("imunizacao-total-sp", "aprovada"),
        ("imunizacao-total-sp-355030", "reprovada"),
    ]
    # In homologação the credential authenticates but reaches no production file.
    assert client.get(f"/files/{sp_state.id}", headers=bruno).status_code == 404
    me = client.get("/me", headers=bruno).json()
    issued_credential = next(c for c in me["credentials"] if c["number"] == credential["numero"])
    assert issued_credential["environment"] == "homologacao" and issued_credential["operations"][0]["accessible"] is False

    # Production needs evidence: an HTML page renamed .pdf is refused by its content.
    refused = problem(
        client.post(
            f"/solicitacoes/{request_id}/evidencias",
            headers=bruno,
            files={"arquivo": ("relatorio.pdf", b"<!DOCTYPE html><html><body>%PDF-1.7</body></html>", "application/pdf")},
        ),
        422,
    )
    assert refused["errors"][0]["field"] == "arquivo" and "HTML" in refused["errors"][0]["message"]
    pdf, png = rw.minimal_pdf(), rw.minimal_png()
    for name, content, declared in (("relatorio.pdf", pdf, "text/html"), ("tela", png, "application/pdf")):
        response = client.post(
            f"/solicitacoes/{request_id}/evidencias", headers=bruno, files={"arquivo": (name, content, declared)}
        )
        assert response.status_code == 201, response.text
    files = client.get(f"/solicitacoes/{request_id}", headers=bruno).json()["evidencias"]
    assert [(f["nome"], f["tipo"], f["tamanho"]) for f in files] == [
        ("relatorio.pdf", "application/pdf", len(pdf)),
        ("tela.png", "image/png", len(png)),
    ]
    fetched = client.get(f"/solicitacoes/{request_id}/evidencias/{files[1]['id']}/conteudo", headers=daniel)
    assert fetched.content == png and fetched.headers["content-type"] == "image/png"
    sent = client.post(f"/solicitacoes/{request_id}/envio-producao", headers=bruno)
    assert sent.status_code == 200 and sent.json()["situacao"]["codigo"] == "em_analise_producao"
    tabs = client.get("/credenciais", params={"aba": "em_analise_producao"}, headers=bruno).json()
    assert [c["numero"] for c in tabs["items"]] == [credential["numero"]]

    # Production approved: the same credential row, now environment producao.
    done = client.post(f"/solicitacoes/{request_id}/aprovacao-producao", json={"observacao": "evidências ok"}, headers=daniel)
    assert done.status_code == 200 and done.json()["credencial"]["ambiente"] == "producao"
    assert done.json()["credencial"]["id"] == credential["id"]

    # No other step: token → terms of the operation → download, with issue 5's routes.
    fresh = w.bearer(client, world, w.BRUNO_CPF)
    operations = {o["operation"]: o for o in client.get("/operations", headers=fresh).json()}
    assert operations[w.SP_STATE]["credential_number"] == credential["numero"]
    assert w.SP_CITY in operations  # his older credential still works
    problem(client.get(f"/files/{sp_state.id}/content", headers=fresh), 403)  # terms first, as for everyone
    w.accept_terms(client, fresh, w.SP_STATE)
    download = client.get(f"/files/{sp_state.id}/content", headers=fresh)
    assert download.status_code == 200 and hashlib.sha256(download.content).hexdigest() == sp_state.sha256
    logged = client.get(f"/files/{sp_state.id}/downloads", headers=fresh).json()["items"]
    assert len(logged) == 1 and logged[0]["user_name"] == "Bruno Lima"
    with world.database.session() as session:
        entry = session.execute(sa.text("select credential_id, client_address from download_log")).one()
    assert entry == (credential["id"], rw.INSIDE)  # the forwarded address, from the trusted proxy

    # Every transition, with who, when and why.
    history = client.get(f"/solicitacoes/{request_id}", headers=bruno).json()["historico"]
    assert [(h["acao"], h["de"], h["para"], h["papel"], h["ator"]["nome"]) for h in history] == [
        ("criar", None, "rascunho", "solicitante", "Bruno Lima"),
        ("enviar", "rascunho", "em_analise", "solicitante", "Bruno Lima"),
        ("aprovar", "em_analise", "homologacao", "analista", "Daniel Analista"),
        ("enviar_producao", "homologacao", "em_analise_producao", "solicitante", "Bruno Lima"),
        ("aprovar_producao", "em_analise_producao", "producao", "analista", "Daniel Analista"),
    ]
    assert history[2]["motivo"] == "município fica para depois" and history[4]["motivo"] == "evidências ok"
    with world.database.session() as session:
        stored = session.get(Credential, credential["id"])
        assert (stored.environment, stored.api, stored.ip_range_start, stored.ip_range_end, stored.cnes, stored.uf) == (
            "producao",
            "vacinacao-d1-csv",
            *rw.RANGE,
            rw.SP_MAIN,
            "SP",
        )
        acceptance = session.scalars(sa.select(RequestTermsAcceptance)).one()
        assert (acceptance.request_id, session.get(TermsVersion, acceptance.terms_version_id).version) == (request_id, 1)
        # The transitions and terms acceptances are append-only, enforced by the database.
        for statement in ("UPDATE workflow_transition SET reason = 'x'", "DELETE FROM request_terms_acceptance"):
            with pytest.raises(sa.exc.DatabaseError, match="somente inclusão"):
                session.execute(sa.text(statement))
            session.rollback()


def test_a_request_rejected_in_analysis_and_invalid_transitions(setup):
    world, pki, client = setup
    bruno, daniel = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, rw.DANIEL_CPF)
    request_id = rw.create_complete(client, bruno, pki)
    # Nothing but "enviar" from a draft: analysts do not even see it yet.
    conflict = problem(client.post(f"/solicitacoes/{request_id}/envio-producao", headers=bruno), 409)
    assert "'rascunho'" in conflict["detail"] and conflict["situacao_atual"] == "rascunho", conflict
    for path, body in (
        ("aprovacao", {}),
        ("reprovacao", {"motivo": "x"}),
        ("aprovacao-producao", {}),
        ("reprovacao-producao", {"motivo": "x"}),
    ):
        problem(client.post(f"/solicitacoes/{request_id}/{path}", json=body, headers=daniel), 404)
    assert rw.submit(client, bruno, request_id).status_code == 200
    assert problem(rw.submit(client, bruno, request_id), 409)["detail"].startswith(
        f"Não é possível enviar para análise: a solicitação {request_id} está em 'em análise'"
    )
    for path, body, role in (
        ("envio-producao", None, bruno),
        ("aprovacao-producao", {}, daniel),
        ("reprovacao-producao", {"motivo": "x"}, daniel),
    ):
        conflict = problem(client.post(f"/solicitacoes/{request_id}/{path}", json=body, headers=role), 409)
        assert "'em análise'" in conflict["detail"] and conflict["situacao_atual"] == "em_analise", conflict
    missing = problem(client.post(f"/solicitacoes/{request_id}/reprovacao", json={"motivo": "   "}, headers=daniel), 422)
    assert missing["errors"][0]["field"] == "motivo" and missing["errors"][0]["message"].startswith("Motivo da reprovação:")
    rejected = client.post(
        f"/solicitacoes/{request_id}/reprovacao", json={"motivo": "faixa de IP de outro órgão"}, headers=daniel
    )
    assert rejected.status_code == 200 and rejected.json()["situacao"] == {"codigo": "reprovada", "rotulo": "reprovada"}
    assert rejected.json()["credencial"] is None and rejected.json()["historico"][-1]["motivo"] == "faixa de IP de outro órgão"
    assert [o["situacao"] for o in rejected.json()["api"]["operacoes"]] == ["reprovada"]
    late = problem(client.post(f"/solicitacoes/{request_id}/aprovacao", json={}, headers=daniel), 409)
    assert late["detail"] == (
        f"Não é possível aprovar em homologação: a solicitação {request_id} está em 'reprovada', "
        "e essa ação só é possível em 'em análise'."
    )
    with world.database.session() as session:
        assert (
            session.scalar(sa.select(sa.func.count()).select_from(Credential).where(Credential.api != "x")) == 2
        )  # the world's two
    listing = client.get("/solicitacoes", params={"aba": "respostas"}, headers=bruno).json()
    assert [(i["id"], i["situacao"]["codigo"]) for i in listing["items"]] == [(request_id, "reprovada")]


def test_production_without_evidence_is_refused(setup):
    world, pki, client = setup
    bruno, daniel = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, rw.DANIEL_CPF)
    request_id = rw.create_complete(client, bruno, pki)
    problem(
        client.post(
            f"/solicitacoes/{request_id}/evidencias",
            headers=bruno,
            files={"arquivo": ("a.pdf", rw.minimal_pdf(), "application/pdf")},
        ),
        409,
    )  # not in homologação yet
    rw.submit(client, bruno, request_id).raise_for_status()
    client.post(f"/solicitacoes/{request_id}/aprovacao", json={}, headers=daniel).raise_for_status()
    refused = problem(client.post(f"/solicitacoes/{request_id}/envio-producao", headers=bruno), 409)
    assert refused["type"].endswith("evidencias-ausentes") and "evidência" in refused["detail"]
    # Rejected for production: the credential stays in homologação; new evidence, sent again.
    client.post(
        f"/solicitacoes/{request_id}/evidencias", headers=bruno, files={"arquivo": ("a.png", rw.minimal_png(), "image/png")}
    ).raise_for_status()
    client.post(f"/solicitacoes/{request_id}/envio-producao", headers=bruno).raise_for_status()
    rejected = client.post(
        f"/solicitacoes/{request_id}/reprovacao-producao", json={"motivo": "print sem o token"}, headers=daniel
    )
    assert (
        rejected.json()["situacao"]["codigo"] == "reprovada_producao"
        and rejected.json()["credencial"]["ambiente"] == "homologacao"
    )
    again = problem(
        client.post(f"/solicitacoes/{request_id}/envio-producao", headers=bruno), 409
    )  # the old evidence was already sent
    assert again["type"].endswith("evidencias-ausentes")
    sent_id = rejected.json()["evidencias"][0]["id"]
    problem(client.delete(f"/solicitacoes/{request_id}/evidencias/{sent_id}", headers=bruno), 409)
    client.post(
        f"/solicitacoes/{request_id}/evidencias",
        headers=bruno,
        files={"arquivo": ("b.pdf", rw.minimal_pdf(2), "application/pdf")},
    ).raise_for_status()
    assert (
        client.post(f"/solicitacoes/{request_id}/envio-producao", headers=bruno).json()["situacao"]["codigo"]
        == "em_analise_producao"
    )


# -- who may do what ----------------------------------------------------------------------------------------


def test_requests_are_private_and_analysts_cannot_judge_their_own(setup):
    world, pki, client = setup
    bruno, ana = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, w.ANA_CPF)
    daniel, fabio = w.bearer(client, world, rw.DANIEL_CPF), w.bearer(client, world, rw.FABIO_CPF)
    request_id = rw.create_complete(client, bruno, pki)
    missing = problem(client.get("/solicitacoes/2000000000", headers=bruno), 404)
    foreign = problem(client.get(f"/solicitacoes/{request_id}", headers=ana), 404)
    assert {k: v for k, v in foreign.items() if k != "instance"} == {k: v for k, v in missing.items() if k != "instance"}
    assert "Bruno" not in client.get("/solicitacoes", headers=ana).text
    # A draft is its author's alone; once sent, an analyst sees it, may judge it, may not edit it.
    problem(client.get(f"/solicitacoes/{request_id}", headers=daniel), 404)
    rw.submit(client, bruno, request_id).raise_for_status()
    assert client.get(f"/solicitacoes/{request_id}", headers=daniel).json()["acoes_disponiveis"] == ["aprovar", "reprovar"]
    problem(client.patch(f"/solicitacoes/{request_id}", json={"origem": "outros"}, headers=daniel), 403)
    # An analyst may not approve a request of their own.
    problem(client.get("/analise/solicitacoes", headers=bruno), 403)
    own = client.post("/solicitacoes", json=rw.form(), headers=daniel).json()["id"]
    with world.database.session() as session, session.begin():
        session.execute(sa.text("UPDATE credential_request SET status = 'em_analise' WHERE id = :id"), {"id": own})
    assert problem(client.post(f"/solicitacoes/{own}/aprovacao", json={}, headers=daniel), 403)["type"].endswith(
        "analise-da-propria-solicitacao"
    )
    assert client.post(f"/solicitacoes/{own}/reprovacao", json={"motivo": "conflito"}, headers=fabio).status_code == 200


def _valid_calls(pki, version: int) -> list[tuple[str, str, dict]]:
    """Every route on a request, each with a body its owner could send successfully."""
    issued = pki.e_cpf(w.ANA_CPF, "ANA SOUZA")
    pfx = {
        "files": {"arquivo": ("ana.pfx", pki.pfx(issued, rw.PFX_PASSWORD), "application/x-pkcs12")},
        "data": {"senha": rw.PFX_PASSWORD},
    }
    return [
        ("GET", "", {}),
        ("PATCH", "", {"json": {"gestor": rw.form()["gestor"], "sistema": rw.sistema()}}),
        ("PUT", "/certificado", pfx),
        ("POST", "/estabelecimentos", {"json": {"cnes": "2077507"}}),
        ("POST", "/estabelecimentos/importacao", {"files": {"arquivo": ("v.csv", b"CNES\n2019999\n", "text/csv")}}),
        ("DELETE", "/estabelecimentos/2077493", {}),
        ("POST", "/envio", {"json": {"versao_termos": version, "aceito": True}}),
        ("POST", "/evidencias", {"files": {"arquivo": ("e.pdf", rw.minimal_pdf(1), "application/pdf")}}),
        ("GET", "/evidencias/1/conteudo", {}),
        ("DELETE", "/evidencias/1", {}),
        ("POST", "/envio-producao", {}),
        ("POST", "/aprovacao", {"json": {}}),
        ("POST", "/reprovacao", {"json": {"motivo": "não confere"}}),
        ("POST", "/aprovacao-producao", {"json": {}}),
        ("POST", "/reprovacao-producao", {"json": {"motivo": "não confere"}}),
    ]


def test_every_route_on_a_request_answers_404_to_another_user_even_with_a_valid_body(setup):
    world, pki, client = setup
    bruno, ana = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, w.ANA_CPF)
    daniel = w.bearer(client, world, rw.DANIEL_CPF)
    request_id = rw.create_complete(client, bruno, pki)
    assert client.post(f"/solicitacoes/{request_id}/estabelecimentos", json={"cnes": "2077493"}, headers=bruno).status_code == 201
    before = client.get(f"/solicitacoes/{request_id}", headers=bruno).json()
    version = client.get("/solicitacoes/termos", headers=bruno).json()["versao"]
    missing_id = 2_000_000_000
    for caller in (ana, daniel):  # another user; an analyst (a draft is its author's alone)
        for method, path, body in _valid_calls(pki, version):
            foreign = client.request(method, f"/solicitacoes/{request_id}{path}", headers=caller, **body)
            absent = client.request(method, f"/solicitacoes/{missing_id}{path}", headers=caller, **body)
            assert foreign.status_code == 404, (method, path, foreign.status_code, foreign.text)
            assert absent.status_code == 404, (method, path, absent.status_code, absent.text)
            assert {k: v for k, v in foreign.json().items() if k != "instance"} == {
                k: v for k, v in absent.json().items() if k != "instance"
            }, (method, path)
    assert client.get(f"/solicitacoes/{request_id}", headers=bruno).json() == before  # nothing changed


# -- listings -------------------------------------------------------------------------------------------------


def test_listings_tabs_counts_pages_and_the_csv(setup):
    world, pki, client = setup
    bruno, daniel = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, rw.DANIEL_CPF)
    ids = [rw.create_complete(client, bruno, pki) for _ in range(4)]
    for request_id in ids[:3]:
        rw.submit(client, bruno, request_id).raise_for_status()
    client.post(f"/solicitacoes/{ids[0]}/aprovacao", json={}, headers=daniel).raise_for_status()
    client.post(f"/solicitacoes/{ids[1]}/reprovacao", json={"motivo": "incompleta"}, headers=daniel).raise_for_status()
    page = client.get("/solicitacoes", params={"aba": "respostas", "page_size": 1}, headers=bruno).json()
    assert page["contagens"] == {"rascunhos": 1, "em_analise": 1, "respostas": 2}
    assert (page["total"], page["pages"], page["label"], len(page["items"])) == (2, 2, "1-1 de 2 itens", 1)
    second = client.get("/solicitacoes", params={"aba": "respostas", "page_size": 1, "page": 2}, headers=bruno).json()
    assert {page["items"][0]["id"], second["items"][0]["id"]} == {ids[0], ids[1]}
    assert client.get("/solicitacoes", headers=bruno).json()["items"][0]["id"] == ids[2]  # default tab: em análise
    problem(client.get("/solicitacoes", params={"page_size": 101}, headers=bruno), 422)
    # Analysts see every request once sent, never someone's draft.
    assert client.get("/analise/solicitacoes", headers=daniel).json()["contagens"] == {
        "rascunhos": 0,
        "em_analise": 1,
        "respostas": 2,
    }

    credentials = client.get("/credenciais", headers=bruno).json()
    assert credentials["contagens"] == {"homologacao": 1, "em_analise_producao": 0, "producao": 1}  # + his 3805/2024
    item = credentials["items"][0]
    assert (item["aba"], item["solicitante_id"], item["tipo_usuario"], item["solicitacao_id"], item["origem"]) == (
        "homologacao",
        client.get("/me", headers=bruno).json()["user"]["id"],
        "pessoa_fisica",
        ids[0],
        "outros",
    )
    assert item["operacoes"] == [{"operacao": "imunizacao-total-sp", "metodo": "GET", "situacao": "aprovada"}]
    old = client.get("/credenciais", params={"aba": "producao"}, headers=bruno).json()["items"]
    assert [(c["numero"], c["solicitante_id"], c["tipo_usuario"]) for c in old] == [("3805/2024", None, None)]
    everything = client.get("/analise/credenciais", params={"aba": "producao"}, headers=daniel).json()
    assert {c["numero"] for c in everything["items"]} == {"3804/2024", "3805/2024"}

    exported = client.get("/solicitacoes/exportacao", headers=bruno)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(int(r["id"]), r["situacao"]) for r in rows] == [
        (ids[0], "aprovada em homologação"),
        (ids[1], "reprovada"),
        (ids[2], "em análise"),
        (ids[3], "rascunho"),
    ]
    assert rows[0]["credencial"] == item["numero"] and rows[0]["operacoes"] == "imunizacao-total-sp"
    assert rows[0]["estabelecimento"] == "UBS SE" and rows[0]["sistema"] == "Vacivida SP"


def test_credential_numbers_are_sequential_per_year_and_skip_taken_ones(setup):
    world, pki, client = setup
    bruno, daniel = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, rw.DANIEL_CPF)
    year = year_now()
    from portal_api import crud

    with world.database.session() as session, session.begin():  # an admin-made credential holds 2/<year>
        crud.create_credential(
            session,
            number=f"2/{year}",
            cnes="0010456",
            uf="DF",
            system_name="legado",
            environment="producao",
            holder=crud.user_by_cpf(session, w.ANA_CPF),
            operations=[w.DF],
        )
    numbers = []
    for _ in range(3):
        request_id = rw.create_complete(client, bruno, pki)
        rw.submit(client, bruno, request_id).raise_for_status()
        numbers.append(
            client.post(f"/solicitacoes/{request_id}/aprovacao", json={}, headers=daniel).json()["credencial"]["numero"]
        )
    assert numbers == [f"3/{year}", f"4/{year}", f"5/{year}"]


# -- holder transfer ---------------------------------------------------------------------------------------------


def _claim(client, headers, number, why="Ana saiu da secretaria em outubro."):
    return client.post("/credenciais/titularidade", json={"numero_credencial": number, "justificativa": why}, headers=headers)


def test_acquiring_holdership_of_a_credential(setup):
    world, pki, client = setup
    ana, carla, eduarda = (w.bearer(client, world, cpf) for cpf in (w.ANA_CPF, w.CARLA_CPF, rw.EDUARDA_CPF))
    daniel = w.bearer(client, world, rw.DANIEL_CPF)
    # The same answer, byte for byte, for a credential, a missing number and one's own credential.
    existing, missing, own = (
        _claim(client, eduarda, "3804/2024"),
        _claim(client, eduarda, "9999/2024"),
        _claim(client, ana, "3804/2024"),
    )
    assert existing.status_code == missing.status_code == own.status_code == 202
    assert existing.content == missing.content == own.content
    per_request = ("date", "x-request-id")  # differ between any two answers
    assert {k: v for k, v in existing.headers.items() if k not in per_request} == {
        k: v for k, v in missing.headers.items() if k not in per_request
    }
    assert "Ana" not in existing.text and "id" not in existing.json()
    # The claimant's own list: the number and its state, never the holder nor whether it matched.
    mine = client.get("/credenciais/titularidade", headers=eduarda).json()["items"]
    assert sorted(t["numero_credencial"] for t in mine) == ["3804/2024", "9999/2024"]
    assert all(t["titular_anterior"] is None and t["credencial_encontrada"] is None and t["gestor_confere"] is None for t in mine)
    # A stranger's claim never blocks the real one: Carla's waits beside Eduarda's.
    assert _claim(client, carla, "3804/2024", "eu também").status_code == 202
    pending = client.get("/analise/titularidade", headers=daniel).json()["items"]
    assert len(pending) == 4
    transfer = next(
        t
        for t in pending
        if t["numero_credencial"] == "3804/2024" and t["credencial_encontrada"] and t["justificativa"].startswith("Ana saiu")
    )
    assert (transfer["titular_anterior"]["nome"], transfer["gestor_confere"]) == ("Ana Souza", False)
    unknown = next(t for t in pending if t["numero_credencial"] == "9999/2024")
    assert unknown["credencial_encontrada"] is False and unknown["titular_anterior"] is None
    problem(client.post(f"/analise/titularidade/{unknown['id']}/aprovacao", json={}, headers=daniel), 409)
    problem(client.post(f"/analise/titularidade/{transfer['id']}/aprovacao", json={}, headers=carla), 403)
    approved = client.post(
        f"/analise/titularidade/{transfer['id']}/aprovacao", json={"observacao": "ofício 12/2026"}, headers=daniel
    )
    assert approved.status_code == 200 and approved.json()["situacao"]["codigo"] == "aprovada"
    assert [h["acao"] for h in approved.json()["historico"]] == ["criar", "aprovar"]
    problem(client.post(f"/analise/titularidade/{transfer['id']}/reprovacao", json={"motivo": "tarde"}, headers=daniel), 409)
    # Eduarda holds it and reaches its files; Ana lost her access; Carla's permission is untouched.
    me = client.get("/me", headers=eduarda).json()["credentials"]
    assert [(c["number"], c["is_holder"]) for c in me] == [("3804/2024", True)]
    assert client.get(f"/operations/{w.DF}/years", headers=eduarda).status_code == 200
    assert client.get(f"/operations/{w.DF}/years", headers=ana).status_code == 404
    assert client.get(f"/operations/{w.DF}/years", headers=carla).status_code == 200


# -- the IP range of a credential -----------------------------------------------------------------------------------


def test_a_credential_used_from_outside_its_ip_range_is_refused_and_logged(setup):
    world, pki, client = setup
    bruno, daniel = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, rw.DANIEL_CPF)
    _, done = walk_to_production(client, world, pki, bruno, daniel)
    credential_id = done["credencial"]["id"]
    sp_state = world.file(w.SP_STATE, DAY)
    w.accept_terms(client, bruno, w.SP_STATE)
    assert client.get(f"/files/{sp_state.id}/content", headers=bruno).status_code == 200

    outside = {**bruno, "X-Forwarded-For": "200.130.6.1"}
    for path in (f"/files/{sp_state.id}/content", f"/files/{sp_state.id}", f"/operations/{w.SP_STATE}/years"):
        refused = problem(client.get(path, headers=outside), 403)
        assert refused["type"].endswith("fora-da-faixa-de-ip") and "200.130.6.1" in refused["detail"]
    # Credentials without a range (his older one) are not affected, nor are other users' 404s turned into 403s.
    assert client.get(f"/operations/{w.SP_CITY}/years", headers=outside).status_code == 200
    assert client.get(f"/operations/{w.DF}/years", headers=outside).status_code == 404
    # The hop left of the rightmost untrusted one is the client's own claim: ignored.
    spoofed = {**bruno, "X-Forwarded-For": f"{rw.INSIDE}, 200.130.6.1"}
    problem(client.get(f"/files/{sp_state.id}", headers=spoofed), 403)
    # Through two trusted proxies the client is still found.
    chained = {**bruno, "X-Forwarded-For": f"{rw.INSIDE}, 10.1.2.3"}
    assert client.get(f"/files/{sp_state.id}", headers=chained).status_code == 200
    with world.database.session() as session:
        refusals = session.scalars(sa.select(CredentialAccessRefusal).order_by(CredentialAccessRefusal.id)).all()
        assert [(r.credential_id, r.client_address, r.peer_address, r.method, r.path) for r in refusals] == [
            (credential_id, "200.130.6.1", rw.PROXY[0], "GET", f"/files/{sp_state.id}/content"),
            (credential_id, "200.130.6.1", rw.PROXY[0], "GET", f"/files/{sp_state.id}"),
            (credential_id, "200.130.6.1", rw.PROXY[0], "GET", f"/operations/{w.SP_STATE}/years"),
            (credential_id, "200.130.6.1", rw.PROXY[0], "GET", f"/files/{sp_state.id}"),
        ]
    assert download_log.verify(world.database.engine).entries == 1  # no refused byte was logged as sent

    # A forwarding header from a peer that is not a trusted proxy is ignored: the peer is the client.
    direct = rw.client_for(world, forwarded_for=rw.INSIDE)
    direct.app.state.services.settings = world.settings.model_copy(update={"trusted_proxies": []})
    with direct:
        problem(direct.get(f"/files/{sp_state.id}", headers=bruno), 403)
    direct.app.state.services.database.dispose()


# -- PostgreSQL -----------------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_migration_and_a_walk_on_postgres(tmp_path, postgres_url):
    world, pki = rw.build(tmp_path, postgres_url)
    client = rw.client_for(world)
    try:
        with client:
            bruno, daniel = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, rw.DANIEL_CPF)
            request_id, done = walk_to_production(client, world, pki, bruno, daniel)
            assert done["situacao"]["codigo"] == "producao" and done["credencial"]["ambiente"] == "producao"
            w.accept_terms(client, bruno, w.SP_STATE)
            sp_state = world.file(w.SP_STATE, DAY)
            assert (
                hashlib.sha256(client.get(f"/files/{sp_state.id}/content", headers=bruno).content).hexdigest() == sp_state.sha256
            )
            with world.database.session() as session:
                operations = session.execute(
                    sa.select(CredentialOperation.operation, CredentialOperation.status).where(
                        CredentialOperation.credential_id == done["credencial"]["id"]
                    )
                ).all()
                assert operations == [(w.SP_STATE, "aprovada")]
                assert session.scalar(sa.select(sa.func.count()).select_from(WorkflowTransition)) == 5
                for statement in ("UPDATE workflow_transition SET reason = 'x'", "TRUNCATE credential_access_refusal"):
                    with pytest.raises(sa.exc.DatabaseError, match="somente inclusão"):
                        session.execute(sa.text(statement))
                    session.rollback()
            from alembic.script import ScriptDirectory

            from serving import db as serving_db

            # At the head of the portal's migrations (0002_solicitacoes or a later one).
            script = ScriptDirectory.from_config(serving_db.alembic_config("portal_api", world.database.url))
            assert serving_db.current_revision("portal_api", world.database.engine) == script.get_current_head()
            assert script.get_revision("0002_solicitacoes") is not None
    finally:
        client.app.state.services.database.dispose()
        world.database.dispose()


# -- the catalogue, "Adicionar todos", and credentials of the other APIs ---------------------------------------------


def test_catalogue_and_adding_all_operations(setup):
    world, pki, client = setup
    bruno, daniel = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, rw.DANIEL_CPF)
    apis = {a["codigo"]: a for a in client.get("/catalogo/apis", headers=bruno).json()}
    assert {
        "cns",
        "rel",
        "ria",
        "vacinacao",
        "soa-bnafar",
        "esus-notifica",
        "sus-digital",
        "rac",
        "rira",
        "vacinacao-d1-csv",
    } == set(apis)
    assert "/fhir/r4/Patient GET" in apis["cns"]["operacoes"] and "/token POST" in apis["cns"]["operacoes"]
    assert "/contexto-atendimento POST" in apis["ria"]["operacoes"]
    assert apis["vacinacao-d1-csv"]["operacoes"] == ["imunizacao-total-<uf> GET", "imunizacao-total-<uf>-<ibge6> GET"]
    sp = client.get("/catalogo/apis/vacinacao-d1-csv/operacoes", params={"uf": "SP"}, headers=bruno).json()["operacoes"]
    from pipelines import reference

    municipios_sp = sorted(code for code, m in reference.municipios().items() if m.uf == "SP")
    assert sp == ["imunizacao-total-sp", *(f"imunizacao-total-sp-{code}" for code in municipios_sp)] and len(sp) == 646

    # "Adicionar todos" in the D-1 API needs the establishment (its UF) first.
    draft = client.post("/solicitacoes", json={}, headers=bruno).json()["id"]
    early = problem(
        client.patch(
            f"/solicitacoes/{draft}",
            headers=bruno,
            json={"api": {"codigo": "vacinacao-d1-csv", "versao": "1.0", "adicionar_todas": True}},
        ),
        422,
    )
    assert early["errors"][0]["field"] == "api.adicionar_todas"
    both = client.patch(
        f"/solicitacoes/{draft}",
        headers=bruno,
        json={
            "estabelecimento": {"cnes": rw.SP_MAIN},
            "api": {"codigo": "vacinacao-d1-csv", "versao": "1.0", "adicionar_todas": True},
        },
    )
    assert [o["operacao"] for o in both.json()["api"]["operacoes"]] == sp
    # A DF establishment under SP operations is refused, naming the establishment field.
    moved = problem(client.patch(f"/solicitacoes/{draft}", json={"estabelecimento": {"cnes": "0010456"}}, headers=bruno), 422)
    assert moved["errors"][0]["field"] == "estabelecimento.cnes" and "UF DF" in moved["errors"][0]["message"]

    # Another API: its credential is the same model, listed in "Gerenciar credenciais", never in the download API.
    request_id = rw.create_complete(client, bruno, pki, api={"codigo": "cns", "versao": "2.0", "adicionar_todas": True})
    rw.submit(client, bruno, request_id).raise_for_status()
    approved = client.post(
        f"/solicitacoes/{request_id}/aprovacao", json={"operacoes": ["/fhir/r4/Patient GET", "/token  POST"]}, headers=daniel
    )
    assert approved.status_code == 200, approved.text
    assert [(o["operacao"], o["metodo"], o["situacao"]) for o in approved.json()["api"]["operacoes"]] == [
        ("/token", "POST", "aprovada"),
        ("/fhir/r4/Patient", "GET", "aprovada"),
        ("/fhir/r4/Patient/{id}", "GET", "reprovada"),
    ]
    listed = client.get("/credenciais", headers=bruno).json()["items"]
    assert [(c["api"], c["numero"]) for c in listed] == [("cns", approved.json()["credencial"]["numero"])]
    me = client.get("/me", headers=bruno)
    assert me.status_code == 200 and [c["number"] for c in me.json()["credentials"]] == ["3805/2024"]
    assert client.get("/operations", headers=bruno).status_code == 200

    # The CNES lookup.
    assert problem(client.get("/estabelecimentos", headers=bruno), 422)["errors"][0]["message"].startswith(
        "CNES: informe o CNES ou o CNPJ"
    )
    assert len(client.get("/estabelecimentos", params={"cnpj": "00394700000108"}, headers=bruno).json()) == 4
    assert client.get("/estabelecimentos", params={"cnes": "7654321"}, headers=bruno).json() == []


# -- the migration ------------------------------------------------------------------------------------------------------


def _round_trip(url: str) -> None:
    from alembic import command

    from portal_api import crud
    from portal_api.core.db import Database, upgrade
    from serving import db as serving_db

    upgrade(url)
    database = Database(url)
    with database.session() as session, session.begin():
        holder = crud.create_user(session, cpf=w.ANA_CPF, name="Ana", email="ana@df.gov.br")
        crud.create_credential(
            session,
            number="1/2026",
            cnes="0010456",
            uf="DF",
            system_name="SI",
            environment="producao",
            holder=holder,
            operations=[w.DF],
        )
    config = serving_db.alembic_config("portal_api", url)
    command.downgrade(config, "0001_portal")
    assert serving_db.current_revision("portal_api", database.engine) == "0001_portal"
    assert "api" not in {c["name"] for c in sa.inspect(database.engine).get_columns("credential")}
    assert "credential_request" not in sa.inspect(database.engine).get_table_names()
    command.upgrade(config, "head")
    with database.engine.connect() as conn:  # the credential made before 0002 is a D-1 one without a range
        assert conn.execute(sa.text("select number, api, ip_range_start from credential")).all() == [
            ("1/2026", "vacinacao-d1-csv", None)
        ]
    database.dispose()


def test_migration_0002_downgrades_and_upgrades_with_data_on_sqlite(tmp_path):
    _round_trip(f"sqlite:///{tmp_path / 'catalog.db'}")


@pytest.mark.postgres
def test_migration_0002_downgrades_and_upgrades_with_data_on_postgres(postgres_url):
    _round_trip(postgres_url)


@pytest.mark.postgres
def test_concurrent_approvals_on_postgres_get_distinct_numbers_and_one_decision_each(postgres_url):
    """Eight analysts' sessions approving at once: eight numbers in sequence, no gap, no
    repeat; two approving the same request: one wins, the other is an invalid transition."""
    import threading

    from portal_api import crud
    from portal_api.core.db import Database, upgrade
    from portal_api.solicitacoes import schemas, service, workflow
    from portal_api.solicitacoes.models import CredentialRequest, RequestOperation

    upgrade(postgres_url)
    database = Database(postgres_url)
    with database.session() as session, session.begin():
        requester = crud.create_user(session, cpf=w.BRUNO_CPF, name="Bruno", email="b@sp.gov.br")
        analyst = crud.create_user(session, cpf=rw.DANIEL_CPF, name="Daniel", email="d@saude.gov.br")
        ids = []
        for _ in range(9):
            row = CredentialRequest(
                requester_user_id=requester.id,
                status="em_analise",
                api_code="vacinacao-d1-csv",
                api_version="1.0",
                est_cnes=rw.SP_MAIN,
                est_uf="SP",
                sistema=rw.sistema(),
            )
            session.add(row)
            session.flush()
            session.add(RequestOperation(request_id=row.id, operation=w.SP_STATE, position=0))
            ids.append(row.id)
    analyst_id = analyst.id
    results: dict[str, list] = {"numbers": [], "refused": []}
    barrier = threading.Barrier(10)

    def approve(request_id: int) -> None:
        with database.session() as session:
            row = session.get(CredentialRequest, request_id)
            barrier.wait()
            try:
                credential = service.approve(session, row, analyst_id, schemas.AprovacaoIn())
                session.commit()
                results["numbers"].append(credential.number)
            except workflow.InvalidTransition as exc:
                session.rollback()
                results["refused"].append(exc.current)

    threads = [threading.Thread(target=approve, args=(request_id,)) for request_id in [*ids[:8], ids[8], ids[8]]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    year = year_now()
    assert sorted(int(n.split("/")[0]) for n in results["numbers"]) == list(range(1, 10))
    assert all(n.endswith(f"/{year}") for n in results["numbers"]) and results["refused"] == ["homologacao"]
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(WorkflowTransition)) == 9
    database.dispose()


def test_a_homologacao_instance_serves_homologacao_credentials_within_their_range(tmp_path):
    """VACINA_D1_SERVED_ENVIRONMENT=homologacao (an instance publishing test data): the
    credential approved in homologação downloads there, from inside its IP range only; the
    produção credentials see nothing there."""
    world, pki = rw.build(tmp_path, served_environment="homologacao")
    client = rw.client_for(world)
    try:
        with client:
            bruno, daniel = w.bearer(client, world, w.BRUNO_CPF), w.bearer(client, world, rw.DANIEL_CPF)
            request_id = rw.create_complete(client, bruno, pki)
            rw.submit(client, bruno, request_id).raise_for_status()
            client.post(f"/solicitacoes/{request_id}/aprovacao", json={}, headers=daniel).raise_for_status()
            sp_state = world.file(w.SP_STATE, DAY)
            w.accept_terms(client, bruno, w.SP_STATE)
            assert (
                hashlib.sha256(client.get(f"/files/{sp_state.id}/content", headers=bruno).content).hexdigest() == sp_state.sha256
            )
            problem(client.get(f"/files/{sp_state.id}/content", headers={**bruno, "X-Forwarded-For": "177.10.0.1"}), 403)
            assert [o["operation"] for o in client.get("/operations", headers=bruno).json()] == [
                w.SP_STATE
            ]  # not 3805/2024 (produção)
            problem(client.get(f"/operations/{w.DF}/years", headers=w.bearer(client, world, w.ANA_CPF)), 404)
    finally:
        client.app.state.services.database.dispose()
        world.database.dispose()
