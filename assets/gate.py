"""Publication's own guard: it refuses staged files whose blocking checks have not
all passed for this partition since the files (and the staging object) were last
materialised.

In a run of ``d1_daily_job`` or ``d1_uf_job`` the checks run before publication in
the same run and a failure already stops it; this guard covers a publication
launched alone (the UI's "Materialize" on ``d1_publication``, a run re-executed
from a step), which would otherwise publish whatever is on disk.
"""

from typing import Iterable, Mapping

from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter, DagsterInstance, Failure
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

HISTORY = 200  # check executions looked at per check (about a backfill of months)
_VERDICTS = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


def _latest_verdict(instance: DagsterInstance, key: AssetCheckKey, partition_key: str, run_partitions: dict):
    for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=HISTORY):
        if record.status not in _VERDICTS or record.event is None:
            continue
        if record.run_id not in run_partitions:
            run = instance.get_run_by_id(record.run_id)
            run_partitions[record.run_id] = run.tags.get("dagster/partition") if run is not None else None
        if run_partitions[record.run_id] == partition_key:
            return record
    return None


def require_checks_passed(instance: DagsterInstance, checks: Mapping[AssetKey, Iterable[str]], partition_key: str) -> None:
    problems = []
    run_partitions: dict[str, str | None] = {}
    for asset_key, names in checks.items():
        asset = asset_key.to_user_string()
        latest = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition_key]), limit=1
        ).records
        if not latest:
            problems.append(f"{asset} não foi materializado para {partition_key}")
            continue
        since = latest[0].timestamp
        for name in names:
            verdict = _latest_verdict(instance, AssetCheckKey(asset_key, name), partition_key, run_partitions)
            if verdict is None or verdict.event.timestamp < since:
                problems.append(f"a verificação {asset}/{name} não rodou depois da última materialização")
            elif verdict.status != AssetCheckExecutionRecordStatus.SUCCEEDED:
                problems.append(f"a verificação {asset}/{name} não passou")
    if problems:
        more = f" (e mais {len(problems) - 1})" if len(problems) > 1 else ""
        raise Failure(
            description=f"publicação de {partition_key} recusada: {problems[0]}{more}; rode o job inteiro do dia",
            metadata={"problemas": "\n".join(problems)},
            allow_retries=False,
        )
