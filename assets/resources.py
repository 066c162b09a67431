"""The pipeline's resources: where records come from, where files go, the catalog,
and the pipeline's working area. Each field comes from a ``VACINA_D1_*``
environment variable when it is set (as a Dagster ``EnvVar``, so the UI shows the
variable's name, never a secret's value); a field left empty falls back to the
embedded default of the settings classes (``pipelines.flow.FlowSettings``), so
a machine with nothing configured runs the synthetic source into ``./var``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from pipelines.flow import DayWork, FlowSettings


def _settings() -> FlowSettings:
    return FlowSettings()


class RndsSource(ConfigurableResource):
    """A fonte dos registros de um dia de entrada na RNDS."""

    kind: Optional[str] = Field(
        default=None, description="synthetic, pni-csv, covid-csv ou fhir (VACINA_D1_SOURCE; padrão: synthetic)"
    )
    location: Optional[str] = Field(
        default=None,
        description="arquivo, zip ou diretório da fonte; '{date}' vira o dia AAAA-MM-DD (VACINA_D1_SOURCE_LOCATION)",
    )
    synthetic_records: Optional[int] = Field(
        default=None, description="registros por dia da fonte sintética (VACINA_D1_SYNTHETIC_RECORDS; padrão 20000)"
    )
    synthetic_seed: Optional[int] = Field(
        default=None, description="semente da fonte sintética (VACINA_D1_SYNTHETIC_SEED; padrão 2026)"
    )
    pseudonym_key: Optional[str] = Field(
        default=None,
        description="chave do hash de CNS/CPF (VACINA_D1_PSEUDONYM_KEY; padrão: arquivo de chave em VACINA_D1_HOME)",
    )
    cnes_table: Optional[str] = Field(
        default=None, description="tabela tbEstabelecimento do CNES (VACINA_D1_CNES_TABLE; padrão: a tabela embutida)"
    )

    def resolved(self) -> dict[str, Any]:
        settings = _settings()
        key = self.pseudonym_key
        if key is None and settings.pseudonym_key is not None:
            key = settings.pseudonym_key.get_secret_value()
        return {
            "kind": self.kind or settings.source,
            "location": self.location if self.location is not None else settings.source_location,
            "records": self.synthetic_records if self.synthetic_records is not None else settings.synthetic_records,
            "seed": self.synthetic_seed if self.synthetic_seed is not None else settings.synthetic_seed,
            "key": key or None,
            "cnes_table": self.cnes_table or (str(settings.cnes_table) if settings.cnes_table else None),
        }

    def open(self, day: dt.date):
        """The source of ``day`` (``pipelines.sources.open_source``)."""
        from pipelines.sources import open_source

        config = self.resolved()
        kind = config["kind"]
        if kind == "synthetic":
            return open_source("synthetic", day=day, records=config["records"], seed=config["seed"])
        location = config["location"]
        if location is not None:
            location = location.replace("{date}", day.isoformat())
        options: dict[str, Any] = {}
        if kind == "fhir":
            options.update(key=config["key"], cnes_table=config["cnes_table"])
        return open_source(kind, location, **options)

    def describe(self, day: dt.date) -> str:
        """The source as a person reads it in the metadata (never the key)."""
        config = self.resolved()
        if config["kind"] == "synthetic":
            return f"sintética ({config['records']} registros, semente {config['seed']})"
        location = (config["location"] or "").replace("{date}", day.isoformat())
        return f"{config['kind']}: {location}"


class ObjectStore(ConfigurableResource):
    """O armazenamento dos arquivos publicados."""

    url: Optional[str] = Field(
        default=None,
        description="diretório, file:// ou s3://bucket/prefixo (VACINA_D1_STORAGE_URL; padrão: VACINA_D1_HOME/storage)",
    )

    def resolved_url(self) -> str:
        return self.url or _settings().resolved_storage_url

    def open(self):
        from serving.stores import open_storage

        return open_storage(self.resolved_url())


class CatalogDb(ConfigurableResource):
    """O catálogo dos arquivos publicados (o que o portal lista)."""

    url: Optional[str] = Field(
        default=None,
        description="URL SQLAlchemy (VACINA_D1_CATALOG_URL; padrão: sqlite em VACINA_D1_HOME/catalog.db)",
    )

    def resolved_url(self) -> str:
        return self.url or _settings().resolved_catalog_url

    def display_url(self) -> str:
        import sqlalchemy as sa

        try:
            return sa.engine.make_url(self.resolved_url()).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - shown as configured when it does not parse
            return "(URL do catálogo ilegível)"

    @contextlib.contextmanager
    def open(self) -> Iterator[Any]:
        from serving.catalog import Catalog

        catalog = Catalog(self.resolved_url()).upgrade()
        try:
            yield catalog
        finally:
            catalog.engine.dispose()


class PipelineWork(ConfigurableResource):
    """A área de trabalho do pipeline e os limites das verificações."""

    home: Optional[str] = Field(default=None, description="diretório de dados (VACINA_D1_HOME; padrão: ./var)")
    max_quarantine_share: Optional[float] = Field(
        default=None,
        description="fração máxima de registros em quarentena antes de barrar a publicação "
        "(VACINA_D1_MAX_QUARANTINE_SHARE; padrão 0.05)",
    )
    publish_threads: Optional[int] = Field(
        default=None, description="envios simultâneos ao armazenamento (VACINA_D1_PUBLISH_THREADS; padrão 8)"
    )

    def home_dir(self) -> Path:
        return Path(self.home) if self.home else _settings().home

    def work(self, day: dt.date, uf: str | None = None) -> DayWork:
        return DayWork(self.home_dir(), day, uf)

    def quarantine_limit(self) -> float:
        return self.max_quarantine_share if self.max_quarantine_share is not None else _settings().max_quarantine_share

    def threads(self) -> int:
        return self.publish_threads if self.publish_threads is not None else _settings().publish_threads


# Each resource field and the variable it reads.
_ENV: dict[str, dict[str, tuple[str, str]]] = {
    "rnds_source": {
        "kind": ("VACINA_D1_SOURCE", "str"),
        "location": ("VACINA_D1_SOURCE_LOCATION", "str"),
        "synthetic_records": ("VACINA_D1_SYNTHETIC_RECORDS", "int"),
        "synthetic_seed": ("VACINA_D1_SYNTHETIC_SEED", "int"),
        "pseudonym_key": ("VACINA_D1_PSEUDONYM_KEY", "str"),
        "cnes_table": ("VACINA_D1_CNES_TABLE", "str"),
    },
    "object_store": {"url": ("VACINA_D1_STORAGE_URL", "str")},
    "catalog_db": {"url": ("VACINA_D1_CATALOG_URL", "str")},
    "pipeline_work": {
        "home": ("VACINA_D1_HOME", "str"),
        "max_quarantine_share": ("VACINA_D1_MAX_QUARANTINE_SHARE", "float"),
        "publish_threads": ("VACINA_D1_PUBLISH_THREADS", "int"),
    },
}
_CLASSES = {"rnds_source": RndsSource, "object_store": ObjectStore, "catalog_db": CatalogDb, "pipeline_work": PipelineWork}


def _env_var(name: str, kind: str, environ: Mapping[str, str]):
    if kind == "int":
        return EnvVar.int(name)
    if kind == "float":
        # EnvVar has no float form: the value is read now (it is not a secret).
        return float(environ[name])
    return EnvVar(name)


def resources_from_env(environ: Mapping[str, str] | None = None) -> dict[str, ConfigurableResource]:
    """The four resources, each field an ``EnvVar`` when its variable is set, else empty
    (the embedded default)."""
    environ = os.environ if environ is None else environ
    resources = {}
    for key, fields in _ENV.items():
        values = {field: _env_var(name, kind, environ) for field, (name, kind) in fields.items() if environ.get(name, "").strip()}
        resources[key] = _CLASSES[key](**values)
    return resources


def env_variables() -> list[str]:
    """Every variable the resources read (for the README and the tests)."""
    return [name for fields in _ENV.values() for name, _ in fields.values()]
