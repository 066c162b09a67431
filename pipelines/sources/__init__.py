"""RNDS sources: synthetic (the embedded default), OpenDataSUS CSV exports, RNDS FHIR."""

from __future__ import annotations

from typing import Any

from pipelines.sources.base import Source, SourceError

SOURCE_KINDS = ("synthetic", "pni-csv", "covid-csv", "fhir")


def open_source(kind: str, location: str | None = None, **options: Any) -> Source:
    """The source of a kind, reading ``location`` (a file, directory or zip) where it has one."""
    if kind == "synthetic":
        from pipelines.sources.synthetic import SyntheticSource

        return SyntheticSource(**options)
    if location is None:
        raise SourceError(f"a fonte {kind} precisa de um arquivo de entrada")
    if kind == "pni-csv":
        from pipelines.sources.opendatasus import PniCsvSource

        return PniCsvSource(location, **options)
    if kind == "covid-csv":
        from pipelines.sources.opendatasus import CovidCsvSource

        return CovidCsvSource(location, **options)
    if kind == "fhir":
        from pipelines.sources.fhir import FhirSource

        return FhirSource(location, **options)
    raise SourceError(f"fonte desconhecida: {kind!r} (use {', '.join(SOURCE_KINDS)})")


__all__ = ["SOURCE_KINDS", "Source", "SourceError", "open_source"]
