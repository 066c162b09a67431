"""One alert, wherever it is raised (a Dagster sensor, the scrub, the portal): a JSON
line in ``<VACINA_D1_HOME>/alertas.jsonl``, an error in the caller's log and, when
``VACINA_D1_ALERT_WEBHOOK`` is set, a JSON POST to it. No Dagster, no FastAPI here."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import Any

ALERTS_FILE = "alertas.jsonl"


def raise_alert(payload: dict[str, Any], home: str | os.PathLike, log: Any = None) -> dict[str, Any]:
    log = log or logging.getLogger("vacina_d1")
    payload = {"em": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **payload}
    line = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    log.error(f"vacina-d1 alerta: {line}")
    try:
        Path(home).mkdir(parents=True, exist_ok=True)
        with open(Path(home) / ALERTS_FILE, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        log.error(f"alerta não gravado em {ALERTS_FILE}: {exc}")
    webhook = os.environ.get("VACINA_D1_ALERT_WEBHOOK", "").strip()
    if webhook:
        import httpx

        try:
            httpx.post(webhook, json=payload, timeout=10).raise_for_status()
        except httpx.HTTPError as exc:
            log.error(f"alerta não entregue ao webhook: {exc}")
    return payload
