"""Issue 11, "reveal nothing": every operation of the OpenAPI document that takes an
object (a file, an operation, a request, a holder-transfer claim, an evidence file) is
called by four identities — a state user (DF), a municipality user (São Paulo city),
a user without credentials and an analyst — once with an object of another scope and
once with one that does not exist, with the same valid body. The two answers must be
the same: status and body (but the request path it echoes), headers that carry
meaning too. Every status seen must be documented for its operation."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.portal import requests_world as rw
from tests.portal import world as w

DAY = dt.date(2026, 11, 21)
MISSING_ID = 2_000_000_000
MISSING_OPERATION = "imunizacao-total-to-172100"  # a real municipality no credential here grants
BODIES = {
    ("/operations/{operation}/terms/acceptances", "post"): {"json": {"version": 1, "accepted": True}},
    ("/solicitacoes/{solicitacao_id}", "patch"): {"json": {"sistema": rw.sistema()}},
    ("/solicitacoes/{solicitacao_id}/estabelecimentos", "post"): {"json": {"cnes": "2077507"}},
    ("/solicitacoes/{solicitacao_id}/envio", "post"): {"json": {"versao_termos": 1, "aceito": True}},
    ("/solicitacoes/{solicitacao_id}/reprovacao", "post"): {"json": {"motivo": "não confere"}},
    ("/solicitacoes/{solicitacao_id}/reprovacao-producao", "post"): {"json": {"motivo": "não confere"}},
    ("/analise/titularidade/{pedido_id}/reprovacao", "post"): {"json": {"motivo": "não confere"}},
}
MEANINGFUL_HEADERS = ("content-type", "www-authenticate", "retry-after", "allow", "etag", "content-length")


@pytest.fixture
def setup(tmp_path):
    world, pki = rw.build(tmp_path)
    client = rw.client_for(world)
    with client:
        yield world, pki, client
    client.app.state.services.database.dispose()
    world.database.dispose()


def _strip(response) -> tuple:
    body = response.content
    if response.content and response.headers.get("content-type", "").startswith("application/problem+json"):
        problem = response.json()
        problem.pop("instance", None)
        body = problem
    headers = {h: response.headers.get(h) for h in MEANINGFUL_HEADERS}
    if headers["content-type"] == "application/problem+json":
        headers.pop("content-length")  # it counts the echoed path (instance), HEAD included
    return response.status_code, body, headers


def test_no_answer_differs_between_another_scopes_object_and_a_missing_one(setup):
    world, pki, client = setup
    ana, bruno = w.bearer(client, world, w.ANA_CPF), w.bearer(client, world, w.BRUNO_CPF)
    eduarda, daniel = w.bearer(client, world, rw.EDUARDA_CPF), w.bearer(client, world, rw.DANIEL_CPF)
    for headers, operation in ((ana, w.DF), (bruno, w.SP_CITY)):
        w.accept_terms(client, headers, operation)
    # Objects of each kind: Bruno's draft, a claim of Eduarda's, DF's and SP city's files.
    draft = rw.create_complete(client, bruno, pki)
    claim = client.post(
        "/credenciais/titularidade", json={"numero_credencial": "3805/2024", "justificativa": "sou eu"}, headers=eduarda
    )
    assert claim.status_code == 202
    claim_id = client.get("/credenciais/titularidade", headers=eduarda).json()["items"][0]["id"]
    df_file, sp_file = world.file(w.DF, DAY).id, world.file(w.SP_CITY, DAY).id
    identities = {  # who, and an object of another scope for each kind
        "uf": (ana, {"file_id": sp_file, "operation": w.SP_CITY, "solicitacao_id": draft, "pedido_id": claim_id}),
        "municipio": (bruno, {"file_id": df_file, "operation": w.DF, "solicitacao_id": None, "pedido_id": claim_id}),
        "sem credencial": (eduarda, {"file_id": df_file, "operation": w.DF, "solicitacao_id": draft, "pedido_id": None}),
        "analista": (daniel, {"file_id": sp_file, "operation": w.SP_STATE, "solicitacao_id": draft, "pedido_id": None}),
    }
    missing = {"file_id": MISSING_ID, "operation": MISSING_OPERATION, "solicitacao_id": MISSING_ID, "pedido_id": MISSING_ID}
    document = client.get("/openapi.json").json()
    compared = 0
    for path, methods in document["paths"].items():
        names = re.findall(r"{([a-z_]+)}", path)
        kinds = [n for n in names if n in missing]
        if not kinds:
            continue
        for method, operation in methods.items():
            documented = {int(code) for code in operation["responses"]}
            for who, (headers, theirs) in identities.items():
                if any(theirs[k] is None for k in kinds):
                    continue  # this identity may see that kind of object (its own)
                other = missing_path = path
                for name in names:
                    fixed = {"year": "2026", "month": "11", "evidencia_id": "1", "cnes": "2077493", "codigo": "vacinacao-d1-csv"}
                    other = other.replace("{" + name + "}", str(theirs.get(name, fixed.get(name))))
                    missing_path = missing_path.replace("{" + name + "}", str(missing.get(name, fixed.get(name))))
                body = BODIES.get((path, method), {"json": {}} if method in ("post", "put", "patch") else {})
                seen = client.request(method.upper(), other, headers=headers, **body)
                absent = client.request(method.upper(), missing_path, headers=headers, **body)
                assert _strip(seen) == _strip(absent), (who, method, path, seen.status_code, seen.text[:300], absent.text[:300])
                assert seen.status_code in documented, (who, method, path, seen.status_code, sorted(documented))
                assert seen.status_code < 500, (who, method, path, seen.text[:300])
                compared += 1
    assert compared > 60, compared
