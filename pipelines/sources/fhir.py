"""RNDS FHIR source: RIA documents (Registro de Imunobiológico Administrado).

Input
    ``path`` is a JSON file holding one document Bundle (or a Bundle whose entries
    are document Bundles), an NDJSON file (FHIR Bulk Data: one Bundle per line;
    ``.gz`` too), or a directory of such files — e.g. a bulk export with
    ``Bundle.ndjson`` and an optional ``Patient.ndjson`` (files whose name has the
    token ``Patient`` hold BRIndividuo resources, read first to give the documents
    their patients' sex, age, race/colour and residence). NDJSON is streamed line
    by line; only a JSON (not NDJSON) file is parsed whole.

Errors: the record or the whole input
    A file that cannot be read as a whole stops the import with ``SourceError``
    (one line, naming the file): an input file given directly that is empty; a
    JSON file that is not JSON or not a FHIR Bundle; an NDJSON file whose first
    line is not JSON or not a Bundle (it is some other file); an unreadable
    ``Patient`` line (reference data: re-export it); a directory without JSON
    or NDJSON files. Inside a readable file, what can be attributed to a record
    goes to quarantine with its origin (``<file>:<line>`` for NDJSON,
    ``<file>:<entry>`` for a Bundle of documents, ``<file>`` for a one-document
    JSON file) and a reason code (``validation.SOURCE_REASONS_COLUMN``): a line
    that is not JSON (``fhir_json_invalido``), a Bundle that is not a RIA
    document (``fhir_nao_documento_ria``: not ``type: document``, or without a
    Composition and an Immunization), a template placeholder left in
    (``fhir_placeholder``, e.g. ``{{cnes}}``), a CNES missing from the CNES table
    (``cnes_desconhecido``: municipality and UF stay empty, so validation also
    names the missing fields), no CNS/CPF (``paciente_sem_cns_cpf``), the
    Immunization's patient differing from the Composition's subject
    (``fhir_paciente_divergente``). An empty file inside a directory is a
    resource type with no rows that day, not an error.

Mapping (one record per Immunization of the document)
    ``co_documento``: ``Bundle.identifier.value`` — the document's identifier,
    present in every document as submitted — else ``Bundle.id`` (assigned by the
    server, absent from submitted documents). A document with several
    Immunizations gives ``<id>-i<k>`` (k from 0, in the Composition's section
    order) so ``co_documento`` stays unique. ``co_troca_documento``: the
    ``relatesTo`` (replaces) target's id. ``st_documento``: ``Composition.status``.
    ``dt_entrada_rnds``: ``Bundle.meta.lastUpdated`` (written by the server on
    receipt), else ``Bundle.timestamp`` (when the sender assembled it); the day
    in America/Sao_Paulo. ``dt_vacina``: ``occurrenceDateTime``, its
    America/Sao_Paulo day when it has a time and offset. The establishment is
    ``Composition.author``'s CNES, named and placed by the CNES table
    (``pipelines.cnes``). Vaccine, dose, site, route, grupo de atendimento and
    estratégia are codes with their displays from the RNDS code systems
    (``reference.codesystem``), at the extension URLs of the
    BRImunobiologicoAdministrado(Campanha) profiles. The patient's CNS or CPF goes
    to ``validation.CNS_COLUMN``/``CPF_COLUMN`` (checked there, hashed into
    ``co_paciente`` by ``pipelines.pseudonym``, never written). Not in a RIA
    document, so left empty: ``sg_vacina``, sistema de origem, origem do
    registro, categoria de atendimento, condição maternal, nacionalidade, etnia
    name, ``dt_deletado_rnds``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

import polars as pl

from pipelines import contract, dates, reference
from pipelines.cnes import CnesTable, Estabelecimento, public_name
from pipelines.sources.base import Source, SourceError
from pipelines.validation import CNS_COLUMN, CPF_COLUMN, SOURCE_REASONS_COLUMN

DEFAULT_BATCH_SIZE = 10_000

BATCH_SCHEMA: dict[str, pl.DataType] = {
    **contract.RAW_SCHEMA,
    contract.QUARANTINE_ORIGIN_COLUMN: pl.String(),
    CNS_COLUMN: pl.String(),
    CPF_COLUMN: pl.String(),
    SOURCE_REASONS_COLUMN: pl.List(pl.String()),
}

_SD = "http://www.saude.gov.br/fhir/r4/StructureDefinition/"
# Extension URLs of the RNDS profiles (StructureDefinitions BRImunobiologicoAdministrado-1.0,
# BRImunobiologicoAdministradoCampanha-1.0, BRIndividuo-1.0), compared without a "-1.0" suffix.
EXT_GRUPO_ATENDIMENTO = _SD + "BRGrupoAtendimento"
EXT_ESTRATEGIA_VACINACAO = _SD + "BREstrategiaVacinacao-1.0"
EXT_RACA_COR_ETNIA = _SD + "BRRacaCorEtnia-1.0"

RACA_COR: dict[str, str] = {
    "01": "BRANCA",
    "02": "PRETA",
    "03": "PARDA",
    "04": "AMARELA",
    "05": "INDIGENA",
    "99": "SEM INFORMACAO",
}
SEXO = {"male": "M", "female": "F", "other": "I", "unknown": "I"}

# Identifier systems of a patient (besides BRIndividuo-1.0, whose value is a CNS, or a
# CPF when it has 11 digits); the OIDs are the CNS's and the CPF's in HL7 Brasil.
_CPF_SYSTEMS = ("/cpf", "2.16.840.1.113883.13.237")
_CNS_SYSTEMS = ("/cns", "2.16.840.1.113883.13.236")

_PLACEHOLDER_TEXT = re.compile(r"\{\{[^{}]*\}\}")
_PLACEHOLDER_BYTES = re.compile(rb"\{\{[^{}]*\}\}")
_ID_PUNCTUATION = re.compile(r"[.\-/ ]")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")


# --- small readers of FHIR structures -------------------------------------------------------


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _url_matches(url: Any, expected: str) -> bool:
    text = _text(url)
    if text is None:
        return False
    base = expected.removesuffix("-1.0")
    return text == base or text.startswith(base + "-")


def _extension(holder: dict, url: str) -> dict | None:
    for ext in _list(holder.get("extension")):
        if _url_matches(_dict(ext).get("url"), url):
            return ext
    return None


def _coding_code(concept: Any) -> str | None:
    for coding in _list(_dict(concept).get("coding")):
        code = _text(_dict(coding).get("code"))
        if code is not None:
            return code
    return None


def _display(codesystem: str, code: str | None) -> str | None:
    if code is None:
        return None
    return reference.codesystem(codesystem).get(code)


def _last_segment(ref: str | None) -> str | None:
    if ref is None:
        return None
    ref = ref.removeprefix("urn:uuid:").rstrip("/")
    return ref.rsplit("/", 1)[-1] or None


def local_date(value: Any) -> str | None:
    """A FHIR date/dateTime as the America/Sao_Paulo day (ISO); anything else returned as
    given, for validation to judge."""
    text = _text(value)
    if text is None:
        return None
    if _ISO_DATE.match(text):
        return text
    if _ISO_DATETIME.match(text):
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            return text
        if moment.tzinfo is None:
            return moment.date().isoformat()
        return moment.astimezone(dates.TZ).date().isoformat()
    return text


def _age(birth: str | None, on: str | None) -> str | None:
    if birth is None or on is None or not _ISO_DATE.match(birth) or not _ISO_DATE.match(on):
        return None
    try:
        born, day = dt.date.fromisoformat(birth), dt.date.fromisoformat(on)
    except ValueError:
        return None
    years = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    return str(years) if years >= 0 else None


# --- patients -------------------------------------------------------------------------------


def patient_identifier(identifier: Any) -> tuple[str, str] | None:
    """``("cns" | "cpf", value without punctuation)`` for a CNS/CPF identifier, else None."""
    identifier = _dict(identifier)
    value = _text(identifier.get("value"))
    if value is None:
        return None
    value = _ID_PUNCTUATION.sub("", value)
    system = (_text(identifier.get("system")) or "").lower()
    kind_code = (_coding_code(identifier.get("type")) or _text(_dict(identifier.get("type")).get("text")) or "").upper()
    if any(system.endswith(s) or system == f"urn:oid:{s}" for s in _CPF_SYSTEMS) or kind_code == "CPF":
        return ("cpf", value)
    if any(system.endswith(s) or system == f"urn:oid:{s}" for s in _CNS_SYSTEMS) or kind_code == "CNS":
        return ("cns", value)
    if "brindividuo" in system:
        return ("cpf", value) if len(value) == 11 else ("cns", value)
    return None


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What a BRIndividuo says that the D-1 record publishes (never its identifiers)."""

    sexo: str | None
    nascimento: str | None
    raca_cor: str | None
    etnia: str | None
    ibge6: str | None
    cep5: str | None


def patient_facts(patient: dict) -> PatientFacts:
    raca = etnia = None
    race_ext = _extension(patient, EXT_RACA_COR_ETNIA)
    if race_ext is not None:
        for sub in _list(race_ext.get("extension")):
            sub = _dict(sub)
            if sub.get("url") == "race":
                raca = _coding_code(sub.get("valueCodeableConcept"))
            elif sub.get("url") == "indigenousEthnicity":
                etnia = _coding_code(sub.get("valueCodeableConcept"))
    addresses = [_dict(a) for a in _list(patient.get("address"))]
    current = [a for a in addresses if not _text(_dict(a.get("period")).get("end")) and a.get("use") != "old"]
    home = [a for a in current if a.get("use") == "home"]
    address = (home or current or [{}])[0]
    city = re.sub(r"\D", "", _text(address.get("city")) or "")
    cep = re.sub(r"\D", "", _text(address.get("postalCode")) or "")
    gender = _text(patient.get("gender"))
    return PatientFacts(
        sexo=SEXO.get(gender.lower()) if gender else None,
        nascimento=_text(patient.get("birthDate")),
        raca_cor=raca,
        etnia=etnia,
        ibge6=city[:6] if len(city) in (6, 7) else None,
        cep5=cep[:5] if len(cep) == 8 else None,
    )


class PatientIndex:
    """BRIndividuo facts by CNS/CPF (from ``Patient`` NDJSON files)."""

    def __init__(self) -> None:
        self._facts: dict[tuple[str, str], PatientFacts] = {}

    def __len__(self) -> int:
        return len(self._facts)

    def add(self, patient: dict) -> None:
        facts = patient_facts(patient)
        for identifier in _list(patient.get("identifier")):
            key = patient_identifier(identifier)
            if key is not None:
                self._facts.setdefault(key, facts)

    def get(self, key: tuple[str, str] | None) -> PatientFacts | None:
        return None if key is None else self._facts.get(key)


# --- one document → records -----------------------------------------------------------------


def _bad_record(origin: str, reason: str, **values: Any) -> dict[str, Any]:
    return {contract.QUARANTINE_ORIGIN_COLUMN: origin, SOURCE_REASONS_COLUMN: [reason], **values}


def _resource_index(entries: list[dict]) -> dict[str, dict]:
    index: dict[str, dict] = {}
    for entry in entries:
        resource = _dict(entry.get("resource"))
        full_url = _text(entry.get("fullUrl"))
        if full_url:
            index[full_url] = resource
        rtype, rid = _text(resource.get("resourceType")), _text(resource.get("id"))
        if rtype and rid:
            index[f"{rtype}/{rid}"] = resource
    return index


def _resolve(index: dict[str, dict], ref: Any) -> dict | None:
    text = _text(ref)
    if text is None:
        return None
    return index.get(text) or index.get(text.lstrip("/"))


def _document_id(bundle: dict) -> str | None:
    return _text(_dict(bundle.get("identifier")).get("value")) or _text(bundle.get("id"))


def _establishment_fields(cnes: str | None, table: CnesTable, reasons: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {"co_cnes_estabelecimento": cnes}
    if cnes is None or not cnes.isdigit() or len(cnes) > 7:
        return fields
    found: Estabelecimento | None = table.by_cnes(cnes)
    if found is None:
        reasons.append("cnes_desconhecido")
        return fields
    fields.update(
        no_razao_social_estabelecimento=found.razao_social,
        no_fantasia_estalecimento=found.fantasia,
        co_municipio_estabelecimento=found.ibge6,
        no_municipio_estabelecimento=found.municipio_nome,
        sg_uf_estabelecimento=found.uf,
        no_uf_estabelecimento=found.uf_nome,
        co_tipo_estabelecimento=found.tipo_unidade,
        ds_tipo_estabelecimento=found.tipo_unidade_descricao,
        co_natureza_estabelecimento=found.natureza_grupo,
        ds_natureza_estabelecimento=found.natureza_descricao,
    )
    return fields


def _patient_fields(facts: PatientFacts | None, dt_vacina: str | None) -> dict[str, Any]:
    if facts is None:
        return {}
    fields: dict[str, Any] = {
        "tp_sexo_paciente": facts.sexo,
        "nu_idade_paciente": _age(facts.nascimento, dt_vacina),
        "co_raca_cor_paciente": facts.raca_cor,
        "no_raca_cor_paciente": RACA_COR.get((facts.raca_cor or "").zfill(2)) if facts.raca_cor else None,
        "co_etnia_indigena_paciente": facts.etnia,
        "nu_cep_paciente": facts.cep5,
    }
    municipio = reference.municipios().get(facts.ibge6 or "")
    if municipio is not None:
        fields.update(
            co_municipio_paciente=municipio.ibge6,
            no_municipio_paciente=public_name(municipio.nome),
            sg_uf_paciente=municipio.uf,
            no_uf_paciente=reference.uf_nome_maiusculo(municipio.uf),
            co_pais_paciente="10",
            no_pais_paciente="BRASIL",
        )
    elif facts.ibge6 is not None:
        fields["co_municipio_paciente"] = facts.ibge6  # validation says it is not an IBGE code
    return fields


def _find_patient(
    index: dict[str, dict], entries: list[dict], refs: list[dict], key: tuple[str, str] | None, patients: PatientIndex
) -> PatientFacts | None:
    for ref in refs:
        resource = _resolve(index, ref.get("reference"))
        if resource is not None and resource.get("resourceType") == "Patient":
            return patient_facts(resource)
    if key is not None:
        for entry in entries:
            resource = _dict(entry.get("resource"))
            if resource.get("resourceType") == "Patient" and any(
                patient_identifier(i) == key for i in _list(resource.get("identifier"))
            ):
                return patient_facts(resource)
    return patients.get(key)


def _patient_key(ref: dict, index: dict[str, dict]) -> tuple[str, str] | None:
    key = patient_identifier(ref.get("identifier"))
    if key is not None:
        return key
    resource = _resolve(index, ref.get("reference"))
    if resource is not None and resource.get("resourceType") == "Patient":
        for identifier in _list(resource.get("identifier")):
            key = patient_identifier(identifier)
            if key is not None:
                return key
    return None


def map_document(
    bundle: Any,
    origin: str,
    *,
    cnes_table: CnesTable,
    patients: PatientIndex | None = None,
    placeholder: bool = False,
) -> list[dict[str, Any]]:
    """The raw records of one RIA document Bundle (one per Immunization); a Bundle that is
    not a RIA document gives one record saying so. ``placeholder`` marks a document whose
    text still has a ``{{...}}`` template marker."""
    patients = patients or PatientIndex()
    bundle = _dict(bundle)
    doc_id = _document_id(bundle)
    entries = [_dict(e) for e in _list(bundle.get("entry"))]
    index = _resource_index(entries)
    composition = next(
        (_dict(e.get("resource")) for e in entries if _dict(e.get("resource")).get("resourceType") == "Composition"), None
    )
    immunizations: list[dict] = []
    if composition is not None:
        for section in _list(composition.get("section")):
            for ref in _list(_dict(section).get("entry")):
                resource = _resolve(index, _dict(ref).get("reference"))
                if resource is not None and resource.get("resourceType") == "Immunization":
                    immunizations.append(resource)
    if not immunizations:
        immunizations = [
            _dict(e.get("resource")) for e in entries if _dict(e.get("resource")).get("resourceType") == "Immunization"
        ]
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "document" or composition is None or not immunizations:
        return [_bad_record(origin, "fhir_nao_documento_ria", co_documento=doc_id)]

    common_reasons = ["fhir_placeholder"] if placeholder else []
    meta = _dict(bundle.get("meta"))
    common: dict[str, Any] = {
        contract.QUARANTINE_ORIGIN_COLUMN: origin,
        "st_documento": _text(composition.get("status")),
        "dt_entrada_rnds": local_date(meta.get("lastUpdated")) or local_date(bundle.get("timestamp")),
    }
    for relation in _list(composition.get("relatesTo")):
        relation = _dict(relation)
        target = _text(_dict(relation.get("targetReference")).get("reference")) or _text(
            _dict(relation.get("targetIdentifier")).get("value")
        )
        if target and (relation.get("code") in (None, "replaces")):
            common["co_troca_documento"] = _last_segment(target)
            break
    author_cnes = None
    for author in _list(composition.get("author")):
        author_cnes = _text(_dict(_dict(author).get("identifier")).get("value"))
        if author_cnes is not None:
            break
    common.update(_establishment_fields(author_cnes, cnes_table, common_reasons))
    subject = _dict(composition.get("subject"))
    subject_key = _patient_key(subject, index)

    records = []
    for k, imm in enumerate(immunizations):
        reasons = list(common_reasons)
        record = dict(common)
        record["co_documento"] = doc_id if doc_id is None or len(immunizations) == 1 else f"{doc_id}-i{k}"
        patient_ref = _dict(imm.get("patient"))
        key = _patient_key(patient_ref, index)
        if key is not None and subject_key is not None and key != subject_key:
            reasons.append("fhir_paciente_divergente")
        key = key or subject_key
        if key is None:
            reasons.append("paciente_sem_cns_cpf")
        else:
            record[CPF_COLUMN if key[0] == "cpf" else CNS_COLUMN] = key[1]

        vacina = _coding_code(imm.get("vaccineCode"))
        record["co_vacina"] = vacina
        record["ds_vacina"] = _display("BRImunobiologico", vacina)
        record["dt_vacina"] = local_date(imm.get("occurrenceDateTime"))
        record["co_lote_vacina"] = _text(imm.get("lotNumber"))
        manufacturer = _dict(imm.get("manufacturer"))
        record["co_vacina_fabricante"] = _last_segment(_text(manufacturer.get("reference")))
        record["ds_vacina_fabricante"] = _text(manufacturer.get("display"))
        site = _coding_code(imm.get("site"))
        record["co_local_aplicacao"] = site
        record["ds_local_aplicacao"] = _display("BRLocalAplicacao", site)
        route = _coding_code(imm.get("route"))
        record["co_via_administracao"] = route
        record["ds_via_administracao"] = _display("BRViaAdministracao", route)
        protocol = _dict((_list(imm.get("protocolApplied")) or [{}])[0])
        dose = _text(protocol.get("doseNumberString")) or _text(protocol.get("doseNumberPositiveInt"))
        record["co_dose_vacina"] = dose
        record["ds_dose_vacina"] = _display("BRDose", dose)
        strategy_ext = _extension(protocol, EXT_ESTRATEGIA_VACINACAO) or _extension(imm, EXT_ESTRATEGIA_VACINACAO)
        strategy = _coding_code(_dict(strategy_ext).get("valueCodeableConcept"))
        record["co_estrategia_vacinacao"] = strategy
        record["ds_estrategia_vacinacao"] = _display("BREstrategiaVacinacao", strategy)
        group = _coding_code(_dict(_extension(imm, EXT_GRUPO_ATENDIMENTO)).get("valueCodeableConcept"))
        record["co_vacina_grupo_atendimento"] = group
        record["ds_vacina_grupo_atendimento"] = _display(
            "BRGrupoAtendimento", group.zfill(6) if group and group.isdigit() else group
        )

        facts = _find_patient(index, entries, [patient_ref, subject], key, patients)
        record.update(_patient_fields(facts, record["dt_vacina"]))
        record[SOURCE_REASONS_COLUMN] = reasons
        records.append(record)
    return records


# --- reading files --------------------------------------------------------------------------


def _is_ndjson(path: Path) -> bool | None:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".ndjson", ".jsonl")):
        return True
    if name.endswith(".json"):
        return False
    return None


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _is_patient_file(path: Path) -> bool:
    return "Patient" in re.split(r"[._\-]", path.name)


@dataclass
class _Entry:
    """One unit of input: a parsed Bundle, or the reason it could not be one."""

    origin: str
    bundle: Any = None
    reason: str | None = None
    placeholder: bool = False


class FhirSource(Source):
    kind: ClassVar[str] = "fhir"

    def __init__(
        self,
        path: str | Path,
        key: str | bytes | None = None,
        cnes_table: CnesTable | str | Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"entrada FHIR não encontrada: {self.path}")
        if batch_size < 1:
            raise ValueError("batch_size precisa ser positivo")
        self.batch_size = batch_size
        self._key = key
        self._cnes_table = cnes_table
        if self.path.is_dir():
            self._files = sorted(
                p for p in self.path.rglob("*") if p.is_file() and not p.name.startswith(".") and _is_ndjson(p) is not None
            )
            if not self._files:
                raise SourceError(f"diretório sem arquivos .json ou .ndjson: {self.path}")
        else:
            self._files = [self.path]

    def pseudonymizer(self) -> Callable[[pl.DataFrame], pl.Series]:
        from pipelines.pseudonym import Pseudonymizer

        return Pseudonymizer(self._key) if self._key is not None else Pseudonymizer.from_settings()

    def _table(self) -> CnesTable:
        if isinstance(self._cnes_table, CnesTable):
            return self._cnes_table
        self._cnes_table = CnesTable.load(self._cnes_table)
        return self._cnes_table

    def _name(self, file: Path) -> str:
        return file.name if file == self.path else file.relative_to(self.path).as_posix()

    # The whole input, entry by entry.

    def _entries(self) -> Iterator[_Entry]:
        for file in self._files:
            if not _is_patient_file(file):
                yield from self._file_entries(file)

    def _file_entries(self, file: Path) -> Iterator[_Entry]:
        name = self._name(file)
        direct = file == self.path
        try:
            ndjson = _is_ndjson(file)
            if ndjson is None:
                ndjson = self._looks_like_ndjson(file)
            if ndjson:
                yield from self._ndjson_entries(file, name, direct)
            else:
                yield from self._json_entries(file, name, direct)
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{name}: arquivo ilegível ({exc.__class__.__name__}: {exc})") from None

    def _looks_like_ndjson(self, file: Path) -> bool:
        with _open_binary(file) as handle:
            for line in handle:
                if line.strip():
                    try:
                        return isinstance(json.loads(line), dict)
                    except ValueError:
                        return False
        return False

    def _json_entries(self, file: Path, name: str, direct: bool) -> Iterator[_Entry]:
        with _open_binary(file) as handle:
            data = handle.read()
        if not data.strip():
            if direct:
                raise SourceError(f"{name}: arquivo vazio")
            return
        try:
            bundle = json.loads(data)
        except ValueError as exc:
            raise SourceError(f"{name}: não é JSON ({_first_line(exc)})") from None
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise SourceError(f"{name}: não é um Bundle FHIR")
        del data
        yield from self._bundle_entries(bundle, name)

    def _bundle_entries(self, bundle: dict, name: str) -> Iterator[_Entry]:
        nested = _nested_documents(bundle)
        if nested:
            for i, inner in enumerate(nested):
                yield _Entry(f"{name}:{i}", inner, placeholder=_has_placeholder(inner))
        else:
            yield _Entry(name, bundle, placeholder=_has_placeholder(bundle))

    def _ndjson_entries(self, file: Path, name: str, direct: bool) -> Iterator[_Entry]:
        first = True
        with _open_binary(file) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                origin = f"{name}:{number}"
                try:
                    resource = json.loads(line)
                except ValueError as exc:
                    if first:
                        raise SourceError(f"{origin}: não é NDJSON ({_first_line(exc)})") from None
                    yield _Entry(origin, reason="fhir_json_invalido")
                    continue
                if first and not (isinstance(resource, dict) and resource.get("resourceType") == "Bundle"):
                    raise SourceError(f"{origin}: não é um Bundle FHIR (NDJSON de documentos RIA)")
                first = False
                if _nested_documents(resource):
                    yield from self._bundle_entries(resource, origin)
                else:
                    yield _Entry(origin, resource, placeholder=_PLACEHOLDER_BYTES.search(line) is not None)
        if first and direct:
            raise SourceError(f"{name}: arquivo vazio")

    def _patients(self) -> PatientIndex:
        index = PatientIndex()
        for file in self._files:
            if not _is_patient_file(file):
                continue
            name = self._name(file)
            try:
                with _open_binary(file) as handle:
                    if _is_ndjson(file) is False:
                        resources = _patients_of_json(handle.read(), name)
                    else:
                        resources = _patients_of_ndjson(handle, name)
                    for resource in resources:
                        index.add(resource)
            except (OSError, EOFError, zlib.error) as exc:
                raise SourceError(f"{name}: arquivo ilegível ({exc.__class__.__name__}: {exc})") from None
        return index

    def batches(self) -> Iterator[pl.DataFrame]:
        table = self._table()
        patients = self._patients()
        pending: list[dict[str, Any]] = []
        for entry in self._entries():
            if entry.reason is not None:
                pending.append(_bad_record(entry.origin, entry.reason))
            else:
                pending.extend(
                    map_document(entry.bundle, entry.origin, cnes_table=table, patients=patients, placeholder=entry.placeholder)
                )
            if len(pending) >= self.batch_size:
                yield records_frame(pending)
                pending = []
        if pending:
            yield records_frame(pending)


def _nested_documents(bundle: Any) -> list:
    """The Bundles inside a Bundle that is not itself a document (a collection or search
    result of documents); empty for anything else."""
    bundle = _dict(bundle)
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") == "document":
        return []
    return [
        _dict(e).get("resource")
        for e in _list(bundle.get("entry"))
        if _dict(_dict(e).get("resource")).get("resourceType") == "Bundle"
    ]


def records_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    """Records of ``map_document`` as a raw frame (``BATCH_SCHEMA``; absent keys are null)."""
    return pl.from_dicts(records, schema=BATCH_SCHEMA)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _has_placeholder(resource: Any) -> bool:
    return _PLACEHOLDER_TEXT.search(json.dumps(resource, ensure_ascii=False)) is not None


def _patients_of_ndjson(handle: Iterable[bytes], name: str) -> Iterator[dict]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            resource = json.loads(line)
        except ValueError as exc:
            raise SourceError(f"{name}:{number}: Patient ilegível ({_first_line(exc)})") from None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            yield resource
        else:
            raise SourceError(f"{name}:{number}: não é um recurso Patient")


def _patients_of_json(data: bytes, name: str) -> Iterator[dict]:
    try:
        resource = json.loads(data) if data.strip() else {"resourceType": "Bundle"}
    except ValueError as exc:
        raise SourceError(f"{name}: não é JSON ({_first_line(exc)})") from None
    if _dict(resource).get("resourceType") == "Patient":
        yield resource
        return
    if _dict(resource).get("resourceType") != "Bundle":
        raise SourceError(f"{name}: não é um recurso Patient")
    for entry in _list(resource.get("entry")):
        inner = _dict(_dict(entry).get("resource"))
        if inner.get("resourceType") == "Patient":
            yield inner
