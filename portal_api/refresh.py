""" "Atualizar": ask the pipeline to re-run one day for one UF through Dagster's
GraphQL API (the webserver's ``launchRun`` mutation).

The contract with the pipeline: job ``d1_uf_job`` of the code location
``VACINA_D1_DAGSTER_LOCATION`` (repository ``__repository__``), partitioned by a
MultiPartitionsDefinition with dimensions ``date`` (YYYY-MM-DD) and ``uf``; the
partition key joins the dimensions in name order, ``2026-11-21|DF``. The run carries
the tags Dagster itself puts on a partitioned run (``dagster/partition`` and one
``dagster/partition/<dimension>`` per dimension) plus ``vacina_d1/requested_by``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import httpx

LAUNCH_RUN = """
mutation LaunchD1Refresh($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


class DagsterUnavailable(Exception):
    """The webserver could not be reached or did not answer in time."""


class DagsterRefused(Exception):
    """The webserver answered but did not launch the run."""


def partition_key(day: dt.date, uf: str) -> str:
    # Multi-partition keys list the dimension values in dimension-name order: date, uf.
    return f"{day.isoformat()}|{uf.upper()}"


def run_tags(day: dt.date, uf: str, requested_by: int) -> dict[str, str]:
    return {
        "dagster/partition": partition_key(day, uf),
        "dagster/partition/date": day.isoformat(),
        "dagster/partition/uf": uf.upper(),
        "vacina_d1/requested_by": str(requested_by),
    }


@dataclass(frozen=True)
class DagsterClient:
    graphql_url: str
    location: str
    repository: str
    job: str
    timeout_seconds: float = 10.0

    def launch_day(self, day: dt.date, uf: str, *, requested_by: int) -> str:
        """Launch the job for one day and UF; the run id."""
        variables = {
            "executionParams": {
                "selector": {
                    "repositoryLocationName": self.location,
                    "repositoryName": self.repository,
                    "jobName": self.job,
                },
                "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in run_tags(day, uf, requested_by).items()]},
            }
        }
        try:
            response = httpx.post(
                self.graphql_url,
                json={"query": LAUNCH_RUN, "variables": variables},
                timeout=self.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise DagsterUnavailable(f"{exc.__class__.__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise DagsterUnavailable(f"HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            raise DagsterRefused(f"resposta não é JSON (HTTP {response.status_code})") from None
        if payload.get("errors"):
            raise DagsterRefused("; ".join(str(e.get("message")) for e in payload["errors"])[:500])
        result = (payload.get("data") or {}).get("launchRun") or {}
        if result.get("__typename") == "LaunchRunSuccess":
            return result["run"]["runId"]
        message = result.get("message") or "; ".join(e.get("message", "") for e in result.get("errors") or [])
        raise DagsterRefused(f"{result.get('__typename')}: {message}"[:500])
