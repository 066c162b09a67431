"""Normalisation and validation of raw records, with quarantine.

A source hands over raw frames (every contract column as text, as received,
plus optional transient patient-identifier columns). ``validate`` normalises
them (undoing the public files' known defects) and splits them into valid
records, typed by ``contract.SCHEMA``, and quarantined ones, which keep their
original values and the reason codes that sent them there. Nothing is dropped:
``len(raw) == len(valid) + len(quarantine)`` always holds.

Reason codes are stable, lower-case Portuguese identifiers (``cnes_invalido``)
so people and checks can count them; ``REASON_LABELS`` has the sentence a person
reads.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import unicodedata
from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines import contract, reference

# Transient patient identifiers a source may carry: checked here, turned into
# ``co_paciente`` by a keyed hash, and never written out in clear.
CNS_COLUMN = "nu_cns_paciente"
CPF_COLUMN = "nu_cpf_paciente"
PATIENT_ID_COLUMNS = (CNS_COLUMN, CPF_COLUMN)
# Reason codes a source found while reading a record (list of text, transient):
# added to validation's own, so the quarantine says what really went wrong.
SOURCE_REASONS_COLUMN = "motivos_fonte"

# C0 controls, DEL and the C1 controls (U+0080-U+009F: what Windows-1252 punctuation
# becomes when a file is decoded as Latin-1) never reach a published file.
_CONTROL_CHARS = r"[\x00-\x1f\x7f-\x9f]+"
_FLOAT_DEFECT = r"^(-?\d+)\.0+$"
_OLDEST_PLAUSIBLE = dt.date(1900, 1, 1)
# The RNDS document identifier (``<uuid>-i0b0`` in the public files) is a FHIR id:
# letters, digits, '-' and '.', 1 to 64 of them. A stray quote, a space or binary
# garbage is not an identifier anyone can look up.
_DOCUMENT_ID = r"^[A-Za-z0-9.\-]{1,64}$"

REASON_LABELS: dict[str, str] = {
    "campo_obrigatorio_ausente": "campo obrigatório ausente",
    "co_documento_duplicado": "co_documento repetido no dia",
    "municipio_estabelecimento_invalido": "município do estabelecimento fora da lista do IBGE",
    "municipio_estabelecimento_desconhecido": "município do estabelecimento desconhecido (999999)",
    "uf_estabelecimento_inconsistente": "UF do estabelecimento não corresponde ao município",
    "municipio_paciente_invalido": "município de residência fora da lista do IBGE",
    "uf_paciente_invalida": "UF de residência inexistente",
    "uf_paciente_inconsistente": "UF de residência não corresponde ao município",
    "cnes_invalido": "CNES não tem 7 dígitos",
    "dt_vacina_invalida": "data de vacinação ilegível",
    "dt_vacina_implausivel": "data de vacinação anterior a 1900",
    "dt_vacina_futura": "data de vacinação no futuro",
    "dt_vacina_posterior_entrada": "data de vacinação posterior à entrada na RNDS",
    "dt_entrada_rnds_invalida": "data de entrada na RNDS ilegível",
    "dt_entrada_rnds_futura": "data de entrada na RNDS no futuro",
    "dt_deletado_rnds_invalida": "data de exclusão ilegível",
    "dt_deletado_rnds_futura": "data de exclusão no futuro",
    "st_documento_invalido": "st_documento diferente de final ou entered-in-error",
    "cns_invalido": "CNS do paciente com dígito verificador inválido",
    "cpf_invalido": "CPF do paciente com dígito verificador inválido",
    "fhir_json_invalido": "documento FHIR com JSON malformado",
    "fhir_nao_documento_ria": "não é um documento RIA (Bundle document com Composition e Immunization)",
    "fhir_placeholder": "documento FHIR com marcador de modelo não preenchido ({{...}})",
    "fhir_paciente_divergente": "paciente da Immunization diferente do sujeito da Composition",
    "paciente_sem_cns_cpf": "paciente sem CNS nem CPF",
    "cnes_desconhecido": "CNES fora da tabela de estabelecimentos (município e UF desconhecidos)",
    "csv_linha_malformada": "linha do CSV com número de campos diferente do cabeçalho",
    "co_documento_invalido": "co_documento fora do formato de identificador da RNDS (letras, dígitos, '-' e '.', até 64)",
}


def reason_label(code: str) -> str:
    """The Portuguese sentence for a reason code (``campo_obrigatorio_ausente:co_vacina`` included)."""
    base, _, detail = code.partition(":")
    label = REASON_LABELS.get(base, base)
    return f"{label}: {detail}" if detail else label


@dataclass(frozen=True)
class ValidationResult:
    valid: pl.DataFrame
    quarantine: pl.DataFrame


def _text(name: str) -> pl.Expr:
    """Trimmed text with control characters (CR/LF/tab) folded to a space; empty is null."""
    cleaned = pl.col(name).str.replace_all(_CONTROL_CHARS, " ").str.strip_chars()
    return pl.when(cleaned == "").then(None).otherwise(cleaned)


def _code(name: str) -> pl.Expr:
    expr = _text(name).str.replace(_FLOAT_DEFECT, "${1}")
    width = contract.CODE_WIDTHS.get(name)
    if width is None:
        return expr
    digits = expr.str.contains(r"^\d+$")
    if name in ("co_municipio_paciente", "co_municipio_estabelecimento"):
        # A 7-digit IBGE code carries a check digit the files leave out.
        expr = pl.when(digits & (expr.str.len_chars() == 7)).then(expr.str.slice(0, 6)).otherwise(expr)
    return pl.when(digits).then(expr.str.zfill(width)).otherwise(expr)


def _parse_date(text: pl.Expr) -> pl.Expr:
    """ISO dates, ISO date-times (their date part) and dd/mm/yyyy."""
    iso = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    iso = pl.when(text.str.contains(r"^\d{4}-\d{2}-\d{2}([T ].*)?$")).then(iso)
    br = pl.when(text.str.contains(r"^\d{2}/\d{2}/\d{4}$")).then(text.str.to_date("%d/%m/%Y", strict=False))
    return pl.coalesce(iso, br)


def _normalize_all(raw: pl.DataFrame) -> pl.DataFrame:
    exprs = []
    for name in contract.SOURCE_COLUMNS:
        if name in contract.NUMERIC_CODE_COLUMNS:
            expr = _code(name)
        elif name in contract.UF_COLUMNS or name == "tp_sexo_paciente":
            expr = _text(name).str.to_uppercase()
        elif name == "st_documento":
            expr = _text(name).str.to_lowercase()
        else:
            expr = _text(name)
        exprs.append(expr.alias(name))
    for name in PATIENT_ID_COLUMNS:
        if name in raw.columns:
            exprs.append(_ascii_digits(_text(name).str.replace_all(r"[.\-/ ]", "")).alias(name))
    return raw.select(exprs)


@functools.cache
def _other_decimal_digits() -> dict[str, str]:
    """Every non-ASCII decimal digit (Unicode Nd: what ``\\d`` matches) → its ASCII digit."""
    found = {}
    for point in range(0x80, sys.maxunicode + 1):
        value = unicodedata.decimal(chr(point), None)
        if value is not None:
            found[chr(point)] = str(value)
    return found


def _ascii_digits(text: pl.Expr) -> pl.Expr:
    """A CNS/CPF written in other scripts' digits (٠١٢, ０１２) read as the same number,
    so the check digits, and the pseudonym, do not depend on the script."""
    digits = _other_decimal_digits()
    return text.str.replace_many(list(digits), list(digits.values()))


def _values_with(flags: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per value: does any of its bytes carry a flag? (``ends``: each value's end offset.)"""
    hit = np.zeros(len(ends), dtype=bool)
    positions = np.flatnonzero(flags)
    if len(positions):
        hit[np.searchsorted(ends, positions, side="right")] = True
    return hit


def _needs_work(series: pl.Series, name: str) -> np.ndarray | None:
    """Per value: may normalisation change it? Read from the UTF-8 bytes, far cheaper
    than the regular expressions. False only for values that are provably fixed
    points (no control character, not empty, no whitespace at an edge; for codes
    only digits, at their full width; for case-folded columns ASCII without a
    letter of the other case). None when the column cannot be read this way."""
    if series.dtype != pl.String:
        return None
    valid = series.is_not_null().to_numpy()
    if not valid.any():
        return valid
    array = series.to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.type != pa.large_string():
        return None
    _, offset_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    if offsets[-1] == offsets[0]:
        return valid  # every value empty (or null)
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    starts, ends = offsets[:-1] - offsets[0], offsets[1:] - offsets[0]
    filled = ends > starts
    first = data[np.where(filled, starts, 0)]
    last = data[np.where(filled, ends - 1, 0)]
    before_last = data[np.where(filled, np.maximum(ends - 2, starts), 0)]
    if name in contract.NUMERIC_CODE_COLUMNS or name in PATIENT_ID_COLUMNS:
        odd = (data < 0x30) | (data > 0x39)
    elif name in contract.UF_COLUMNS or name == "tp_sexo_paciente":
        odd = (data < 0x20) | (data >= 0x7F) | ((data >= 0x61) & (data <= 0x7A))
    elif name == "st_documento":
        odd = (data < 0x20) | (data >= 0x7F) | ((data >= 0x41) & (data <= 0x5A))
    else:
        odd = (data < 0x20) | (data == 0x7F)
        # A C1 control: its UTF-8 form is 0xC2 then 0x80-0x9F.
        odd[:-1] |= (data[:-1] == 0xC2) & (data[1:] >= 0x80) & (data[1:] <= 0x9F)
    work = ~filled | _values_with(odd, ends)
    # Whitespace strip_chars would remove: a space, or a Unicode space (U+0085,
    # U+00A0, U+1680, U+2000-U+205F, U+3000), known by its UTF-8 lead and end bytes.
    work |= (first == 0x20) | (first == 0xC2) | ((first >= 0xE1) & (first <= 0xE3)) | (last == 0x20)
    work |= (before_last == 0xC2) & ((last == 0x85) | (last == 0xA0))
    work |= ((before_last == 0x80) | (before_last == 0x81) | (before_last == 0x9A)) & (last >= 0x80)
    width = contract.CODE_WIDTHS.get(name)
    if width is not None:
        work |= (ends - starts) != width
    return work & valid


def normalize(raw: pl.DataFrame) -> pl.DataFrame:
    """Text columns cleaned, codes with their leading zeros, dates still as text.

    Only the values that may change go through the (costly) expressions: the
    others are provably left as they are (``_needs_work``), so the result is the
    same as normalising everything."""
    names = [*contract.SOURCE_COLUMNS, *(name for name in PATIENT_ID_COLUMNS if name in raw.columns)]
    work: dict[str, np.ndarray] = {}
    for name in names:
        mask = _needs_work(raw.get_column(name), name)
        if mask is None:
            return _normalize_all(raw)
        work[name] = mask
    touched = {name for name, mask in work.items() if mask.any()}
    if not touched:
        return raw.select(names)
    rows = np.flatnonzero(np.logical_or.reduce([work[name] for name in touched]))
    if len(rows) > raw.height // 4:
        return _normalize_all(raw)
    fixed = _normalize_all(raw[rows])
    positions = pl.Series(rows)
    return raw.select(names).with_columns(
        raw.get_column(name).clone().scatter(positions, fixed.get_column(name)) for name in touched
    )


def _digit(text: pl.Expr, position: int) -> pl.Expr:
    return text.str.slice(position, 1).cast(pl.Int32, strict=False)


def cpf_is_valid(text: pl.Expr) -> pl.Expr:
    """The CPF check digits, as columns: the verdict of ``validate_docbr.CPF().validate``
    (the reference the property tests hold this to) on a value without separators.
    Up to 11 digits (fewer get leading zeros), not all the same, both check digits right."""
    padded = text.str.zfill(11)
    d = [_digit(padded, i) for i in range(11)]
    first = (sum(d[i] * (10 - i) for i in range(9)) * 10 % 11) % 10
    second = (sum(d[i] * (11 - i) for i in range(10)) * 10 % 11) % 10
    repeated = pl.all_horizontal([d[i] == d[0] for i in range(1, 11)])
    return text.str.contains(r"^[0-9]{0,11}$") & ~repeated & (d[9] == first) & (d[10] == second)


def cns_is_valid(text: pl.Expr) -> pl.Expr:
    """The CNS rule, as columns: the verdict of ``validate_docbr.CNS().validate`` on a
    value without separators. 15 digits; starting with 1 or 2 (a CNS made from the
    PIS), digits 12-14 are 000 and the 15th the check digit of the first 11 (001
    and an adjusted check digit when it would be 10); starting with 7, 8 or 9 (a
    provisional CNS), the weighted sum of all 15 divides by 11."""
    d = [_digit(text, i) for i in range(15)]
    head = sum(d[i] * (15 - i) for i in range(11)) % 11
    definitive = (
        pl.when(head == 1)
        .then((d[11] == 0) & (d[12] == 0) & (d[13] == 1) & (d[14] == 8))
        .otherwise((d[11] == 0) & (d[12] == 0) & (d[13] == 0) & (d[14] == (11 - head) % 11))
    )
    provisional = sum(d[i] * (15 - i) for i in range(15)) % 11 == 0
    return text.str.contains(r"^[0-9]{15}$") & (
        pl.when(d[0].is_in([1, 2])).then(definitive).when(d[0].is_in([7, 8, 9])).then(provisional).otherwise(False)
    )


def _reasons(norm: pl.DataFrame, today: dt.date) -> pl.Series:
    munis = reference.municipios()
    muni_uf = {code: m.uf for code, m in munis.items()}
    uf_codes = list(reference.ufs())
    col = pl.col

    dates = {name: _parse_date(col(name)) for name in contract.DATE_COLUMNS}
    est_muni = col("co_municipio_estabelecimento")
    pat_muni = col("co_municipio_paciente")
    pat_uf = col("sg_uf_paciente")
    pat_muni_known = pat_muni.is_not_null() & (pat_muni != contract.UNKNOWN_MUNICIPIO)
    pat_uf_known = pat_uf.is_not_null() & (pat_uf != contract.UNKNOWN_UF)

    checks: list[tuple[pl.Expr, str]] = [
        (col(name).is_null(), f"campo_obrigatorio_ausente:{name}") for name in contract.REQUIRED_COLUMNS
    ]
    checks += [
        (col("co_documento").is_not_null() & ~col("co_documento").str.contains(_DOCUMENT_ID), "co_documento_invalido"),
        (est_muni == contract.UNKNOWN_MUNICIPIO, "municipio_estabelecimento_desconhecido"),
        (
            est_muni.is_not_null() & (est_muni != contract.UNKNOWN_MUNICIPIO) & ~est_muni.is_in(list(munis)),
            "municipio_estabelecimento_invalido",
        ),
        (
            est_muni.is_in(list(munis))
            & col("sg_uf_estabelecimento").is_not_null()
            & (est_muni.replace_strict(muni_uf, default=None) != col("sg_uf_estabelecimento")),
            "uf_estabelecimento_inconsistente",
        ),
        (pat_muni_known & ~pat_muni.is_in(list(munis)), "municipio_paciente_invalido"),
        (pat_uf_known & ~pat_uf.is_in(uf_codes), "uf_paciente_invalida"),
        (
            pat_muni.is_in(list(munis)) & pat_uf_known & (pat_muni.replace_strict(muni_uf, default=None) != pat_uf),
            "uf_paciente_inconsistente",
        ),
        (
            col("co_cnes_estabelecimento").is_not_null() & ~col("co_cnes_estabelecimento").str.contains(r"^\d{7}$"),
            "cnes_invalido",
        ),
        (col("dt_vacina").is_not_null() & dates["dt_vacina"].is_null(), "dt_vacina_invalida"),
        (dates["dt_vacina"] < _OLDEST_PLAUSIBLE, "dt_vacina_implausivel"),
        (dates["dt_vacina"] > today, "dt_vacina_futura"),
        (dates["dt_vacina"] > dates["dt_entrada_rnds"], "dt_vacina_posterior_entrada"),
        (col("dt_entrada_rnds").is_not_null() & dates["dt_entrada_rnds"].is_null(), "dt_entrada_rnds_invalida"),
        (dates["dt_entrada_rnds"] > today, "dt_entrada_rnds_futura"),
        (col("dt_deletado_rnds").is_not_null() & dates["dt_deletado_rnds"].is_null(), "dt_deletado_rnds_invalida"),
        (dates["dt_deletado_rnds"] > today, "dt_deletado_rnds_futura"),
        (
            col("st_documento").is_not_null() & ~col("st_documento").is_in(list(contract.ST_DOCUMENTO_VALUES)),
            "st_documento_invalido",
        ),
    ]
    if CNS_COLUMN in norm.columns:
        checks.append((col(CNS_COLUMN).is_not_null() & ~cns_is_valid(col(CNS_COLUMN)), "cns_invalido"))
    if CPF_COLUMN in norm.columns:
        checks.append((col(CPF_COLUMN).is_not_null() & ~cpf_is_valid(col(CPF_COLUMN)), "cpf_invalido"))

    frame = norm
    # One boolean column per check, then the lists built from where they are true
    # (a list column per row built by Polars cost most of validation's time).
    failed = frame.select(cond.fill_null(False).alias(f"_check{i}") for i, (cond, _) in enumerate(checks)).to_numpy()
    rows, which = np.nonzero(failed)
    offsets = np.zeros(norm.height + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=norm.height), out=offsets[1:])
    codes = np.array([code for _, code in checks], dtype=object)[which]
    reasons = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(codes.tolist(), type=pa.large_string()))
    return pl.Series(contract.QUARANTINE_REASONS_COLUMN, reasons, dtype=pl.List(pl.String))


def validate(
    raw: pl.DataFrame,
    *,
    today: dt.date,
    pseudonymize: Callable[[pl.DataFrame], pl.Series] | None = None,
) -> ValidationResult:
    """Split raw records into valid (``contract.SCHEMA``) and quarantined
    (``contract.QUARANTINE_SCHEMA``) ones.

    ``today`` is the day after which no date may fall (the caller's clock, in
    America/Sao_Paulo). When the frame carries CNS/CPF columns, ``pseudonymize``
    turns them into ``co_paciente`` for valid and quarantined records alike, so
    no clear identifier is ever stored.
    """
    has_ids = any(name in raw.columns for name in PATIENT_ID_COLUMNS)
    if has_ids and pseudonymize is None:
        raise ValueError("registros com CNS/CPF exigem a chave de pseudonimização")
    origin = (
        raw[contract.QUARANTINE_ORIGIN_COLUMN]
        if contract.QUARANTINE_ORIGIN_COLUMN in raw.columns
        else pl.Series(contract.QUARANTINE_ORIGIN_COLUMN, [None] * raw.height, dtype=pl.String)
    )
    raw = raw.with_columns(pl.lit(None, pl.String).alias(name) for name in contract.SOURCE_COLUMNS if name not in raw.columns)
    norm = normalize(raw)
    if has_ids and pseudonymize is not None:  # checked above: has_ids requires it
        ids = pseudonymize(norm)
        norm = norm.with_columns(
            pl.when(pl.col("co_paciente").is_null()).then(ids).otherwise(pl.col("co_paciente")).alias("co_paciente")
        )
        raw = raw.with_columns(
            pl.when(pl.col("co_paciente").is_null()).then(ids).otherwise(pl.col("co_paciente")).alias("co_paciente")
        )
    reasons = _reasons(norm, today)
    if SOURCE_REASONS_COLUMN in raw.columns:
        found = raw[SOURCE_REASONS_COLUMN].cast(pl.List(pl.String)).fill_null(pl.lit([], pl.List(pl.String)))
        reasons = (
            pl.DataFrame([found.alias("_fonte"), reasons.alias("_validacao")])
            .select(pl.concat_list("_fonte", "_validacao").alias(contract.QUARANTINE_REASONS_COLUMN))
            .to_series()
        )
    ok = reasons.list.len() == 0

    valid = norm.filter(ok).select(
        [
            (_parse_date(pl.col(name)) if name in contract.DATE_COLUMNS else pl.col(name)).alias(name)
            for name in contract.SOURCE_COLUMNS
        ]
    )
    quarantine = (
        raw.select(contract.SOURCE_COLUMNS).with_columns(origin.alias(contract.QUARANTINE_ORIGIN_COLUMN), reasons).filter(~ok)
    )
    return ValidationResult(valid=valid, quarantine=quarantine)
