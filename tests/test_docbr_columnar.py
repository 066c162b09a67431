"""The CPF/CNS check digits computed as columns hold to ``validate_docbr``, the
reference: the same verdict on every value, random and adversarial (valid numbers,
one digit off, transposed, masked, short, long, repeated, other scripts' digits).

What is compared is what validation really checks: the raw value goes through
``normalize`` (trim, control characters, separators out) and then both the
columnar rule and the reference judge the same normalised text.
"""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from validate_docbr import CNS, CPF

from pipelines import contract
from pipelines.validation import CNS_COLUMN, CPF_COLUMN, _normalize_all, cns_is_valid, cpf_is_valid

DIGITS = "0123456789"
# Separators normalisation removes, other text, and digits of other scripts (Arabic-Indic,
# Devanagari, fullwidth, mathematical) next to look-alikes that are not decimal digits.
NOISE = ".-/ \t\nabcXYZ_+*'\"٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３４５６７８９𝟎𝟏𝟐²³¹½\u00a0\x00\x85"


def _verdicts(values: list[str | None], column: str) -> tuple[list[bool], list[bool]]:
    raw = pl.DataFrame({name: pl.Series([None] * len(values), dtype=pl.String) for name in contract.SOURCE_COLUMNS})
    raw = raw.with_columns(pl.Series(column, values, dtype=pl.String))
    norm = _normalize_all(raw)[column]
    rule = cpf_is_valid if column == CPF_COLUMN else cns_is_valid
    ours = pl.DataFrame({"v": norm}).select(rule(pl.col("v")).fill_null(False))["v"].to_list()
    reference = CPF() if column == CPF_COLUMN else CNS()
    # Validation never judges an absent value (null): it is not an invalid one.
    theirs = [bool(reference.validate(v)) if v is not None else False for v in norm.to_list()]
    return ours, theirs


def _cpf(nine: list[int]) -> str:
    digits = [str(d) for d in nine]
    digits.append(CPF()._generate_first_digit(digits))
    digits.append(CPF()._generate_second_digit(digits))
    return "".join(digits)


def _cns_definitive(first: int, ten: list[int]) -> str:
    return "".join(CNS()._generate_first_case([str(first), *map(str, ten)]))


def _cns_provisional(first: int, thirteen: list[int]) -> str | None:
    digits = [first, *thirteen]
    total = sum(d * (15 - i) for i, d in enumerate(digits))
    last = (-total) % 11
    return "".join(map(str, digits)) + str(last) if last < 10 else None


def _mutations(number: str) -> st.SearchStrategy[str]:
    def flip(draw) -> str:
        i = draw(st.integers(0, len(number) - 1))
        d = draw(st.sampled_from([c for c in DIGITS if c != number[i]]))
        return number[:i] + d + number[i + 1 :]

    def swap(draw) -> str:
        i = draw(st.integers(0, len(number) - 2))
        return number[:i] + number[i + 1] + number[i] + number[i + 2 :]

    def other_script(draw) -> str:
        base = draw(st.sampled_from([0x660, 0x966, 0xFF10, 0x1D7CE]))
        i = draw(st.integers(0, len(number) - 1))
        return number[:i] + "".join(chr(base + int(c)) for c in number[i:])

    masked = (
        f"{number[:3]}.{number[3:6]}.{number[6:9]}-{number[9:]}"
        if len(number) == 11
        else f"{number[:3]} {number[3:7]} {number[7:11]} {number[11:]}"
    )
    return st.one_of(
        st.just(number),
        st.just(masked),
        st.just(f"  {number}\t"),
        st.just(number.lstrip("0") or "0"),
        st.just(number[1:]),
        st.just(number + "0"),
        st.just("0" + number),
        st.just(number[0] * len(number)),
        st.composite(lambda draw: flip(draw))(),
        st.composite(lambda draw: swap(draw))(),
        st.composite(lambda draw: other_script(draw))(),
        st.just(number[:5] + "x" + number[6:]),
        st.text(alphabet="01", min_size=4, max_size=4).map(lambda tail: number[:-4] + tail),
        st.text(alphabet=DIGITS, min_size=1, max_size=1).map(lambda last: number[:-1] + last),
    )


random_text = st.one_of(
    st.none(),
    st.text(alphabet=DIGITS, min_size=0, max_size=17),
    st.text(alphabet=DIGITS + NOISE, min_size=0, max_size=20),
    st.text(max_size=20),
)
valid_cpfs = st.lists(st.integers(0, 9), min_size=9, max_size=9).map(_cpf)
adversarial_cpfs = valid_cpfs.flatmap(_mutations)
valid_cns = st.one_of(
    st.builds(_cns_definitive, st.sampled_from([1, 2]), st.lists(st.integers(0, 9), min_size=10, max_size=10)),
    st.builds(_cns_provisional, st.sampled_from([7, 8, 9]), st.lists(st.integers(0, 9), min_size=13, max_size=13)).filter(
        lambda v: v is not None
    ),
)
adversarial_cns = valid_cns.flatmap(_mutations)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(st.one_of(random_text, adversarial_cpfs), min_size=1, max_size=40))
@example(["", "...", "00000000000", "11111111111", "52998224725", "529.982.247-25", "5299822472", "٥٢٩٩٨٢٢٤٧٢٥", "52998224725\n"])
def test_columnar_cpf_gives_the_reference_verdict(values):
    ours, theirs = _verdicts(values, CPF_COLUMN)
    assert ours == theirs, [(v, o, t) for v, o, t in zip(values, ours, theirs) if o != t]


@SETTINGS
@given(st.lists(st.one_of(random_text, adversarial_cns), min_size=1, max_size=40))
@example(["", "898001160340006", "898 0011 6034 0006", "700000000000005", "300000000000000"])
# A definitive CNS whose check digit would be 10: suffix 0018, and its near misses.
@example(["110000000010018", "110000000010008", "110000000011118", "110000000000018", "110000000010019"])
def test_columnar_cns_gives_the_reference_verdict(values):
    ours, theirs = _verdicts(values, CNS_COLUMN)
    assert ours == theirs, [(v, o, t) for v, o, t in zip(values, ours, theirs) if o != t]


def test_the_adversarial_generators_do_make_both_verdicts():
    # Guard against a generator that only ever produces invalid (or valid) numbers.
    cpfs = [_cpf([d] * 4 + [1, 2, 3, 4, 5]) for d in range(10)]
    assert all(CPF().validate(v) for v in cpfs)
    assert _verdicts(cpfs + [cpfs[0][:-1] + str((int(cpfs[0][-1]) + 1) % 10)], CPF_COLUMN)[0] == [True] * 10 + [False]
    cns = [_cns_definitive(1, [d] * 10) for d in range(10)] + [v for v in (_cns_provisional(8, [d] * 13) for d in range(10)) if v]
    assert all(CNS().validate(v) for v in cns)
    assert all(_verdicts(cns, CNS_COLUMN)[0])
