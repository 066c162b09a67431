"""Every field of the request form, refused one at a time: the answer is a 422 problem
whose error names that field (its path) and whose message starts with the field's
Portuguese name. The expected names are written here, not read from the code.

Each case changes one field of a valid form (Bruno's São Paulo system) and PATCHes the
whole form onto a draft; a refused PATCH leaves the draft untouched.
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from tests.portal import requests_world as rw
from tests.portal import world as w

DROP = object()
TOMORROW = (dt.datetime.now(dt.timezone(dt.timedelta(hours=-3))).date() + dt.timedelta(days=2)).isoformat()

# (id, {path: value or DROP}, field the error names, its Portuguese name, a fragment of the reason)
CASES = [
    ("origem", {"origem": "estadual"}, "origem", "Origem da solicitação", "deve ser um de"),
    ("secao-desconhecida", {"extra": {}}, "extra", "extra", "campo não permitido"),
    # API
    ("api-codigo", {"api.codigo": "rnds-xyz"}, "api.codigo", "API", "deve ser um de"),
    ("api-versao", {"api.versao": "9.9"}, "api.versao", "Versão da API", "versão vigente"),
    ("api-operacoes-vazia", {"api.operacoes": []}, "api.operacoes", "Operações", "ao menos uma operação"),
    ("api-operacao-uf-inexistente", {"api.operacoes": ["imunizacao-total-zz"]}, "api.operacoes", "Operações", "UF ZZ não existe"),
    (
        "api-operacao-municipio-de-outra-uf",
        {"api.operacoes": ["imunizacao-total-sp-530010"]},
        "api.operacoes",
        "Operações",
        "não é da UF SP",
    ),
    (
        "api-operacao-repetida",
        {"api.operacoes": ["imunizacao-total-sp", "imunizacao-total-sp GET"]},
        "api.operacoes",
        "Operações",
        "repetida",
    ),
    ("api-operacao-de-outra-api", {"api.operacoes": ["/fhir/r4/Patient GET"]}, "api.operacoes", "Operações", "operação inválida"),
    (
        "api-operacao-uf-do-estabelecimento",
        {"api.operacoes": ["imunizacao-total-rj"]},
        "api.operacoes.0",
        "Operações (item 1)",
        "é da UF RJ, e o estabelecimento principal é da UF SP",
    ),
    (
        "api-adicionar-todas",
        {"api.adicionar_todas": "talvez"},
        "api.adicionar_todas",
        "Adicionar todas as operações",
        "verdadeiro ou falso",
    ),
    # establishment
    ("cnes-formato", {"estabelecimento.cnes": "123"}, "estabelecimento.cnes", "CNES do estabelecimento", "formato inválido"),
    (
        "cnes-inexistente",
        {"estabelecimento.cnes": "1234567"},
        "estabelecimento.cnes",
        "CNES do estabelecimento",
        "não encontrado na tabela CNES",
    ),
    ("cnes-e-cnpj", {"estabelecimento.cnpj": "46177400000178"}, "estabelecimento.cnes", "CNES do estabelecimento", "não os dois"),
    (
        "cnes-nem-cnpj",
        {"estabelecimento.cnes": DROP},
        "estabelecimento.cnes",
        "CNES do estabelecimento",
        "informe o CNES ou o CNPJ",
    ),
    (
        "cnpj-digito",
        {"estabelecimento.cnes": DROP, "estabelecimento.cnpj": "46177400000179"},
        "estabelecimento.cnpj",
        "CNPJ do estabelecimento",
        "dígito verificador",
    ),
    (
        "cnpj-ambiguo",
        {"estabelecimento.cnes": DROP, "estabelecimento.cnpj": "00394700000108", "api.operacoes": ["imunizacao-total-df"]},
        "estabelecimento.cnpj",
        "CNPJ do estabelecimento",
        "há 4 estabelecimentos com este CNPJ",
    ),
    (
        "telefone-curto",
        {"estabelecimento.telefone": "3397-2000"},
        "estabelecimento.telefone",
        "Telefone do estabelecimento",
        "DDD",
    ),
    (
        "telefone-letras",
        {"estabelecimento.telefone": "(11) 3397-ABCD"},
        "estabelecimento.telefone",
        "Telefone do estabelecimento",
        "só dígitos",
    ),
    (
        "email-estabelecimento",
        {"estabelecimento.email": "ubs.se.prefeitura"},
        "estabelecimento.email",
        "E-mail do estabelecimento",
        "não é um endereço de e-mail",
    ),
    # responsible manager
    ("gestor-nome", {"gestor.nome": " "}, "gestor.nome", "Nome do gestor responsável", "pelo menos 1"),
    ("gestor-cns-digito", {"gestor.cns": "755902948264655"}, "gestor.cns", "CNS do gestor responsável", "dígito verificador"),
    ("gestor-cns-formato", {"gestor.cns": "7559"}, "gestor.cns", "CNS do gestor responsável", "formato inválido"),
    ("gestor-cpf-digito", {"gestor.cpf": "111.444.777-36"}, "gestor.cpf", "CPF do gestor responsável", "dígito verificador"),
    ("gestor-cpf-repetido", {"gestor.cpf": "11111111111"}, "gestor.cpf", "CPF do gestor responsável", "dígito verificador"),
    ("gestor-cpf-ausente", {"gestor.cpf": DROP}, "gestor.cpf", "CPF do gestor responsável", "campo obrigatório"),
    ("gestor-email", {"gestor.email": "bruno@"}, "gestor.email", "E-mail do gestor responsável", "não é um endereço de e-mail"),
    # system
    ("sistema-nome", {"sistema.nome": ""}, "sistema.nome", "Nome do sistema", "pelo menos 1"),
    ("sistema-versao", {"sistema.versao": "1." * 26}, "sistema.versao", "Versão do sistema", "no máximo 50"),
    ("sistema-linguagem", {"sistema.linguagem": ""}, "sistema.linguagem", "Linguagem de programação", "pelo menos 1"),
    ("sistema-arquitetura", {"sistema.arquitetura": 5}, "sistema.arquitetura", "Arquitetura do sistema", "deve ser um texto"),
    ("sistema-banco", {"sistema.banco_dados": None}, "sistema.banco_dados", "Banco de dados", "deve ser um texto"),
    (
        "sistema-banco-versao",
        {"sistema.banco_dados_versao": DROP},
        "sistema.banco_dados_versao",
        "Versão do banco de dados",
        "campo obrigatório",
    ),
    ("sistema-resumo", {"sistema.resumo": "a" * 401}, "sistema.resumo", "Resumo do sistema", "no máximo 400"),
    ("sistema-web", {"sistema.aplicacao_web": "talvez"}, "sistema.aplicacao_web", "Aplicação web", "verdadeiro ou falso"),
    ("ip-inicio-privado", {"sistema.ip_inicio": "10.1.2.3"}, "sistema.ip_inicio", "IP inicial da faixa", "privado"),
    (
        "ip-inicio-invalido",
        {"sistema.ip_inicio": "200.130.5.256"},
        "sistema.ip_inicio",
        "IP inicial da faixa",
        "não é um endereço IPv4 nem IPv6",
    ),
    ("ip-inicio-link-local", {"sistema.ip_inicio": "fe80::1"}, "sistema.ip_inicio", "IP inicial da faixa", "link local"),
    ("ip-fim-loopback", {"sistema.ip_fim": "127.0.0.1"}, "sistema.ip_fim", "IP final da faixa", "loopback"),
    ("ip-fim-multicast", {"sistema.ip_fim": "224.0.0.9"}, "sistema.ip_fim", "IP final da faixa", "multicast"),
    ("ip-fim-documentacao", {"sistema.ip_fim": "2001:db8::1"}, "sistema.ip_fim", "IP final da faixa", "privado ou reservado"),
    ("ip-fim-antes-do-inicio", {"sistema.ip_fim": "200.130.4.255"}, "sistema.ip_fim", "IP final da faixa", "anterior ao início"),
    ("ip-familias", {"sistema.ip_fim": "2804:14c::1"}, "sistema.ip_fim", "IP final da faixa", "mesma família"),
    (
        "ip-faixa-com-rede-especial",
        {"sistema.ip_inicio": "191.255.255.200", "sistema.ip_fim": "192.0.1.10"},
        "sistema.ip_fim",
        "IP final da faixa",
        "inclui a rede não pública 192.0.0.0/24",
    ),
    (
        "ip-faixa-grande",
        {"sistema.ip_inicio": "200.0.0.0", "sistema.ip_fim": "200.1.0.0"},
        "sistema.ip_fim",
        "IP final da faixa",
        "maior que um /16",
    ),
    ("tipo-equipe", {"sistema.tipo_equipe": "mista"}, "sistema.tipo_equipe", "Tipo de equipe", "deve ser um de"),
    (
        "atendimentos-registrados",
        {"sistema.atendimentos_registrados": -1},
        "sistema.atendimentos_registrados",
        "Atendimentos registrados",
        "maior ou igual a 0",
    ),
    (
        "data-atendimentos-futura",
        {"sistema.data_atendimentos": TOMORROW},
        "sistema.data_atendimentos",
        "Data dos atendimentos registrados",
        "está no futuro",
    ),
    (
        "data-atendimentos-formato",
        {"sistema.data_atendimentos": "31/10/2026"},
        "sistema.data_atendimentos",
        "Data dos atendimentos registrados",
        "data inválida",
    ),
    (
        "integracoes-repetidas",
        {"sistema.integracoes": ["SI-PNI", "si-pni"]},
        "sistema.integracoes",
        "Integrações com outros sistemas",
        "repetida",
    ),
    (
        "integracao-vazia",
        {"sistema.integracoes": ["e-SUS APS", ""]},
        "sistema.integracoes.1",
        "Integrações com outros sistemas (item 2)",
        "pelo menos 1",
    ),
    (
        "picos-demais",
        {"sistema.picos": [{"periodo": "manha", "inicio": "08:00", "fim": "09:00"}] * 4},
        "sistema.picos",
        "Períodos de pico",
        "no máximo 3",
    ),
    (
        "picos-periodo-repetido",
        {"sistema.picos.1.periodo": "manha", "sistema.picos.1.inicio": "09:00", "sistema.picos.1.fim": "11:00"},
        "sistema.picos",
        "Períodos de pico",
        "manhã aparece mais de uma vez",
    ),
    (
        "pico-periodo",
        {"sistema.picos.0.periodo": "madrugada"},
        "sistema.picos.0.periodo",
        "Período de pico (item 1)",
        "deve ser um de",
    ),
    (
        "pico-inicio-formato",
        {"sistema.picos.0.inicio": "25:00"},
        "sistema.picos.0.inicio",
        "Início do pico (item 1)",
        "formato inválido",
    ),
    (
        "pico-inicio-fora-do-periodo",
        {"sistema.picos.0.inicio": "05:30"},
        "sistema.picos.0.inicio",
        "Início do pico (item 1)",
        "vai de 06:00 a 12:00",
    ),
    (
        "pico-fim-antes-do-inicio",
        {"sistema.picos.1.fim": "12:30"},
        "sistema.picos.1.fim",
        "Fim do pico (item 2)",
        "depois do início",
    ),
    (
        "pico-fim-fora-do-periodo",
        {"sistema.picos.0.fim": "12:30"},
        "sistema.picos.0.fim",
        "Fim do pico (item 1)",
        "vai de 06:00 a 12:00",
    ),
    (
        "atendimentos-minimo",
        {"sistema.atendimentos_dia_minimo": "muitos"},
        "sistema.atendimentos_dia_minimo",
        "Atendimentos por dia (mínimo)",
        "número inteiro",
    ),
    (
        "atendimentos-maximo-menor",
        {"sistema.atendimentos_dia_maximo": 100},
        "sistema.atendimentos_dia_maximo",
        "Atendimentos por dia (máximo)",
        "menor que o mínimo",
    ),
    ("acessos-pico", {"sistema.acessos_pico": -5}, "sistema.acessos_pico", "Acessos no pico", "maior ou igual a 0"),
    ("data-inicio", {"sistema.data_inicio": "2026-13-01"}, "sistema.data_inicio", "Data de início", "data inválida"),
    ("data-fim-antes", {"sistema.data_fim": "2026-11-30"}, "sistema.data_fim", "Data de fim", "anterior ao início"),
    ("sistema-campo-extra", {"sistema.observacao": "x"}, "sistema.observacao", "sistema.observacao", "campo não permitido"),
]


def _set(data: dict, path: str, value) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is DROP:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value


@pytest.fixture(scope="module")
def draft(tmp_path_factory):
    world, pki = rw.build(tmp_path_factory.mktemp("campos"))
    client = rw.client_for(world)
    with client:
        headers = w.bearer(client, world, w.BRUNO_CPF)
        created = client.post("/solicitacoes", json={}, headers=headers)
        assert created.status_code == 201, created.text
        yield client, headers, created.json()
    client.app.state.services.database.dispose()
    world.database.dispose()


def test_the_valid_form_is_accepted_whole(draft):
    client, headers, created = draft
    response = client.post("/solicitacoes", json=rw.form(), headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["pendencias"] == ["certificado digital"]


@pytest.mark.parametrize("changes, field, name, reason", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_invalid_field_is_refused_naming_it(draft, changes, field, name, reason):
    client, headers, created = draft
    data = copy.deepcopy(rw.form())
    for path, value in changes.items():
        _set(data, path, value)
    response = client.patch(f"/solicitacoes/{created['id']}", json=data, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert [e["field"] for e in body["errors"]] == [field], body
    error = body["errors"][0]
    assert error["location"] == "body" and error["message"].startswith(f"{name}: "), error
    assert reason in error["message"], error
    assert name in body["detail"]
    # Nothing of the refused form was kept.
    after = client.get(f"/solicitacoes/{created['id']}", headers=headers).json()
    assert (after["origem"], after["api"], after["estabelecimento"], after["gestor"], after["sistema"]) == (None,) * 5


def test_every_field_of_the_form_has_a_case():
    """The cases above cover every field of every section (so a new field needs a case)."""
    from portal_api.solicitacoes.schemas import SolicitacaoIn

    covered = {
        case[2].split(".")[0] if "." not in case[2] else ".".join(p for p in case[2].split(".") if not p.isdigit())
        for case in CASES
    }
    expected = {"origem"}
    for section in ("api", "estabelecimento", "gestor", "sistema"):
        model = SolicitacaoIn.model_fields[section].annotation.__args__[0]
        expected |= {f"{section}.{name}" for name in model.model_fields}
    expected |= {"sistema.picos.periodo", "sistema.picos.inicio", "sistema.picos.fim"}
    assert expected - covered == set()


# -- the other bodies of the workflow -------------------------------------------------------------------


OTHER_CASES = [
    (
        "vinculado-formato",
        "POST",
        "/solicitacoes/{id}/estabelecimentos",
        {"cnes": "20774"},
        "cnes",
        "CNES do estabelecimento vinculado",
        "formato inválido",
    ),
    (
        "vinculado-outra-uf",
        "POST",
        "/solicitacoes/{id}/estabelecimentos",
        {"cnes": "0010456"},
        "cnes",
        "CNES do estabelecimento vinculado",
        "é da UF DF",
    ),
    (
        "vinculado-inexistente",
        "POST",
        "/solicitacoes/{id}/estabelecimentos",
        {"cnes": "7654321"},
        "cnes",
        "CNES do estabelecimento vinculado",
        "não encontrado",
    ),
    (
        "envio-versao",
        "POST",
        "/solicitacoes/{id}/envio",
        {"versao_termos": 0, "aceito": True},
        "versao_termos",
        "Versão dos termos de uso",
        "maior ou igual a 1",
    ),
    (
        "envio-aceite",
        "POST",
        "/solicitacoes/{id}/envio",
        {"versao_termos": 1, "aceito": False},
        "aceito",
        "Li e aceito os termos de uso",
        "deve ser um de",
    ),
    (
        "titularidade-numero",
        "POST",
        "/credenciais/titularidade",
        {"numero_credencial": "3804-2024", "justificativa": "x"},
        "numero_credencial",
        "Número da credencial",
        "formato inválido",
    ),
    (
        "titularidade-justificativa",
        "POST",
        "/credenciais/titularidade",
        {"numero_credencial": "3804/2024", "justificativa": "  "},
        "justificativa",
        "Justificativa",
        "pelo menos 1",
    ),
    ("lista-paginada", "GET", "/solicitacoes?page=0", None, "page", "Página", "maior ou igual a 1"),
    ("aba", "GET", "/credenciais?aba=todas", None, "aba", "Aba", "deve ser um de"),
    ("id-da-solicitacao", "GET", "/solicitacoes/2147483648", None, "solicitacao_id", "Número da solicitação", "menor ou igual a"),
    ("operacoes-uf", "GET", "/catalogo/apis/vacinacao-d1-csv/operacoes?uf=XX", None, "uf", "UF", "deve ser um de"),
    ("operacoes-sem-uf", "GET", "/catalogo/apis/vacinacao-d1-csv/operacoes", None, "uf", "UF", "informe a UF"),
]


@pytest.mark.parametrize("method, path, body, field, name, reason", [c[1:] for c in OTHER_CASES], ids=[c[0] for c in OTHER_CASES])
def test_the_other_inputs_are_refused_naming_the_field(draft, method, path, body, field, name, reason):
    client, headers, _ = draft
    complete = client.post("/solicitacoes", json=rw.form(), headers=headers).json()["id"]
    response = client.request(method, path.format(id=complete), json=body, headers=headers)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert (
        [e["field"] for e in errors] == [field]
        and errors[0]["message"].startswith(f"{name}: ")
        and reason in errors[0]["message"]
    ), errors
