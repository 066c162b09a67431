"""Blocking asset checks, ERROR severity: when one fails, the assets downstream of
the checked one do not run and the run fails (red in the UI; the failure sensor
reports it). The checks on the staging object and on the staged files therefore
stop a bad day before anything is uploaded; the checks on the publication
re-read what was committed and fail the run if the store does not hold it.

Each check is a thin wrapper over ``pipelines.day_checks``. The checks of one asset
run in one step (``multi_asset_check``): ``day_checks.evaluate_all`` runs them on
both cores and they share one read of each file; each still reports, passes or
fails, and gates under its own name.
"""

import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    multi_asset_check,
)

from assets.d1 import PUBLICATION, STAGED_FILES, STAGING, UF_PUBLICATION, UF_STAGED_FILES
from assets.metadata import location
from assets.partitions import day_of, uf_of
from assets.resources import CatalogDb, ObjectStore, PipelineWork
from pipelines import day_checks
from pipelines.day_checks import CheckOutcome
from pipelines.flow import DayWork


@dataclass(frozen=True)
class Resources:
    work: PipelineWork
    store: ObjectStore
    catalog: CatalogDb


Evaluate = Callable[[DayWork, Resources], CheckOutcome]


def _published_objects(work: DayWork, res: Resources) -> CheckOutcome:
    with res.catalog.open() as catalog:
        return day_checks.published_objects_verified(work, res.store.open(), catalog)


# name -> (description, evaluation)
STAGING_CHECKS: dict[str, tuple[str, Evaluate]] = {
    "counts_reconcile": (
        "Lidos = válidos + quarentena, e os dois Parquet têm exatamente essas contagens.",
        lambda work, res: day_checks.counts_reconcile(work),
    ),
    "layout_matches_contract": (
        "Colunas, ordem e tipos do contrato; códigos com seus dígitos; campos obrigatórios preenchidos; "
        "todos os registros do dia de entrada.",
        lambda work, res: day_checks.staging_layout(work),
    ),
    "no_duplicate_co_documento": (
        "Nenhum co_documento repetido (nem ausente) no dia.",
        lambda work, res: day_checks.no_duplicate_documents(work),
    ),
    "quarantine_share_under_limit": (
        "A fração de registros em quarentena não passa do limite configurado (VACINA_D1_MAX_QUARANTINE_SHARE).",
        lambda work, res: day_checks.quarantine_share(work, res.work.quarantine_limit()),
    ),
}
STAGED_FILES_CHECKS: dict[str, tuple[str, Evaluate]] = {
    "placement_reconciles": (
        "Cada registro válido está exatamente nos arquivos que a regra de ocorrência/residência manda: "
        "as linhas por arquivo do particionador são iguais à recontagem independente (DuckDB sobre o Parquet).",
        lambda work, res: day_checks.placement_reconciles(work),
    ),
    "staged_files_intact": (
        "Cada arquivo preparado existe com o tamanho e o SHA-256 que o particionador gravou, e não há outros.",
        lambda work, res: day_checks.staged_files_intact(work),
    ),
    "files_match_layout": (
        "Cabeçalho do layout em todos os arquivos; nos arquivos de UF, as 57 colunas, datas ISO, códigos com "
        "seus dígitos, vínculo válido e nenhum co_documento repetido.",
        lambda work, res: day_checks.staged_files_layout(work),
    ),
}
PUBLICATION_CHECKS: dict[str, tuple[str, Evaluate]] = {
    "objects_sha256_verified": (
        "Cada objeto publicado, e o manifesto, lidos de volta do armazenamento: SHA-256 e tamanho iguais aos "
        "do manifesto e do catálogo.",
        _published_objects,
    ),
    "manifest_reconciles": (
        "As linhas por arquivo do manifesto são iguais à recontagem independente a partir do Parquet "
        "publicado, e as contagens de origem fecham (lidos = válidos + quarentena).",
        lambda work, res: day_checks.manifest_reconciles(work, res.store.open()),
    ),
}


def _metadata_value(name: str, value: Any) -> Any:
    if isinstance(value, list):
        return MetadataValue.md("\n".join(f"- {item}" for item in value) or "—")
    if isinstance(value, dict):
        return MetadataValue.json(value)
    if name == "manifesto" and isinstance(value, str):
        return location(value)
    return value


def _result(asset_key: AssetKey, name: str, outcome: CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=name,
        passed=outcome.passed,
        severity=AssetCheckSeverity.ERROR,
        description=outcome.summary,
        metadata={label: _metadata_value(label, value) for label, value in outcome.metadata.items()},
    )


def _build(asset_key: AssetKey, checks: dict[str, tuple[str, Evaluate]]) -> AssetChecksDefinition:
    # Not partitioned themselves (partitioned checks are a preview feature in 1.13):
    # each check reads the partition of the run it is in.
    @multi_asset_check(
        specs=[
            AssetCheckSpec(name, asset=asset_key, description=description, blocking=True)
            for name, (description, _) in checks.items()
        ],
        name=f"{asset_key.to_python_identifier()}_checks",
        can_subset=True,
    )
    def _checks(
        context: AssetCheckExecutionContext, pipeline_work: PipelineWork, object_store: ObjectStore, catalog_db: CatalogDb
    ) -> Iterator[AssetCheckResult]:
        selected = [key.name for key in context.selected_asset_check_keys if key.asset_key == asset_key]
        if not context.has_partition_key:
            for name in selected:
                yield _result(
                    asset_key,
                    name,
                    CheckOutcome(False, "rode a verificação numa execução de uma partição (um dia, ou um dia e uma UF)"),
                )
            return
        key = context.partition_key
        work = pipeline_work.work(day_of(key), uf_of(key))
        resources = Resources(pipeline_work, object_store, catalog_db)
        outcomes = day_checks.evaluate_all({name: functools.partial(checks[name][1], work, resources) for name in selected})
        for name in selected:
            outcome = outcomes[name]
            if not outcome.passed:
                context.log.error(f"{asset_key.to_user_string()}/{name} [{key}]: {outcome.summary}")
            yield _result(asset_key, name, outcome)

    return _checks


PLAN = [
    (STAGING, STAGING_CHECKS),
    (STAGED_FILES, STAGED_FILES_CHECKS),
    (PUBLICATION, PUBLICATION_CHECKS),
    # The UF re-run extracts and stages in one asset: it carries both sets of checks.
    (UF_STAGED_FILES, {**STAGING_CHECKS, **STAGED_FILES_CHECKS}),
    (UF_PUBLICATION, PUBLICATION_CHECKS),
]


def publication_gates() -> dict[AssetKey, dict[AssetKey, list[str]]]:
    """What must have passed before each publication asset publishes."""
    names = {asset_key: list(checks) for asset_key, checks in PLAN}
    return {
        PUBLICATION: {STAGING: names[STAGING], STAGED_FILES: names[STAGED_FILES]},
        UF_PUBLICATION: {UF_STAGED_FILES: names[UF_STAGED_FILES]},
    }


def build_checks() -> list[AssetChecksDefinition]:
    return [_build(asset_key, checks) for asset_key, checks in PLAN]
