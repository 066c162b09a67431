"""The state of the "Atualizar" runs, read from Dagster's GraphQL API (``runsOrError``)
for the files on a page: one request for all of them, short timeout; when Dagster does
not answer the page shows what the portal knows (the request was made)."""

from __future__ import annotations

import logging

import httpx

from portal_api.refresh import DagsterClient

log = logging.getLogger("portal_api.web")

RUNS = """
query D1RefreshStates($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    __typename
    ... on Runs { results { runId status } }
  }
}
"""

# Dagster's run statuses → (label, css state).
LABELS = {
    "QUEUED": ("Na fila", "info"),
    "NOT_STARTED": ("Na fila", "info"),
    "STARTING": ("Em execução", "warning"),
    "STARTED": ("Em execução", "warning"),
    "CANCELING": ("Em execução", "warning"),
    "SUCCESS": ("Concluída", "success"),
    "FAILURE": ("Falhou", "danger"),
    "CANCELED": ("Cancelada", "danger"),
}


def states(client: DagsterClient, run_ids: list[str]) -> dict[str, str]:
    if not run_ids:
        return {}
    try:
        response = httpx.post(
            client.graphql_url, json={"query": RUNS, "variables": {"ids": run_ids}}, timeout=min(client.timeout_seconds, 3.0)
        )
        results = response.json()["data"]["runsOrError"]["results"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.info("estado das execuções indisponível: %s", exc)
        return {}
    return {row["runId"]: row["status"] for row in results}


def label(refresh, run_states: dict[str, str]) -> tuple[str, str] | None:
    """What to show beside a file: None when no "Atualizar" was asked for its day."""
    if refresh is None:
        return None
    if refresh.status == "falhou":
        return ("Pedido recusado", "danger")
    status = run_states.get(refresh.run_id or "")
    if status:
        return LABELS.get(status, (status.title(), "info"))
    return ("Solicitada", "info")
