"""The D-1 assets. Thin: each calls one step of ``pipelines.flow`` (which calls
``pipelines.extract``, ``pipelines.partition`` and ``serving.publish``) and turns
its outcome into metadata.

The whole day, partitioned by entry day (the schedule and backfills run this)::

    rnds_staging ─┬─> d1_staged_files ──> d1_publication
    rnds_quarantine┘

One UF of a day re-run alone, partitioned by day × UF (the portal's "Atualizar",
``d1_uf_job``): the day is extracted again from the source, only that UF's files
and its municipalities' are staged and published, the other UFs' files stay as
they are::

    d1_uf_staged_files ──> d1_uf_publication
"""

from dataclasses import dataclass

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    MultiPartitionsDefinition,
    RetryPolicy,
    asset,
    multi_asset,
)

from assets.errors import failing_clearly
from assets.gate import require_checks_passed
from assets.metadata import counts_metadata, files_metadata, location, publication_metadata, reasons_markdown, rows_per_uf
from assets.partitions import day_of, uf_of
from assets.resources import CatalogDb, ObjectStore, PipelineWork, RndsSource
from pipelines import dates, flow

GROUP_DAY = "d1_dia"
GROUP_UF = "d1_uf"

STAGING = AssetKey("rnds_staging")
QUARANTINE = AssetKey("rnds_quarantine")
STAGED_FILES = AssetKey("d1_staged_files")
PUBLICATION = AssetKey("d1_publication")
UF_STAGED_FILES = AssetKey("d1_uf_staged_files")
UF_PUBLICATION = AssetKey("d1_uf_publication")


@dataclass(frozen=True)
class D1Assets:
    extract: AssetsDefinition
    staged_files: AssetsDefinition
    publication: AssetsDefinition
    uf_staged_files: AssetsDefinition
    uf_publication: AssetsDefinition

    @property
    def day_assets(self) -> list[AssetsDefinition]:
        return [self.extract, self.staged_files, self.publication]

    @property
    def uf_assets(self) -> list[AssetsDefinition]:
        return [self.uf_staged_files, self.uf_publication]

    @property
    def all(self) -> list[AssetsDefinition]:
        return [*self.day_assets, *self.uf_assets]


def _publish(
    context: AssetExecutionContext,
    gate: dict[AssetKey, list[str]],
    work: flow.DayWork,
    pipeline_work: PipelineWork,
    object_store: ObjectStore,
    catalog_db: CatalogDb,
) -> dict:
    require_checks_passed(context.instance, gate, context.partition_key)
    with failing_clearly(f"publicação de {work.day} ({work.scope})"):
        storage = object_store.open()
        with catalog_db.open() as catalog:
            record = flow.publish_staged(work, storage=storage, catalog=catalog, threads=pipeline_work.threads())
    counts = flow.staging_counts(work)
    return {
        **publication_metadata(record, catalog_db.display_url()),
        "linhas por UF": rows_per_uf(flow.load_staged(work)),
        "em quarentena": counts.quarantined,
        "principais motivos da quarentena": reasons_markdown(counts),
    }


def build_assets(
    days: DailyPartitionsDefinition,
    day_ufs: MultiPartitionsDefinition,
    retry: RetryPolicy,
    gates: dict[AssetKey, dict[AssetKey, list[str]]],
) -> D1Assets:
    """``gates``: for each publication asset, the blocking checks (by asset) that must
    have passed before it publishes."""

    @multi_asset(
        name="rnds_extract",
        specs=[
            AssetSpec(
                STAGING,
                group_name=GROUP_DAY,
                kinds={"parquet"},
                description="Os registros válidos do dia de entrada na RNDS, no formato canônico do contrato "
                "(Parquet ordenado por co_documento, contagens nos metadados do arquivo).",
            ),
            AssetSpec(
                QUARANTINE,
                group_name=GROUP_DAY,
                kinds={"parquet"},
                description="Os registros do dia que a validação recusou, com os valores originais e os motivos.",
            ),
        ],
        partitions_def=days,
        retry_policy=retry,
    )
    def rnds_extract(context: AssetExecutionContext, rnds_source: RndsSource, pipeline_work: PipelineWork):
        day = day_of(context.partition_key)
        work = pipeline_work.work(day)
        with failing_clearly(f"extração de {day}"):
            source = rnds_source.open(day)
            counts = flow.extract_day(work, source, today=dates.today())
        summary = counts_metadata(counts)
        yield MaterializeResult(
            asset_key=STAGING,
            metadata={
                **summary,
                "fonte": rnds_source.describe(day),
                "Parquet": location(str(work.staging)),
                "bytes do Parquet": MetadataValue.int(work.staging.stat().st_size),
                "segundos": MetadataValue.float(counts.seconds),
            },
        )
        yield MaterializeResult(
            asset_key=QUARANTINE,
            metadata={
                "em quarentena": counts.quarantined,
                "lidos": counts.read,
                "fração em quarentena": summary["fração em quarentena"],
                "principais motivos da quarentena": summary["principais motivos da quarentena"],
                "motivos": MetadataValue.json(dict(sorted(counts.reasons.items(), key=lambda item: -item[1]))),
                "Parquet": location(str(work.quarantine)),
            },
        )

    @asset(
        name=STAGED_FILES.path[0],
        deps=[STAGING],
        partitions_def=days,
        group_name=GROUP_DAY,
        kinds={"csv"},
        retry_policy=retry,
        description="Os arquivos CSV.gz do dia, um por UF e um por município com registros, preparados e "
        "ainda não publicados (as verificações bloqueantes rodam sobre eles antes de qualquer envio).",
    )
    def d1_staged_files(context: AssetExecutionContext, pipeline_work: PipelineWork) -> MaterializeResult:
        work = pipeline_work.work(day_of(context.partition_key))
        with failing_clearly(f"particionamento de {work.day}"):
            result = flow.stage_files(work)
        return MaterializeResult(metadata={**files_metadata(result), "diretório": location(str(work.files_dir))})

    @asset(
        name=PUBLICATION.path[0],
        deps=[STAGED_FILES],
        partitions_def=days,
        group_name=GROUP_DAY,
        retry_policy=retry,
        description="A publicação do dia: arquivos enviados ao armazenamento, SHA-256 conferido lendo de volta, "
        "manifesto gravado e registro no catálogo numa única transação (o portal lista a partir daí). "
        "Idempotente: republicar o mesmo conteúdo não cria versão nova.",
    )
    def d1_publication(
        context: AssetExecutionContext, pipeline_work: PipelineWork, object_store: ObjectStore, catalog_db: CatalogDb
    ) -> MaterializeResult:
        work = pipeline_work.work(day_of(context.partition_key))
        return MaterializeResult(metadata=_publish(context, gates[PUBLICATION], work, pipeline_work, object_store, catalog_db))

    @asset(
        name=UF_STAGED_FILES.path[0],
        partitions_def=day_ufs,
        group_name=GROUP_UF,
        kinds={"csv"},
        retry_policy=retry,
        description="Uma UF de um dia reprocessada sozinha: o dia extraído de novo da fonte e só os arquivos "
        "da UF e dos seus municípios preparados (os das outras UFs não são tocados).",
    )
    def d1_uf_staged_files(
        context: AssetExecutionContext, rnds_source: RndsSource, pipeline_work: PipelineWork
    ) -> MaterializeResult:
        day, uf = day_of(context.partition_key), uf_of(context.partition_key)
        work = pipeline_work.work(day, uf)
        with failing_clearly(f"extração de {day} para {uf}"):
            counts = flow.extract_day(work, rnds_source.open(day), today=dates.today())
            result = flow.stage_files(work)
        return MaterializeResult(
            metadata={
                **counts_metadata(counts),
                **files_metadata(result),
                "fonte": rnds_source.describe(day),
                "Parquet": location(str(work.staging)),
                "diretório": location(str(work.files_dir)),
            }
        )

    @asset(
        name=UF_PUBLICATION.path[0],
        deps=[UF_STAGED_FILES],
        partitions_def=day_ufs,
        group_name=GROUP_UF,
        retry_policy=retry,
        description="A publicação de uma UF de um dia, sozinha: nova versão só dos arquivos da UF que mudaram, "
        "no mesmo catálogo e com o mesmo manifesto do dia.",
    )
    def d1_uf_publication(
        context: AssetExecutionContext, pipeline_work: PipelineWork, object_store: ObjectStore, catalog_db: CatalogDb
    ) -> MaterializeResult:
        key = context.partition_key
        work = pipeline_work.work(day_of(key), uf_of(key))
        return MaterializeResult(metadata=_publish(context, gates[UF_PUBLICATION], work, pipeline_work, object_store, catalog_db))

    return D1Assets(rnds_extract, d1_staged_files, d1_publication, d1_uf_staged_files, d1_uf_publication)
