"""A month of a territory's daily indicators, read back from the published indicator
tables (the ``indicadores.parquet`` representation of each current UF file).

A UF operation reads its own tables; a municipality operation reads its UF's tables
and keeps its municipality's rows (the tables count every record once per
perspective, by municipality, so a municipality's figures are exactly its rows).
Days without a current publication are listed as such: a missing or half-empty day
is what the chart is for.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import re
from dataclasses import dataclass, field

import pyarrow.compute as pc
import pyarrow.parquet as pq

from serving.catalog import Catalog
from serving.storage import Storage

KIND = "indicadores.parquet"
TOP_VACCINES = 5
_OPERATION = re.compile(r"^imunizacao-total-([a-z]{2})(?:-([0-9]{6}))?$")


@dataclass
class DayIndicators:
    day: dt.date
    published: bool = False
    doses_ocorrencia: int | None = None
    doses_residencia: int | None = None


@dataclass
class MonthIndicators:
    operation: str
    uf: str
    ibge6: str | None
    year: int
    month: int
    days: list[DayIndicators]
    top_vaccines: list[tuple[str, str, int]] = field(default_factory=list)  # (co_vacina, sg_vacina, doses)

    @property
    def total_ocorrencia(self) -> int:
        return sum(d.doses_ocorrencia or 0 for d in self.days)


def territory(operation: str) -> tuple[str, str | None]:
    match = _OPERATION.match(operation)
    if match is None:
        raise ValueError(f"operação fora do padrão: {operation!r}")
    return match.group(1).upper(), match.group(2)


def month_indicators(storage: Storage, catalog: Catalog, operation: str, year: int, month: int) -> MonthIndicators:
    uf, ibge6 = territory(operation)
    uf_operation = f"imunizacao-total-{uf.lower()}"
    last = calendar.monthrange(year, month)[1]
    days = {dt.date(year, month, d): DayIndicators(dt.date(year, month, d)) for d in range(1, last + 1)}
    records = catalog.files(uf_operation, year, month, offset=0, limit=last).items
    representations = catalog.representations([r.id for r in records])
    by_vaccine: dict[tuple[str, str], int] = {}
    for record in records:
        rep = next((r for r in representations.get(record.id, []) if r.kind == KIND), None)
        if rep is None:
            continue
        table = pq.read_table(io.BytesIO(storage.get_bytes(rep.object_key)))
        if ibge6 is not None:
            table = table.filter(pc.equal(table["co_municipio"], ibge6))
        perspective = table["perspectiva"]
        doses = table["qt_doses"]
        occurrence = table.filter(pc.equal(perspective, "ocorrencia"))
        entry = days[record.day]
        entry.published = True
        entry.doses_ocorrencia = int(pc.sum(occurrence["qt_doses"]).as_py() or 0)
        entry.doses_residencia = int(pc.sum(pc.filter(doses, pc.equal(perspective, "residencia"))).as_py() or 0)
        for row in occurrence.group_by(["co_vacina", "sg_vacina"]).aggregate([("qt_doses", "sum")]).to_pylist():
            key = (row["co_vacina"] or "", row["sg_vacina"] or "")
            by_vaccine[key] = by_vaccine.get(key, 0) + int(row["qt_doses_sum"])
    top = sorted(by_vaccine.items(), key=lambda item: (-item[1], item[0]))[:TOP_VACCINES]
    return MonthIndicators(operation, uf, ibge6, year, month, list(days.values()), [(code, sigla, n) for (code, sigla), n in top])
