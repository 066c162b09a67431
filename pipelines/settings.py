"""Pipeline settings: which source feeds a day and the pseudonymisation key.

Environment variables ``VACINA_D1_*``; the embedded default is the synthetic
source, so a fresh machine runs the whole flow with nothing configured.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from serving.settings import ServingSettings


class PipelineSettings(ServingSettings):
    model_config = SettingsConfigDict(env_prefix="VACINA_D1_", extra="ignore")

    # synthetic | pni-csv | covid-csv | fhir
    source: str = "synthetic"
    # File, directory or zip the non-synthetic sources read.
    source_location: str | None = None
    synthetic_records: int = 20_000
    synthetic_seed: int = 2026
    # Key of the keyed hash that turns CNS/CPF into co_paciente. When unset, a
    # random key is created once in the data home (see pipelines.pseudonym).
    pseudonym_key: SecretStr | None = None
    # A full CNES tbEstabelecimento dump (DATASUS); unset: the small table shipped in pipelines/data.
    cnes_table: Path | None = None
