"""The catalogue of the Portal de Serviços' APIs a credential can be requested for:
each with its version, the date of that version and its service operations.

The D-1 vaccination CSV API is the one this project serves: its operations are
exactly the ones the download API authorises (``imunizacao-total-<uf>`` and
``imunizacao-total-<uf>-<ibge6>``, for real UFs and municipalities), so its list is
built from ``pipelines.reference`` for a UF. The other APIs are requested and analysed
here like any other; their operation lists are the service operations the portal
shows for them (kept here as data: DATASUS maintains the real catalogue, and a new
version of an API is one more entry).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

from pipelines import contract, reference
from portal_api.models import D1_CSV_API

D1_METHOD = "GET"


@dataclass(frozen=True)
class Api:
    code: str
    name: str
    version: str
    date: dt.date
    description: str
    operations: tuple[str, ...]  # "<path or name> <METHOD>"; the D-1 API lists templates

    @property
    def by_territory(self) -> bool:
        return self.code == D1_CSV_API


_FHIR_TOKEN = "/token POST"
_CONTEXTO = "/contexto-atendimento POST"

APIS: tuple[Api, ...] = (
    Api(
        "cns",
        "CNS — Cadastro Nacional de Usuários do SUS",
        "2.0",
        dt.date(2024, 3, 1),
        "Consulta e identificação de usuários do SUS pelo CNS ou CPF.",
        (_FHIR_TOKEN, "/fhir/r4/Patient GET", "/fhir/r4/Patient/{id} GET"),
    ),
    Api(
        "rel",
        "REL — Resultado de Exame Laboratorial",
        "1.0",
        dt.date(2023, 9, 1),
        "Envio de resultados de exames laboratoriais à RNDS.",
        (_FHIR_TOKEN, "/fhir/r4/Bundle POST", "/fhir/r4/Bundle/{id} PUT", _CONTEXTO),
    ),
    Api(
        "ria",
        "RIA — Registro de Imunobiológico Administrado",
        "2.1",
        dt.date(2024, 6, 1),
        "Envio de registros de vacinação (rotina e campanha) à RNDS.",
        (_FHIR_TOKEN, "/fhir/r4/Bundle POST", "/fhir/r4/Bundle/{id} PUT", "/fhir/r4/Immunization GET", _CONTEXTO),
    ),
    Api(
        "vacinacao",
        "Vacinação — consulta do histórico vacinal",
        "1.2",
        dt.date(2024, 2, 1),
        "Consulta das vacinas de um cidadão registradas na RNDS.",
        (_FHIR_TOKEN, _CONTEXTO, "/fhir/r4/Immunization GET", "/fhir/r4/Bundle GET"),
    ),
    Api(
        "soa-bnafar",
        "SOA-BNAFAR — Base Nacional da Assistência Farmacêutica",
        "3.0",
        dt.date(2023, 11, 1),
        "Envio de entradas, saídas, dispensações e posição de estoque de medicamentos.",
        ("/bnafar/entrada POST", "/bnafar/saida POST", "/bnafar/dispensacao POST", "/bnafar/posicao-estoque POST"),
    ),
    Api(
        "esus-notifica",
        "e-SUS Notifica",
        "1.0",
        dt.date(2023, 5, 1),
        "Notificação de casos de síndrome gripal e outros agravos.",
        (_FHIR_TOKEN, "/notificacoes POST", "/notificacoes GET"),
    ),
    Api(
        "sus-digital",
        "SUS Digital",
        "1.0",
        dt.date(2024, 8, 1),
        "Serviços do programa SUS Digital para estados e municípios.",
        (_FHIR_TOKEN, "/fhir/r4/Patient GET", _CONTEXTO),
    ),
    Api(
        "rac",
        "RAC — Registro de Atendimento Clínico",
        "1.1",
        dt.date(2024, 4, 1),
        "Envio de registros de atendimento clínico à RNDS.",
        (_FHIR_TOKEN, "/fhir/r4/Bundle POST", "/fhir/r4/Bundle/{id} PUT", _CONTEXTO),
    ),
    Api(
        "rira",
        "RIRA — Registro de Imunobiológico e Reação Adversa",
        "1.0",
        dt.date(2024, 7, 1),
        "Envio de eventos supostamente atribuíveis à vacinação ou imunização.",
        (_FHIR_TOKEN, "/fhir/r4/Bundle POST", _CONTEXTO),
    ),
    Api(
        D1_CSV_API,
        "Vacinação D-1 — arquivos CSV",
        "1.0",
        dt.date(2026, 11, 22),
        "Os registros de vacinação do dia anterior em arquivos CSV por UF e município (este portal).",
        (f"imunizacao-total-<uf> {D1_METHOD}", f"imunizacao-total-<uf>-<ibge6> {D1_METHOD}"),
    ),
)
BY_CODE = {api.code: api for api in APIS}
CODES = tuple(BY_CODE)


def get(code: str) -> Api:
    return BY_CODE[code]


@lru_cache(maxsize=32)
def d1_operations(uf: str) -> tuple[str, ...]:
    """Every operation the download API can authorise in a UF: the state's file, then
    one per municipality (IBGE order)."""
    uf = uf.upper()
    municipios = sorted(code for code, m in reference.municipios().items() if m.uf == uf)
    return (contract.state_operation(uf), *(contract.municipality_operation(uf, code) for code in municipios))


def operations(api: Api, uf: str | None) -> tuple[str, ...]:
    """The concrete operations of an API (the D-1 one needs the UF)."""
    if api.by_territory:
        return d1_operations(uf) if uf else ()
    return api.operations


def normalize(api: Api, operation: str) -> str:
    """An operation as stored: D-1 ones by their name (``imunizacao-total-df``, the
    method ``GET`` accepted and dropped), the others as the catalogue writes them."""
    text = " ".join((operation or "").split())
    if api.by_territory and text.upper().endswith(" " + D1_METHOD):
        text = text[: -len(D1_METHOD) - 1]
    return text


def display(api_code: str | None, operation: str) -> tuple[str, str]:
    """(name, method) as the portal shows an operation."""
    if api_code == D1_CSV_API:
        return operation, D1_METHOD
    name, _, method = operation.rpartition(" ")
    return (name, method) if name else (operation, "")
