"""A stand-in code location for the portal's refresh tests, with the contract the
real pipeline follows: job ``d1_uf_job`` over a MultiPartitionsDefinition of
``date`` (daily) × ``uf`` (the 27 UFs). Used until pipelines/definitions.py exists."""

from dagster import (
    DailyPartitionsDefinition,
    Definitions,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    asset,
    define_asset_job,
)

from pipelines import reference

D1_PARTITIONS = MultiPartitionsDefinition(
    {
        "date": DailyPartitionsDefinition(start_date="2020-01-01", end_offset=1),
        "uf": StaticPartitionsDefinition(sorted(reference.ufs())),
    }
)


@asset(partitions_def=D1_PARTITIONS)
def d1_uf_files() -> None:
    """Stands for the day's files of one UF."""


d1_uf_job = define_asset_job("d1_uf_job", selection=[d1_uf_files], partitions_def=D1_PARTITIONS)

defs = Definitions(assets=[d1_uf_files], jobs=[d1_uf_job])
