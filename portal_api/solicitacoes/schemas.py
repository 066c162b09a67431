"""What the request workflow reads and answers (pydantic), and the Portuguese label of
every field, so each refusal names the field it refuses.

The form's rules that need nothing but the value itself (and the static catalogue and
IBGE reference) are validators here; the ones that need the database or the CNES
table (the establishment exists, operations of its UF, children of the same UF) are
in ``service`` and answer in the same format.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator
from validate_docbr import CNPJ, CNS, CPF

from portal_api import crud
from portal_api.core import ip_ranges
from portal_api.models import D1_CSV_API
from portal_api.schemas import Paging
from portal_api.solicitacoes import catalog

_CPF, _CNS, _CNPJ = CPF(), CNS(), CNPJ()
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
PERIODS: dict[str, tuple[str, str]] = {"manha": ("06:00", "12:00"), "tarde": ("12:00", "18:00"), "noite": ("18:00", "23:59")}
PERIOD_LABELS = {"manha": "manhã", "tarde": "tarde", "noite": "noite"}
ORIGINS = {"ministerio_saude": "Ministério da Saúde", "outros": "Outros"}
TEAM_TYPES = {"propria": "própria", "terceirizada": "terceirizada", "outros": "outros"}
REQUEST_TABS = {
    "rascunhos": ("rascunho",),
    "em_analise": ("em_analise", "em_analise_producao"),
    "respostas": ("homologacao", "reprovada", "producao", "reprovada_producao"),
}
CREDENTIAL_TABS = ("homologacao", "em_analise_producao", "producao")
MAX_OPERATIONS = 1000

if TYPE_CHECKING:
    ApiCode = str  # a Literal of the catalogue's codes, known at run time only
else:
    ApiCode = Literal.__getitem__(catalog.CODES)
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def today_brasilia() -> dt.date:
    from portal_api.api.present import BRASILIA

    return dt.datetime.now(BRASILIA).date()


def digits(text: str) -> str:
    return re.sub(r"\D", "", text or "")


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# -- the form ------------------------------------------------------------------------------------


class ApiIn(Input):
    """A API pedida, sua versão e as operações escolhidas (uma a uma, ou todas)."""

    codigo: ApiCode = Field(title="API", description="Código da API no catálogo (`GET /catalogo/apis`).")
    versao: str = Field(title="Versão da API", min_length=1, max_length=32, description="A versão vigente da API no catálogo.")
    adicionar_todas: bool = Field(
        False,
        title="Adicionar todas as operações",
        description='"Adicionar todos": todas as operações da API (na API D-1, as da UF do estabelecimento).',
    )
    operacoes: list[Annotated[str, StringConstraints(min_length=1, max_length=80)]] = Field(
        default_factory=list,
        max_length=MAX_OPERATIONS,
        validate_default=True,
        title="Operações",
        description="Operações escolhidas uma a uma, como no catálogo (`/fhir/r4/Patient GET`, `imunizacao-total-df`).",
    )

    @field_validator("versao")
    @classmethod
    def _current_version(cls, value: str, info: ValidationInfo) -> str:
        code = info.data.get("codigo")
        if code and value != catalog.get(code).version:
            raise ValueError(f"a versão vigente da API {catalog.get(code).name} é a {catalog.get(code).version}")
        return value

    @field_validator("operacoes")
    @classmethod
    def _known_operations(cls, values: list[str], info: ValidationInfo) -> list[str]:
        code = info.data.get("codigo")
        if not values and not info.data.get("adicionar_todas"):
            raise ValueError("escolha ao menos uma operação, ou use adicionar_todas")
        if not code:
            return values
        api = catalog.get(code)
        normalized: list[str] = []
        for number, value in enumerate(values, 1):
            name = catalog.normalize(api, value)
            if api.by_territory:
                try:
                    crud.parse_operation(name)
                except ValueError as exc:
                    raise ValueError(f"item {number}: {exc}") from None
            elif name not in api.operations:
                raise ValueError(f"item {number}: {value!r} não é uma operação da API {api.name}")
            if name in normalized:
                raise ValueError(f"item {number}: a operação {name} está repetida")
            normalized.append(name)
        return normalized


class EstabelecimentoIn(Input):
    """O estabelecimento principal, pelo CNES ou pelo CNPJ (telefone e e-mail editáveis)."""

    cnpj: str | None = Field(
        None,
        title="CNPJ do estabelecimento",
        pattern=r"^\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}$",
        description="CNPJ do estabelecimento ou da mantenedora (com ou sem pontuação).",
    )
    cnes: str | None = Field(
        None,
        title="CNES do estabelecimento",
        pattern=r"^\d{7}$",
        validate_default=True,
        description="CNES (7 dígitos). Informe o CNES ou o CNPJ.",
    )
    telefone: str | None = Field(
        None, title="Telefone do estabelecimento", max_length=20, description="DDD e número; substitui o da tabela CNES."
    )
    email: str | None = Field(None, title="E-mail do estabelecimento", max_length=254, description="Substitui o da tabela CNES.")

    @field_validator("cnpj")
    @classmethod
    def _cnpj_digits(cls, value: str | None) -> str | None:
        if value is None:
            return None
        number = digits(value)
        if not _CNPJ.validate(number):
            raise ValueError("dígito verificador inválido")
        return number

    @field_validator("cnes")
    @classmethod
    def _one_of(cls, value: str | None, info: ValidationInfo) -> str | None:
        has_cnpj = bool(info.data.get("cnpj"))
        if value and has_cnpj:
            raise ValueError("informe o CNES ou o CNPJ, não os dois")
        if not value and not has_cnpj and "cnpj" in info.data:
            raise ValueError("informe o CNES ou o CNPJ do estabelecimento")
        return value

    @field_validator("telefone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return valid_phone(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return valid_email(value)


def valid_phone(value: str | None) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[0-9()+\-.\s]+", value):
        raise ValueError("use só dígitos, espaços, parênteses e hífen")
    number = digits(value)
    if number.startswith("55") and len(number) in (12, 13):
        number = number[2:]
    if len(number) not in (10, 11) or not 11 <= int(number[:2]) <= 99:
        raise ValueError("informe DDD e número (10 ou 11 dígitos)")
    return number


def valid_email(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.lower()
    if not EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} não é um endereço de e-mail")
    return value


class GestorIn(Input):
    """O gestor responsável, vinculado ao CNES principal."""

    nome: Text200 = Field(title="Nome do gestor responsável")
    cns: str = Field(
        title="CNS do gestor responsável",
        pattern=r"^\d{3} ?\d{4} ?\d{4} ?\d{4}$",
        description="Cartão Nacional de Saúde (15 dígitos).",
    )
    cpf: str = Field(title="CPF do gestor responsável", pattern=r"^\d{3}\.?\d{3}\.?\d{3}-?\d{2}$")
    email: str | None = Field(None, title="E-mail do gestor responsável", max_length=254)

    @field_validator("cns")
    @classmethod
    def _cns(cls, value: str) -> str:
        number = digits(value)
        if not _CNS.validate(number):
            raise ValueError("dígito verificador inválido")
        return number

    @field_validator("cpf")
    @classmethod
    def _cpf(cls, value: str) -> str:
        number = digits(value)
        if len(set(number)) == 1 or not _CPF.validate(number):
            raise ValueError("dígito verificador inválido")
        return number

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return valid_email(value)


class PicoIn(Input):
    """Um período de pico de acessos."""

    periodo: Literal["manha", "tarde", "noite"] = Field(
        title="Período de pico", description="manha (06:00-12:00), tarde (12:00-18:00), noite (18:00-23:59)."
    )
    inicio: str = Field(title="Início do pico", pattern=TIME, description="HH:MM")
    fim: str = Field(title="Fim do pico", pattern=TIME, description="HH:MM, depois do início, dentro do período.")

    @field_validator("inicio")
    @classmethod
    def _start_in_period(cls, value: str, info: ValidationInfo) -> str:
        period = info.data.get("periodo")
        if period:
            low, high = PERIODS[period]
            if not low <= value < high:
                raise ValueError(f"o período {PERIOD_LABELS[period]} vai de {low} a {high}")
        return value

    @field_validator("fim")
    @classmethod
    def _end_after_start(cls, value: str, info: ValidationInfo) -> str:
        start, period = info.data.get("inicio"), info.data.get("periodo")
        if start and value <= start:
            raise ValueError(f"o fim ({value}) precisa ser depois do início ({start})")
        if period:
            low, high = PERIODS[period]
            if not low < value <= high:
                raise ValueError(f"o período {PERIOD_LABELS[period]} vai de {low} a {high}")
        return value


class SistemaIn(Input):
    """O sistema que vai usar a credencial."""

    nome: Text200 = Field(title="Nome do sistema")
    versao: str = Field(title="Versão do sistema", min_length=1, max_length=50)
    linguagem: str = Field(title="Linguagem de programação", min_length=1, max_length=100)
    arquitetura: str = Field(title="Arquitetura do sistema", min_length=1, max_length=100)
    banco_dados: str = Field(title="Banco de dados", min_length=1, max_length=100)
    banco_dados_versao: str = Field(title="Versão do banco de dados", min_length=1, max_length=50)
    resumo: str = Field(title="Resumo do sistema", min_length=1, max_length=400, description="No máximo 400 caracteres.")
    aplicacao_web: bool = Field(title="Aplicação web")
    ip_inicio: str = Field(
        title="IP inicial da faixa",
        min_length=2,
        max_length=45,
        description="Endereço público, IPv4 ou IPv6, de onde o sistema acessa as APIs.",
    )
    ip_fim: str = Field(
        title="IP final da faixa",
        min_length=2,
        max_length=45,
        description="Mesma família do inicial, maior ou igual a ele; faixa de no máximo /16 (IPv4) ou /48 (IPv6).",
    )
    tipo_equipe: Literal["propria", "terceirizada", "outros"] = Field(title="Tipo de equipe")
    atendimentos_registrados: int = Field(title="Atendimentos registrados", ge=0, le=10**10)
    data_atendimentos: dt.date = Field(
        title="Data dos atendimentos registrados", description="Data de referência da contagem (não pode ser futura)."
    )
    integracoes: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=50, title="Integrações com outros sistemas"
    )
    picos: list[PicoIn] = Field(default_factory=list, max_length=3, title="Períodos de pico")
    atendimentos_dia_minimo: int = Field(title="Atendimentos por dia (mínimo)", ge=0, le=10**8)
    atendimentos_dia_maximo: int = Field(title="Atendimentos por dia (máximo)", ge=0, le=10**8)
    acessos_pico: int = Field(title="Acessos no pico", ge=0, le=10**8, description="Acessos às APIs na hora de pico.")
    data_inicio: dt.date = Field(title="Data de início", description="Início do uso das APIs.")
    data_fim: dt.date = Field(title="Data de fim", description="Fim previsto (igual ou depois do início).")

    @field_validator("ip_inicio")
    @classmethod
    def _public_start(cls, value: str) -> str:
        return str(ip_ranges.parse_public(value))

    @field_validator("ip_fim")
    @classmethod
    def _public_range(cls, value: str, info: ValidationInfo) -> str:
        end = ip_ranges.parse_public(value)
        start = info.data.get("ip_inicio")
        if start:
            problem = ip_ranges.range_problem(ip_ranges.parse_public(start), end)
            if problem:
                raise ValueError(problem)
        return str(end)

    @field_validator("data_atendimentos")
    @classmethod
    def _not_future(cls, value: dt.date) -> dt.date:
        if value > today_brasilia():
            raise ValueError(f"{value:%d/%m/%Y} está no futuro")
        return value

    @field_validator("integracoes")
    @classmethod
    def _unique_integrations(cls, values: list[str]) -> list[str]:
        seen = set()
        for number, value in enumerate(values, 1):
            if value.lower() in seen:
                raise ValueError(f"item {number}: {value!r} está repetida")
            seen.add(value.lower())
        return values

    @field_validator("picos")
    @classmethod
    def _one_per_period(cls, values: list[PicoIn]) -> list[PicoIn]:
        seen = set()
        for value in values:
            if value.periodo in seen:
                raise ValueError(f"o período {PERIOD_LABELS[value.periodo]} aparece mais de uma vez")
            seen.add(value.periodo)
        return values

    @field_validator("atendimentos_dia_maximo")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("atendimentos_dia_minimo")
        if low is not None and value < low:
            raise ValueError(f"o máximo ({value}) é menor que o mínimo ({low})")
        return value

    @field_validator("data_fim")
    @classmethod
    def _end_not_before_start(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        start = info.data.get("data_inicio")
        if start is not None and value < start:
            raise ValueError(f"o fim ({value:%d/%m/%Y}) é anterior ao início ({start:%d/%m/%Y})")
        return value


class SolicitacaoIn(Input):
    """Seções do formulário da solicitação. Cada seção enviada é validada inteira e
    substitui a gravada; as ausentes ficam como estão."""

    origem: Literal["ministerio_saude", "outros"] | None = Field(
        None, title="Origem da solicitação", description="ministerio_saude (Ministério da Saúde) ou outros."
    )
    api: ApiIn | None = Field(None, title="API")
    estabelecimento: EstabelecimentoIn | None = Field(None, title="Estabelecimento")
    gestor: GestorIn | None = Field(None, title="Gestor responsável")
    sistema: SistemaIn | None = Field(None, title="Sistema")


# -- other inputs -------------------------------------------------------------------------------


class EstabelecimentoVinculadoIn(Input):
    """Um estabelecimento vinculado (da mesma UF do principal)."""

    cnes: str = Field(title="CNES do estabelecimento vinculado", pattern=r"^\d{7}$")


class EnvioIn(Input):
    """Envio para análise, com o aceite dos termos de uso da solicitação."""

    versao_termos: int = Field(
        title="Versão dos termos de uso", ge=1, le=1_000_000, description="A versão lida dos termos (`GET /solicitacoes/termos`)."
    )
    aceito: Literal[True] = Field(title="Li e aceito os termos de uso", description="Precisa ser `true`.")


class AprovacaoIn(Input):
    """Aprovação em homologação: emite a credencial."""

    operacoes: list[Annotated[str, StringConstraints(min_length=1, max_length=80)]] | None = Field(
        None,
        max_length=MAX_OPERATIONS,
        title="Operações aprovadas",
        description="As operações aprovadas (das pedidas); ausente: todas. As demais ficam reprovadas.",
    )
    observacao: str | None = Field(None, title="Observação", max_length=2000)


class DecisaoIn(Input):
    """Uma aprovação com observação opcional."""

    observacao: str | None = Field(None, title="Observação", max_length=2000)


class ReprovacaoIn(Input):
    """Uma reprovação: o motivo é obrigatório."""

    motivo: str = Field(title="Motivo da reprovação", min_length=1, max_length=2000)

    @field_validator("motivo")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("informe o motivo")
        return value.strip()


class TitularidadeIn(Input):
    """ "Adquirir titularidade de credencial"."""

    numero_credencial: str = Field(
        title="Número da credencial", pattern=r"^[0-9]{1,6}/[0-9]{4}$", description="Como `3804/2024`."
    )
    justificativa: str = Field(
        title="Justificativa",
        min_length=1,
        max_length=2000,
        description="Por que o pedido (por exemplo, o titular anterior deixou o estabelecimento).",
    )

    @field_validator("justificativa")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("informe a justificativa")
        return value.strip()


class AprovacaoTitularidadeIn(Input):
    """Aprovação da troca de titular."""

    manter_titular_anterior: bool = Field(
        False,
        title="Manter o acesso do titular anterior",
        description="Por padrão o titular anterior perde o acesso à credencial.",
    )
    observacao: str | None = Field(None, title="Observação", max_length=2000)


# -- labels -----------------------------------------------------------------------------------------

PARAMETER_LABELS = {
    "solicitacao_id": "Número da solicitação",
    "evidencia_id": "Número da evidência",
    "pedido_id": "Número do pedido de titularidade",
    "cnes": "CNES",
    "cnpj": "CNPJ",
    "codigo": "API",
    "uf": "UF",
    "aba": "Aba",
    "page": "Página",
    "page_size": "Itens por página",
    "arquivo": "Arquivo",
    "senha": "Senha do certificado",
}


def _collect(model: type[BaseModel], prefix: str, into: dict[str, str]) -> None:
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if info.title:
            into[path] = info.title
        annotation = info.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            inner = getattr(candidate, "__args__", (candidate,))
            for klass in (candidate, *inner):
                if isinstance(klass, type) and issubclass(klass, BaseModel):
                    _collect(klass, f"{path}.", into)


def _labels() -> dict[str, str]:
    labels: dict[str, str] = {}
    for model in (
        SolicitacaoIn,
        EnvioIn,
        AprovacaoIn,
        DecisaoIn,
        ReprovacaoIn,
        TitularidadeIn,
        AprovacaoTitularidadeIn,
        EstabelecimentoVinculadoIn,
    ):
        _collect(model, "", labels)
    return labels


BODY_LABELS = _labels()


def label(location: str, field: str) -> str:
    """The Portuguese name of a field path (``sistema.picos.1.fim`` → "Fim do pico
    (item 2)"); the path itself when it has none."""
    parts = field.split(".")
    names = [p for p in parts if not p.isdigit()]
    items = [int(p) + 1 for p in parts if p.isdigit()]
    key = ".".join(names)
    text = BODY_LABELS.get(key) if location == "body" else None
    text = text or PARAMETER_LABELS.get(key) or BODY_LABELS.get(key) or key
    for item in items:
        text += f" (item {item})"
    return text


# -- outputs ---------------------------------------------------------------------------------------


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Codigo(Out):
    codigo: str
    rotulo: str = Field(description="Como o portal exibe.")


class ApiOut(Out):
    """Uma API do catálogo."""

    codigo: str
    nome: str
    versao: str
    data: dt.date = Field(description="Data da versão.")
    descricao: str
    por_territorio: bool = Field(description="Se as operações dependem da UF (a API D-1: uma por UF e município).")
    operacoes: list[str] = Field(description="As operações (na API D-1, os modelos `imunizacao-total-<uf>` e `-<ibge6>`).")


class OperacoesOut(Out):
    """As operações concretas de uma API (na D-1, as da UF pedida)."""

    codigo: str
    uf: str | None
    operacoes: list[str]


class EstabelecimentoOut(Out):
    """Um estabelecimento da tabela CNES."""

    cnes: str
    cnpj: str | None
    cnpj_mantenedora: str | None = None
    razao_social: str | None
    fantasia: str | None
    ibge6: str | None
    municipio: str | None
    uf: str | None
    telefone: str | None
    email: str | None


class TermosSolicitacaoOut(Out):
    """Os termos de uso vigentes da solicitação de credencial."""

    versao: int
    texto: str
    texto_sha256: str
    publicado_em: dt.datetime


class OperacaoSituacaoOut(Out):
    operacao: str = Field(description="Como o catálogo escreve: `imunizacao-total-df`, `/fhir/r4/Patient`.")
    metodo: str = Field(description="Método HTTP (GET, POST...).")
    situacao: str = Field(description="solicitada, aprovada, reprovada ou suspensa.")


class ApiEscolhidaOut(Out):
    codigo: str
    nome: str
    versao: str
    data: dt.date
    operacoes: list[OperacaoSituacaoOut]


class EstabelecimentoPrincipalOut(Out):
    cnes: str
    cnpj: str | None
    razao_social: str | None
    fantasia: str | None
    ibge6: str | None
    municipio: str | None
    uf: str
    telefone: str | None
    email: str | None


class VinculadoOut(Out):
    cnes: str
    razao_social: str | None
    fantasia: str | None
    ibge6: str | None
    municipio: str | None
    uf: str
    incluido_por: Literal["manual", "lista"] = Field(description="Incluído um a um (manual) ou por lista importada.")


class GestorOut(Out):
    nome: str
    cns: str
    cpf: str
    email: str | None
    cnes: str | None = Field(description="O CNES principal a que o gestor está vinculado.")


class CertificadoOut(Out):
    """O certificado público guardado (a chave privada e a senha nunca são guardadas)."""

    formato: Literal["pem", "der", "pfx"] = Field(description="Como foi enviado: .cer PEM ou DER, ou .pfx (A1).")
    titular: str = Field(description="Sujeito do certificado (RFC 4514).")
    tipo_titular: Literal["pessoa_fisica", "pessoa_juridica", "aplicacao"]
    cpf: str | None = Field(description="CPF do titular (otherName 2.16.76.1.3.1).")
    cnpj: str | None = Field(description="CNPJ do titular (otherName 2.16.76.1.3.3).")
    responsavel_cpf: str | None = Field(description="CPF do responsável (otherName 2.16.76.1.3.4).")
    responsavel_nome: str | None = Field(description="Nome do responsável (otherName 2.16.76.1.3.2).")
    emissor: str
    numero_serie: str = Field(description="Número de série (hexadecimal).")
    valido_de: dt.datetime
    valido_ate: dt.datetime
    sha256: str = Field(description="SHA-256 do certificado (DER).")
    cadeia: list[str] = Field(description="Sujeitos do certificado até a AC raiz confiável.")
    pem: str = Field(description="O certificado público em PEM.")


class EvidenciaOut(Out):
    id: int
    nome: str
    tipo: Literal["application/pdf", "image/png"] = Field(description="Reconhecido pelo conteúdo.")
    tamanho: int
    sha256: str
    enviada_em: dt.datetime
    submetida_em: dt.datetime | None = Field(description="Quando foi para análise (envio para produção).")


class AceiteOut(Out):
    versao: int
    aceito_em: dt.datetime
    usuario_id: int


class TermosSituacaoOut(Out):
    versao_vigente: int
    aceite: AceiteOut | None = Field(description="O aceite registrado no envio.")


class CredencialResumoOut(Out):
    id: int
    numero: str
    ambiente: Literal["homologacao", "producao"]
    situacao: str


class UsuarioOut(Out):
    id: int
    nome: str


class TransicaoOut(Out):
    acao: str
    de: str | None
    para: str
    ator: UsuarioOut
    papel: Literal["solicitante", "analista"]
    motivo: str | None
    em: dt.datetime


class SolicitacaoOut(Out):
    """A solicitação inteira, como a tela de resumo a mostra."""

    id: int
    situacao: Codigo
    solicitante: UsuarioOut
    criada_em: dt.datetime
    atualizada_em: dt.datetime
    enviada_em: dt.datetime | None
    origem: Codigo | None
    api: ApiEscolhidaOut | None
    estabelecimento: EstabelecimentoPrincipalOut | None
    estabelecimentos_vinculados: list[VinculadoOut]
    gestor: GestorOut | None
    sistema: dict[str, Any] | None = Field(description="A seção do sistema como foi gravada.")
    certificado: CertificadoOut | None
    evidencias: list[EvidenciaOut]
    termos: TermosSituacaoOut
    credencial: CredencialResumoOut | None
    pendencias: list[str] = Field(description="O que falta para enviar (no rascunho).")
    acoes_disponiveis: list[str] = Field(description="As ações que quem chama pode executar agora.")
    historico: list[TransicaoOut]


class SolicitacaoItemOut(Out):
    id: int
    situacao: Codigo
    solicitante: UsuarioOut
    api: str | None
    cnes: str | None
    estabelecimento: str | None
    sistema: str | None
    criada_em: dt.datetime
    enviada_em: dt.datetime | None
    credencial: str | None = Field(description="Número da credencial emitida.")


class Contagens(Out):
    rascunhos: int
    em_analise: int
    respostas: int


class SolicitacaoPage(Paging):
    """ "Solicitações": uma aba por vez, com as contagens de todas."""

    aba: Literal["rascunhos", "em_analise", "respostas"]
    contagens: Contagens
    items: list[SolicitacaoItemOut]


class ImportacaoRecusaOut(Out):
    linha: int
    valor: str
    motivo: str


class ImportacaoOut(Out):
    """O resultado da importação de uma lista de CNES."""

    incluidos: list[VinculadoOut]
    recusados: list[ImportacaoRecusaOut]
    total_vinculados: int


class CredencialGestaoOut(Out):
    """Uma credencial em "Gerenciar credenciais"."""

    id: int
    numero: str
    aba: Literal["homologacao", "em_analise_producao", "producao"]
    ambiente: Literal["homologacao", "producao"]
    situacao: str
    api: str
    cnes: str
    uf: str
    sistema: str
    solicitante_id: int | None = Field(description="Quem pediu a credencial (id do usuário).")
    titular: UsuarioOut
    tipo_usuario: Literal["pessoa_fisica", "pessoa_juridica", "aplicacao"] | None = Field(
        description="Pelo certificado da solicitação: e-CPF (pessoa física), e-CNPJ (pessoa jurídica) ou aplicação."
    )
    origem: str | None
    solicitacao_id: int | None
    operacoes: list[OperacaoSituacaoOut]
    criada_em: dt.datetime


class ContagensCredenciais(Out):
    homologacao: int
    em_analise_producao: int
    producao: int


class CredencialPage(Paging):
    """ "Gerenciar credenciais": uma aba por vez, com as contagens de todas."""

    aba: Literal["homologacao", "em_analise_producao", "producao"]
    contagens: ContagensCredenciais
    items: list[CredencialGestaoOut]


class TitularidadeOut(Out):
    """Um pedido de titularidade."""

    id: int
    numero_credencial: str
    situacao: Codigo
    solicitante: UsuarioOut
    titular_anterior: UsuarioOut | None = Field(
        None,
        description="Só para o analista: o titular atual da credencial (nulo se o número não é uma credencial ativa de outro titular).",
    )
    credencial_encontrada: bool | None = Field(
        None, description="Só para o analista: se o número é uma credencial ativa de outro titular."
    )
    justificativa: str
    gestor_confere: bool | None = Field(
        None, description="Só para o analista: se o CPF de quem pede é o do gestor responsável da solicitação da credencial."
    )
    criado_em: dt.datetime
    historico: list[TransicaoOut]


class TitularidadeRecebida(Out):
    """A resposta a um pedido de titularidade: a mesma, exista ou não a credencial."""

    mensagem: str


class TitularidadePage(Paging):
    items: list[TitularidadeOut]


__all__ = [name for name in dir() if name[0].isupper()] + ["label", "digits", "D1_CSV_API"]
