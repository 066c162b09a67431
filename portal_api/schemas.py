"""What the API reads and answers (pydantic), with Portuguese descriptions for the
OpenAPI document."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TokenOut(Out):
    """Token de acesso de curta duração (OAuth 2.0, client credentials)."""

    access_token: str = Field(description="Envie como `Authorization: Bearer <access_token>`.")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Segundos até o token expirar.", ge=0)


class UserOut(Out):
    """Quem está autenticado."""

    id: int
    name: str = Field(description="Nome do usuário.")
    cpf: str = Field(description="CPF mascarado, como `***.456.789-**`.", examples=["***.456.789-**"])
    email: str


class OperationOut(Out):
    """Uma operação de uma credencial e sua situação."""

    operation: str = Field(description="Nome da operação, como `imunizacao-total-df`.")
    status: str = Field(description="Situação da operação na credencial (aprovada, solicitada, reprovada, suspensa).")
    uf: str = Field(description="UF do território.")
    ibge6: str | None = Field(description="Código IBGE (6 dígitos) do município, nas operações municipais.")
    territory: str = Field(description="Nome do território (UF ou município/UF).")
    accessible: bool = Field(description="Se esta operação dá acesso a arquivos agora (credencial ativa e operação aprovada).")


class CredentialOut(Out):
    """Uma credencial (o sistema de um estabelecimento) a que o usuário tem acesso."""

    id: int
    number: str = Field(description="Número da credencial, como `3804/2024`.")
    cnes: str = Field(description="CNES do estabelecimento (7 dígitos).")
    uf: str
    system_name: str = Field(description="Nome do sistema.")
    environment: Literal["homologacao", "producao"] = Field(description="Ambiente da credencial.")
    status: str = Field(description="Situação da credencial (ativa, suspensa, revogada).")
    is_holder: bool = Field(description="Se o usuário é o titular da credencial.")
    operations: list[OperationOut]


class MeOut(Out):
    """O usuário autenticado e suas credenciais."""

    user: UserOut
    credentials: list[CredentialOut]


class AccessibleOperationOut(Out):
    """Uma operação que o usuário pode consultar, com a situação dos termos de uso."""

    operation: str
    uf: str
    ibge6: str | None
    territory: str
    credential_number: str = Field(description="A credencial que dá acesso a esta operação.")
    terms_version: int | None = Field(description="Versão atual dos termos de uso da operação.")
    terms_accepted: bool = Field(description="Se o usuário já aceitou a versão atual dos termos.")


class YearsOut(Out):
    operation: str
    years: list[int] = Field(description="Anos com arquivos publicados, do mais recente ao mais antigo.")


class MonthsOut(Out):
    operation: str
    year: int
    months: list[int] = Field(description="Meses (1-12) com arquivos publicados, do mais recente ao mais antigo.")


class DownloadOut(Out):
    """Um download registrado: quem e quando."""

    id: int = Field(description="Posição da entrada no registro encadeado.")
    user_name: str
    user_cpf: str = Field(description="CPF mascarado, como `***.456.789-**`.")
    downloaded_at: dt.datetime = Field(description="Data e hora (ISO 8601, horário de Brasília).")
    downloaded_at_local: str = Field(description="Data e hora como exibidas no portal: `DD/MM/AAAA HH:MM:SS`.")
    file_id: int = Field(description="A versão do arquivo baixada.")
    file_version: int
    representation: Literal["csv.gz", "csv", "parquet"] = Field(
        description="O que foi entregue: o arquivo comprimido, o CSV ou o Parquet tipado."
    )
    delivery: Literal["stream", "redirect", "x-accel"] = Field(
        description="Entregue pela API (`stream`), por URL pré-assinada do armazenamento (`redirect`) ou pelo nginx à frente "
        "da API, depois de autorizada e registrada por ela (`x-accel`)."
    )
    range: str | None = Field(description="O intervalo de bytes pedido (`bytes=início-fim`), quando foi uma continuação.")


class FileOut(Out):
    """Um arquivo do dia, com seu registro de downloads."""

    id: int
    operation: str
    day: dt.date = Field(description="Dia de entrada dos registros na RNDS.")
    version: int = Field(description="Versão do arquivo (uma nova a cada republicação do dia).")
    is_current: bool = Field(description="Se esta é a versão atual do arquivo.")
    name: str = Field(description="Nome do arquivo, como `imunizacao-total-df_2026-11-21.csv.gz`.")
    rows: int = Field(description="Registros no arquivo.")
    size: int = Field(description="Tamanho do arquivo comprimido, em bytes (o que se baixa).")
    size_csv: int = Field(description="Tamanho do CSV descomprimido, em bytes.")
    sha256: str = Field(description="SHA-256 do arquivo baixado (.csv.gz); também é o ETag.")
    sha256_csv: str = Field(description="SHA-256 do CSV descomprimido.")
    published_at: dt.datetime
    download_url: str = Field(description="Caminho do download.")
    downloads: list[DownloadOut] = Field(description="Os downloads mais recentes deste arquivo (todas as versões do dia).")
    downloads_total: int = Field(description="Total de downloads registrados deste arquivo.")


class Paging(Out):
    total: int = Field(description="Total de itens.")
    page: int = Field(description="Página atual (a partir de 1).")
    page_size: int = Field(description="Itens por página.")
    pages: int = Field(description="Total de páginas.")
    first_item: int = Field(description="Posição do primeiro item desta página (0 se vazia).")
    last_item: int = Field(description="Posição do último item desta página (0 se vazia).")
    label: str = Field(description="Como o portal exibe: `1-10 de 100 itens`.")


class FilePage(Paging):
    """Arquivos de um mês, do dia mais recente ao mais antigo."""

    operation: str
    year: int
    month: int
    items: list[FileOut]


class DownloadPage(Paging):
    """O registro de downloads de um arquivo, do mais recente ao mais antigo."""

    file_id: int
    items: list[DownloadOut]


class TermsOut(Out):
    """A versão atual dos termos de uso de uma operação."""

    operation: str
    version: int
    text: str
    text_sha256: str
    published_at: dt.datetime
    accepted: bool = Field(description="Se o usuário aceitou esta versão.")
    accepted_at: dt.datetime | None = Field(description="Quando o usuário aceitou esta versão.")


class TermsAcceptanceIn(BaseModel):
    """ "Li e aceito os termos de uso" para uma versão."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=1_000_000, description="A versão lida (a atual; outra é recusada com 409).")
    accepted: Literal[True] = Field(description="Precisa ser `true`: li e aceito os termos de uso.")


class TermsAcceptanceOut(Out):
    operation: str
    version: int
    accepted_at: dt.datetime


class RefreshOut(Out):
    """Pedido de reprocessamento aceito pelo orquestrador."""

    run_id: str = Field(description="Id da execução no Dagster.")
    status: Literal["lancado"] = "lancado"
    file_id: int
    operation: str
    day: dt.date
    uf: str = Field(description="O dia é reprocessado para a UF inteira (e seus municípios).")
    partition_key: str = Field(description="Partição do job: `AAAA-MM-DD|UF`.", examples=["2026-11-21|DF"])


class HealthOut(Out):
    status: Literal["ok"] = "ok"


class IndicatorDayOut(Out):
    """Um dia do mês nos indicadores."""

    date: dt.date = Field(description="Dia de entrada na RNDS.")
    published: bool = Field(description="Se o dia tem publicação corrente (falso: dia ausente).")
    doses_ocorrencia: int | None = Field(description="Doses aplicadas no território (estabelecimento nele); nulo sem publicação.")
    doses_residencia: int | None = Field(
        description="Doses de residentes no território, aplicadas onde for; nulo sem publicação."
    )


class VaccineCountOut(Out):
    co_vacina: str = Field(description="Código do imunobiológico.")
    sg_vacina: str = Field(description="Sigla do imunobiológico.")
    doses: int = Field(description="Doses aplicadas no território no mês.")


class IndicatorsOut(Out):
    """A série do mês de uma operação: doses por dia e as vacinas mais aplicadas, contadas uma vez por registro
    (registros `final`, sem excluídos), das tabelas de indicadores publicadas com os arquivos."""

    operation: str
    uf: str
    ibge6: str | None = Field(description="Município da operação municipal; nulo na operação da UF.")
    year: int
    month: int
    total_ocorrencia: int = Field(description="Doses aplicadas no território no mês.")
    days: list[IndicatorDayOut]
    top_vacinas: list[VaccineCountOut]
    chart_url: str = Field(description="O gráfico do mês em SVG (desenhado no servidor).")
