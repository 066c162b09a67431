"""Charts drawn on the server as SVG: nothing loaded from a CDN, no script, readable
by a screen reader (``role="img"`` with a title and a description listing the
figures), and the same picture in every browser.

``doses_chart_svg`` draws a month of a territory's daily indicators: one bar per
day with the doses applied in the territory (occurrence), days without a
publication marked as such (a missing or half-empty day shows at a glance), and
the month's top vaccines below.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from serving.indicators import MonthIndicators

MONTHS = (
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
)
WIDTH = 760
PLOT_TOP = 44
PLOT_HEIGHT = 180
LEFT = 64
RIGHT = 16
BAR_COLOR = "#1351b4"  # gov.br blue
MISSING_COLOR = "#b0b0b0"
TEXT_COLOR = "#333333"
ROW = 22


def _number(value: int) -> str:
    return f"{value:,}".replace(",", ".")


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value:
            return top
    return value


def doses_chart_svg(month: MonthIndicators, *, title: str | None = None) -> str:
    days = month.days
    label = title or f"Doses aplicadas por dia — {MONTHS[month.month - 1]} de {month.year} — {month.operation}"
    peak = _nice_max(max((d.doses_ocorrencia or 0 for d in days), default=0))
    plot_width = WIDTH - LEFT - RIGHT
    slot = plot_width / max(1, len(days))
    bar = max(2.0, slot * 0.7)
    base = PLOT_TOP + PLOT_HEIGHT
    top = month.top_vaccines
    height = base + 40 + (28 + ROW * len(top) if top else 24)
    missing = [d.day.day for d in days if not d.published]
    summary = (
        f"Total no mês: {_number(month.total_ocorrencia)} doses aplicadas no território. "
        + (f"Dias sem publicação: {', '.join(map(str, missing))}. " if missing else "Todos os dias publicados. ")
        + "Por dia: "
        + "; ".join(f"{d.day.day}: {_number(d.doses_ocorrencia or 0) if d.published else 'sem publicação'}" for d in days)
        + "."
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" aria-labelledby="grafico-titulo grafico-descricao" '
        f'font-family="Rawline, Raleway, Arial, sans-serif" font-size="12" data-chart="doses-por-dia">',
        f'<title id="grafico-titulo">{escape(label)}</title>',
        f'<desc id="grafico-descricao">{escape(summary)}</desc>',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold" fill="{TEXT_COLOR}">{escape(label)}</text>',
        f'<text x="{LEFT}" y="36" fill="{TEXT_COLOR}">Total: {_number(month.total_ocorrencia)} doses '
        f"(ocorrência no território; registros finais, sem excluídos)</text>",
    ]
    for fraction in (0, 0.5, 1):
        y = base - PLOT_HEIGHT * fraction
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dddddd"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{TEXT_COLOR}">{_number(int(peak * fraction))}</text>'
        )
    for i, d in enumerate(days):
        x = LEFT + i * slot + (slot - bar) / 2
        if d.published:
            h = PLOT_HEIGHT * (d.doses_ocorrencia or 0) / peak if peak else 0
            out.append(
                f'<rect class="dia" data-dia="{d.day.isoformat()}" data-doses="{d.doses_ocorrencia}" x="{x:.1f}" '
                f'y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{BAR_COLOR}">'
                f"<title>{d.day.strftime('%d/%m/%Y')}: {_number(d.doses_ocorrencia or 0)} doses</title></rect>"
            )
        else:
            out.append(
                f'<rect class="dia sem-publicacao" data-dia="{d.day.isoformat()}" x="{x:.1f}" y="{base - 6}" '
                f'width="{bar:.1f}" height="6" fill="{MISSING_COLOR}">'
                f"<title>{d.day.strftime('%d/%m/%Y')}: sem publicação</title></rect>"
            )
        if len(days) <= 31 and (d.day.day == 1 or d.day.day % 5 == 0):
            out.append(f'<text x="{x + bar / 2:.1f}" y="{base + 14}" text-anchor="middle" fill="{TEXT_COLOR}">{d.day.day}</text>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}" stroke="{TEXT_COLOR}"/>')
    legend_y = base + 32
    out.append(f'<rect x="{LEFT}" y="{legend_y - 9}" width="10" height="10" fill="{BAR_COLOR}"/>')
    out.append(f'<text x="{LEFT + 14}" y="{legend_y}" fill="{TEXT_COLOR}">doses no dia</text>')
    out.append(f'<rect x="{LEFT + 110}" y="{legend_y - 9}" width="10" height="10" fill="{MISSING_COLOR}"/>')
    out.append(f'<text x="{LEFT + 124}" y="{legend_y}" fill="{TEXT_COLOR}">dia sem publicação</text>')
    if top:
        y0 = legend_y + 26
        out.append(f'<text x="{LEFT}" y="{y0}" font-weight="bold" fill="{TEXT_COLOR}">Vacinas mais aplicadas no mês</text>')
        most = max(n for _, _, n in top) or 1
        for i, (code, sigla, n) in enumerate(top):
            y = y0 + 8 + i * ROW
            w = (plot_width - 200) * n / most
            name = sigla or code or "sem código"
            out.append(
                f'<text x="{LEFT + 110}" y="{y + 13}" text-anchor="end" fill="{TEXT_COLOR}">{escape(name)}</text>'
                f'<rect class="vacina" data-vacina={quoteattr(code)} data-doses="{n}" x="{LEFT + 118}" y="{y + 2}" '
                f'width="{w:.1f}" height="14" fill="{BAR_COLOR}" opacity="0.75"/>'
                f'<text x="{LEFT + 124 + w:.1f}" y="{y + 13}" fill="{TEXT_COLOR}">{_number(n)}</text>'
            )
    else:
        out.append(f'<text x="{LEFT}" y="{legend_y + 22}" fill="{TEXT_COLOR}">Nenhuma dose publicada neste mês.</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
