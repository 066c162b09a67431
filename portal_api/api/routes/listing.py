"""The "Download CSV" listing: operation → year → month → one file per day.

Always scoped: an operation the caller's credentials do not grant is 404, the same
answer as an operation that does not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from portal_api import charts, crud, schemas
from portal_api.api import present
from portal_api.api.deps import ScopeDep, ServicesDep, SessionDep, operation_in_scope, release
from portal_api.core import problems
from portal_api.models import OPERATION_PATTERN
from serving import indicators as published_indicators
from serving.storage import StorageError

router = APIRouter(tags=["arquivos"])

PAGE_SIZE_MAX = 100
OperationPath = Annotated[
    str, Path(pattern=OPERATION_PATTERN, max_length=64, description="Nome da operação, como `imunizacao-total-df`.")
]
YearPath = Annotated[int, Path(ge=2000, le=2100, description="Ano (AAAA).")]
MonthPath = Annotated[int, Path(ge=1, le=12, description="Mês (1-12).")]


@router.get(
    "/operations/{operation}/years",
    response_model=schemas.YearsOut,
    summary="Anos com arquivos",
    description="Os anos em que a operação tem arquivos publicados, do mais recente ao mais antigo.",
    responses=problems.responses(401, 404, 422, 503),
)
def years(operation: OperationPath, services: ServicesDep, scope: ScopeDep) -> schemas.YearsOut:
    operation_in_scope(operation, scope)
    return schemas.YearsOut(operation=operation, years=services.database.catalog.years(operation))


@router.get(
    "/operations/{operation}/years/{year}/months",
    response_model=schemas.MonthsOut,
    summary="Meses com arquivos",
    description="Os meses do ano em que a operação tem arquivos publicados, do mais recente ao mais antigo.",
    responses=problems.responses(401, 404, 422, 503),
)
def months(operation: OperationPath, year: YearPath, services: ServicesDep, scope: ScopeDep) -> schemas.MonthsOut:
    operation_in_scope(operation, scope)
    return schemas.MonthsOut(operation=operation, year=year, months=services.database.catalog.months(operation, year))


@router.get(
    "/operations/{operation}/years/{year}/months/{month}/files",
    response_model=schemas.FilePage,
    summary="Arquivos do mês",
    description=(
        "Um arquivo por dia (a versão atual), do dia mais recente ao mais antigo, paginado como no portal "
        '("Exibir 10 | 1-10 de 100 itens | Página N"). Cada arquivo traz data, nome, registros, tamanho, SHA-256 '
        "e os downloads mais recentes (nome, CPF mascarado, data e hora); o registro completo está em "
        "`GET /files/{file_id}/downloads`."
    ),
    responses=problems.responses(401, 404, 422, 503),
)
def files(
    operation: OperationPath,
    year: YearPath,
    month: MonthPath,
    services: ServicesDep,
    session: SessionDep,
    scope: ScopeDep,
    page: Annotated[int, Query(ge=1, le=100_000, description="Página (a partir de 1).")] = 1,
    page_size: Annotated[int | None, Query(ge=1, le=PAGE_SIZE_MAX, description="Itens por página (máximo 100).")] = None,
) -> schemas.FilePage:
    operation_in_scope(operation, scope)
    size = page_size or services.settings.page_size_default
    listing = services.database.catalog.files(operation, year, month, offset=(page - 1) * size, limit=size)
    logs = crud.downloads_of_days(
        session, operation, [record.day for record in listing.items], per_day=services.settings.log_entries_per_file
    )
    release(session)  # in this thread, before the answer is built and sent (issue 11)
    items = [present.file(record, *logs[record.day]) for record in listing.items]
    return schemas.FilePage(
        operation=operation,
        year=year,
        month=month,
        items=items,
        **present.paging(listing.total, page, size, len(items)),
    )


# -- indicators --------------------------------------------------------------------------------

YearQuery = Annotated[int, Query(ge=2000, le=2100, description="Ano (AAAA).")]
MonthQuery = Annotated[int, Query(ge=1, le=12, description="Mês (1-12).")]


def month_indicators_of(services, operation: str, year: int, month: int) -> published_indicators.MonthIndicators:
    """The month's indicators of an operation already checked to be in scope."""
    return published_indicators.month_indicators(services.storage, services.database.catalog, operation, year, month)


def _month_indicators(services, operation: str, year: int, month: int) -> published_indicators.MonthIndicators:
    try:
        return month_indicators_of(services, operation, year, month)
    except StorageError:
        raise problems.ProblemError(503, "O armazenamento de arquivos está indisponível; tente novamente.") from None


@router.get(
    "/operations/{operation}/indicadores",
    response_model=schemas.IndicatorsOut,
    summary="Indicadores do mês",
    description=(
        "Doses por dia do mês e as vacinas mais aplicadas no território da operação, das tabelas de indicadores "
        "publicadas com os arquivos (cada registro contado uma vez; `entered-in-error` e excluídos fora). Dias sem "
        "publicação aparecem com `published: false`. Escopo como na listagem: 404 fora dele."
    ),
    responses=problems.responses(401, 404, 422, 503),
)
def indicators(
    operation: OperationPath, year: YearQuery, month: MonthQuery, services: ServicesDep, scope: ScopeDep
) -> schemas.IndicatorsOut:
    operation_in_scope(operation, scope)
    data = _month_indicators(services, operation, year, month)
    return schemas.IndicatorsOut(
        operation=operation,
        uf=data.uf,
        ibge6=data.ibge6,
        year=year,
        month=month,
        total_ocorrencia=data.total_ocorrencia,
        days=[
            schemas.IndicatorDayOut(
                date=d.day,
                published=d.published,
                doses_ocorrencia=d.doses_ocorrencia,
                doses_residencia=d.doses_residencia,
            )
            for d in data.days
        ],
        top_vacinas=[schemas.VaccineCountOut(co_vacina=c, sg_vacina=s, doses=n) for c, s, n in data.top_vaccines],
        chart_url=f"/operations/{operation}/indicadores/grafico.svg?year={year}&month={month}",
    )


@router.get(
    "/operations/{operation}/indicadores/grafico.svg",
    summary="Gráfico do mês (SVG)",
    description="As doses por dia do mês e as vacinas mais aplicadas, em SVG desenhado no servidor (sem CDN nem script).",
    response_class=Response,
    responses={
        200: {"description": "O gráfico.", "content": {"image/svg+xml": {"schema": {"type": "string"}}}},
        **problems.responses(401, 404, 422, 503),
    },
)
def indicators_chart(
    operation: OperationPath, year: YearQuery, month: MonthQuery, services: ServicesDep, scope: ScopeDep
) -> Response:
    operation_in_scope(operation, scope)
    svg = charts.doses_chart_svg(_month_indicators(services, operation, year, month))
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, no-store"})
