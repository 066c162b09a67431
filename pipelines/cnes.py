"""CNES establishments: who an establishment is, by its CNES or its CNPJ.

Reads the layout of the DATASUS CNES dumps (``BASE_DE_DADOS_CNES_AAAAMM.zip``,
table ``tbEstabelecimentoAAAAMM.csv``): ``;``-separated, every field quoted,
Latin-1, a header with ``CO_UNIDADE``, ``CO_CNES``, ``NU_CNPJ_MANTENEDORA``,
``NO_RAZAO_SOCIAL``, ``NO_FANTASIA``, ..., ``TP_UNIDADE``, ``CO_ESTADO_GESTOR``,
``CO_MUNICIPIO_GESTOR``, ``CO_NATUREZA_JUR``... (``LAYOUT_COLUMNS``). Only
``CO_CNES`` is required; the other columns are used when present and extra
columns are ignored, so older and newer dumps load alike.

The project ships a small table in that layout (``pipelines/data/cnes_estabelecimentos.csv``:
the real establishments of the test samples); ``VACINA_D1_CNES_TABLE`` points at a
full dump instead.

The establishment's municipality is ``CO_MUNICIPIO_GESTOR`` when it is an IBGE
code, else the first six digits of ``CO_UNIDADE`` (municipality + CNES); its UF
comes from ``pipelines.reference``. A CNES repeated in a dump keeps its first row.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from pipelines import reference

SHIPPED_TABLE: Final = "cnes_estabelecimentos.csv"

# The header of the DATASUS tbEstabelecimento dump, in its order.
LAYOUT_COLUMNS: Final[tuple[str, ...]] = (
    "CO_UNIDADE",
    "CO_CNES",
    "NU_CNPJ_MANTENEDORA",
    "TP_PFPJ",
    "NIVEL_DEP",
    "NO_RAZAO_SOCIAL",
    "NO_FANTASIA",
    "NO_LOGRADOURO",
    "NU_ENDERECO",
    "NO_COMPLEMENTO",
    "NO_BAIRRO",
    "CO_CEP",
    "CO_REGIAO_SAUDE",
    "CO_MICRO_REGIAO",
    "CO_DISTRITO_SANITARIO",
    "CO_DISTRITO_ADMINISTRATIVO",
    "NU_TELEFONE",
    "NU_FAX",
    "NO_EMAIL",
    "NU_CPF",
    "NU_CNPJ",
    "CO_ATIVIDADE",
    "CO_CLIENTELA",
    "NU_ALVARA",
    "DT_EXPEDICAO",
    "TP_ORGAO_EXPEDIDOR",
    "DT_VAL_LIC_SANI",
    "TP_LIC_SANI",
    "TP_UNIDADE",
    "CO_TURNO_ATENDIMENTO",
    "CO_ESTADO_GESTOR",
    "CO_MUNICIPIO_GESTOR",
    "TO_CHAR(DT_ATUALIZACAO,'DD/MM/YYYY')",
    "CO_USUARIO",
    "CO_CPFDIRETORCLN",
    "REG_DIRETORCLN",
    "ST_ADESAO_FILANTROP",
    "CO_MOTIVO_DESAB",
    "NO_URL",
    "NU_LATITUDE",
    "NU_LONGITUDE",
    "TO_CHAR(DT_ATU_GEO,'DD/MM/YYYY')",
    "NO_USUARIO_GEO",
    "CO_NATUREZA_JUR",
    "TP_ESTAB_SEMPRE_ABERTO",
    "ST_GERACREDITO_GERENTE_SGIF",
    "ST_CONEXAO_INTERNET",
    "CO_TIPO_UNIDADE",
    "NO_FANTASIA_ABREV",
    "TP_GESTAO",
    "TO_CHAR(DT_ATUALIZACAO_ORIGEM,'DD/MM/YYYY')",
    "CO_TIPO_ESTABELECIMENTO",
    "CO_ATIVIDADE_PRINCIPAL",
    "ST_CONTRATO_FORMALIZADO",
    "CO_TIPO_ABRANGENCIA",
)

_USED_COLUMNS: Final = (
    "CO_UNIDADE",
    "CO_CNES",
    "NU_CNPJ_MANTENEDORA",
    "NO_RAZAO_SOCIAL",
    "NO_FANTASIA",
    "NU_TELEFONE",
    "NO_EMAIL",
    "NU_CNPJ",
    "TP_UNIDADE",
    "CO_MUNICIPIO_GESTOR",
    "CO_NATUREZA_JUR",
)

# CNES tipo de unidade (TP_UNIDADE), as the public vaccination files write it.
TIPOS_UNIDADE: Final[dict[str, str]] = {
    "01": "POSTO DE SAUDE",
    "02": "CENTRO DE SAUDE/UNIDADE BASICA",
    "04": "POLICLINICA",
    "05": "HOSPITAL GERAL",
    "07": "HOSPITAL ESPECIALIZADO",
    "15": "UNIDADE MISTA",
    "20": "PRONTO SOCORRO GERAL",
    "21": "PRONTO SOCORRO ESPECIALIZADO",
    "22": "CONSULTORIO ISOLADO",
    "32": "UNIDADE MOVEL FLUVIAL",
    "36": "CLINICA/CENTRO DE ESPECIALIDADE",
    "39": "UNIDADE DE APOIO DIAGNOSE E TERAPIA (SADT ISOLADO)",
    "40": "UNIDADE MOVEL TERRESTRE",
    "42": "UNIDADE MOVEL DE NIVEL PRE-HOSPITALAR NA AREA DE URGENCIA",
    "43": "FARMACIA",
    "50": "UNIDADE DE VIGILANCIA EM SAUDE",
    "60": "COOPERATIVA OU EMPRESA DE CESSAO DE TRABALHADORES NA SAUDE",
    "61": "CENTRO DE PARTO NORMAL - ISOLADO",
    "62": "HOSPITAL/DIA - ISOLADO",
    "64": "CENTRAL DE REGULACAO DE SERVICOS DE SAUDE",
    "67": "LABORATORIO CENTRAL DE SAUDE PUBLICA LACEN",
    "68": "CENTRAL DE GESTAO EM SAUDE",
    "69": "CENTRO DE ATENCAO HEMOTERAPIA E OU HEMATOLOGICA",
    "70": "CENTRO DE ATENCAO PSICOSSOCIAL",
    "71": "CENTRO DE APOIO A SAUDE DA FAMILIA",
    "72": "UNIDADE DE ATENCAO A SAUDE INDIGENA",
    "73": "PRONTO ATENDIMENTO",
    "74": "POLO ACADEMIA DA SAUDE",
    "75": "TELESSAUDE",
    "76": "CENTRAL DE REGULACAO MEDICA DAS URGENCIAS",
    "77": "SERVICO DE ATENCAO DOMICILIAR ISOLADO(HOME CARE)",
    "78": "UNIDADE DE ATENCAO EM REGIME RESIDENCIAL",
    "79": "OFICINA ORTOPEDICA",
    "80": "LABORATORIO DE SAUDE PUBLICA",
    "81": "CENTRAL DE REGULACAO DO ACESSO",
    "82": "CENTRAL DE NOTIFICACAO,CAPTACAO E DISTRIB DE ORGAOS ESTADUAL",
    "83": "POLO DE PREVENCAO DE DOENCAS E AGRAVOS E PROMOCAO DA SAUDE",
    "84": "CENTRAL DE ABASTECIMENTO",
    "85": "CENTRO DE IMUNIZACAO",
}

# Groups of the natureza jurídica table (IBGE CONCLA): the first digit of CO_NATUREZA_JUR.
NATUREZAS: Final[dict[str, str]] = {
    "1": "ADMINISTRACAO PUBLICA",
    "2": "ENTIDADES EMPRESARIAIS",
    "3": "ENTIDADES SEM FINS LUCRATIVOS",
    "4": "PESSOAS FISICAS",
    "5": "ORGANIZACOES INTERNACIONAIS E OUTRAS INSTITUICOES EXTRATERRITORIAIS",
}

_FRAME_SCHEMA: Final = {
    "cnes": pl.String,
    "razao_social": pl.String,
    "fantasia": pl.String,
    "ibge6": pl.String,
    "municipio_nome": pl.String,
    "uf": pl.String,
    "uf_nome": pl.String,
    "tipo_unidade": pl.String,
    "tipo_unidade_descricao": pl.String,
    "natureza_juridica": pl.String,
    "natureza_grupo": pl.String,
    "natureza_descricao": pl.String,
    "cnpj": pl.String,
    "cnpj_mantenedora": pl.String,
    "telefone": pl.String,
    "email": pl.String,
}


@dataclass(frozen=True, slots=True)
class Estabelecimento:
    """One establishment, with the fields the D-1 files and the portal need."""

    cnes: str
    razao_social: str | None
    fantasia: str | None
    ibge6: str | None  # municipality (IBGE, 6 digits); None when the dump gives none we know
    municipio_nome: str | None  # upper case without accents, as the public files write it
    uf: str | None
    uf_nome: str | None  # upper case, as the public files write it
    tipo_unidade: str | None  # TP_UNIDADE, 2 digits
    tipo_unidade_descricao: str | None
    natureza_juridica: str | None  # CO_NATUREZA_JUR, 4 digits
    natureza_grupo: str | None  # its first digit, the public files' co_natureza_estabelecimento
    natureza_descricao: str | None
    cnpj: str | None  # the establishment's own CNPJ (14 digits)
    cnpj_mantenedora: str | None  # its maintainer's CNPJ (14 digits)
    telefone: str | None
    email: str | None


def public_name(text: str | None) -> str | None:
    """Upper case without accents: how the public files write place names (``CHAPECO``)."""
    if text is None:
        return None
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


def _digits(value: str | None, width: int) -> str | None:
    if value is None:
        return None
    digits = "".join(ch for ch in value if ch.isdigit())
    if not digits or len(digits) > width:
        return None
    return digits.zfill(width)


class CnesTable:
    """Establishments keyed by CNES (sorted, binary search) with a CNPJ lookup."""

    def __init__(self, frame: pl.DataFrame, source: str):
        self._frame = frame.sort("cnes")
        self._keys = self._frame["cnes"]
        self._by_cnes: dict[str, Estabelecimento | None] = {}  # memo: sources look up the same few thousand
        self.source = source

    @classmethod
    def load(cls, path: str | Path | None = None) -> "CnesTable":
        """The table at ``path``; else ``VACINA_D1_CNES_TABLE``; else the shipped one."""
        if path is None:
            from pipelines.settings import PipelineSettings

            path = PipelineSettings().cnes_table
        if path is None:
            with resources.as_file(resources.files("pipelines") / "data" / SHIPPED_TABLE) as shipped:
                return cls(_read_dump(Path(shipped)), source=SHIPPED_TABLE)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(2, "tabela CNES não encontrada", str(path))
        return cls(_read_dump(path), source=str(path))

    def __len__(self) -> int:
        return self._frame.height

    @property
    def frame(self) -> pl.DataFrame:
        """Every establishment, one row each (columns as ``Estabelecimento``'s fields)."""
        return self._frame

    def by_cnes(self, code: str | int | None) -> Estabelecimento | None:
        key = _digits(None if code is None else str(code).strip(), 7)
        if key is None:
            return None
        if key not in self._by_cnes:
            index = self._keys.search_sorted(key, side="left")
            found = index < self._frame.height and self._keys[index] == key
            self._by_cnes[key] = Estabelecimento(**self._frame.row(index, named=True)) if found else None
        return self._by_cnes[key]

    def by_cnpj(self, cnpj: str | int | None) -> list[Estabelecimento]:
        """Establishments whose own CNPJ, or whose maintainer's, is ``cnpj`` (by CNES)."""
        key = _digits(None if cnpj is None else str(cnpj).strip(), 14)
        if key is None:
            return []
        rows = self._frame.filter((pl.col("cnpj") == key) | (pl.col("cnpj_mantenedora") == key))
        return [Estabelecimento(**row) for row in rows.iter_rows(named=True)]


def _sniff_encoding(path: Path) -> str:
    """UTF-8 when the start of the file is valid UTF-8 with non-ASCII text, else Latin-1
    (the DATASUS dumps' encoding; plain ASCII reads the same either way)."""
    with path.open("rb") as handle:
        head = handle.read(1 << 20)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still UTF-8.
        if exc.start < len(head) - 4:
            return "latin-1"
    return "utf-8" if any(byte > 0x7F for byte in head) else "latin-1"


def _read_header(path: Path, encoding: str) -> list[str]:
    with path.open("r", encoding=encoding, newline="") as handle:
        first = handle.readline()
    if not first.strip():
        raise ValueError(f"tabela CNES vazia: {path}")
    header = next(csv.reader(io.StringIO(first), delimiter=";"))
    return [name.strip().lstrip("\ufeff").strip('"').upper() for name in header]


def _read_dump(path: Path) -> pl.DataFrame:
    encoding = _sniff_encoding(path)
    header = _read_header(path, encoding)
    if "CO_CNES" not in header:
        raise ValueError(f"tabela CNES fora do layout tbEstabelecimento (sem a coluna CO_CNES): {path}")
    present = [name for name in _USED_COLUMNS if name in header]
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                encoding="latin1" if encoding == "latin-1" else "utf8", column_names=header, skip_rows=1
            ),
            parse_options=pacsv.ParseOptions(delimiter=";", quote_char='"', newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                include_columns=present,
                column_types={name: pa.string() for name in present},
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "conteúdo ilegível"
        raise ValueError(f"tabela CNES ilegível ({message}): {path}") from None
    raw = pl.from_arrow(table)
    assert isinstance(raw, pl.DataFrame)
    raw = raw.with_columns(pl.lit(None, pl.String).alias(name) for name in _USED_COLUMNS if name not in present)
    return _normalize(raw)


def _normalize(raw: pl.DataFrame) -> pl.DataFrame:
    def text(name: str) -> pl.Expr:
        value = pl.col(name).str.strip_chars()
        return pl.when(value != "").then(value)

    def digits(name: str, width: int) -> pl.Expr:
        value = pl.col(name).str.replace_all(r"\D", "")
        return pl.when((value != "") & (value.str.len_chars() <= width)).then(value.str.zfill(width))

    munis = reference.municipios()
    known = list(munis)
    gestor = digits("CO_MUNICIPIO_GESTOR", 6)
    unidade = pl.col("CO_UNIDADE").str.strip_chars().str.slice(0, 6)
    frame = raw.select(
        digits("CO_CNES", 7).alias("cnes"),
        text("NO_RAZAO_SOCIAL").alias("razao_social"),
        text("NO_FANTASIA").alias("fantasia"),
        pl.when(gestor.is_in(known)).then(gestor).when(unidade.is_in(known)).then(unidade).alias("ibge6"),
        digits("TP_UNIDADE", 2).alias("tipo_unidade"),
        digits("CO_NATUREZA_JUR", 4).alias("natureza_juridica"),
        digits("NU_CNPJ", 14).alias("cnpj"),
        digits("NU_CNPJ_MANTENEDORA", 14).alias("cnpj_mantenedora"),
        text("NU_TELEFONE").alias("telefone"),
        text("NO_EMAIL").alias("email"),
    ).filter(pl.col("cnes").is_not_null())
    frame = frame.unique(subset="cnes", keep="first", maintain_order=True)
    muni_uf = {code: m.uf for code, m in munis.items()}
    muni_nome = {code: public_name(m.nome) for code, m in munis.items()}
    uf_nome = {uf: reference.uf_nome_maiusculo(uf) for uf in reference.ufs()}
    frame = frame.with_columns(
        pl.col("ibge6").replace_strict(muni_nome, default=None, return_dtype=pl.String).alias("municipio_nome"),
        pl.col("ibge6").replace_strict(muni_uf, default=None, return_dtype=pl.String).alias("uf"),
        pl.col("tipo_unidade")
        .replace_strict(TIPOS_UNIDADE, default=None, return_dtype=pl.String)
        .alias("tipo_unidade_descricao"),
        pl.col("natureza_juridica").str.slice(0, 1).alias("natureza_grupo"),
    ).with_columns(
        pl.col("uf").replace_strict(uf_nome, default=None, return_dtype=pl.String).alias("uf_nome"),
        pl.col("natureza_grupo").replace_strict(NATUREZAS, default=None, return_dtype=pl.String).alias("natureza_descricao"),
    )
    return frame.select([pl.col(name).cast(dtype) for name, dtype in _FRAME_SCHEMA.items()])
