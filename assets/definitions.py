"""The Dagster code location ``vacina_d1``: the one ``Definitions`` that ``workspace.yaml``
loads (``dagster dev`` at the repository root) and ``vacina-d1 run`` executes.

Resources come from the ``VACINA_D1_*`` environment variables (``assets.resources``);
the daily partitions start at ``VACINA_D1_PARTITIONS_START`` (default 2026-01-01).
"""

from __future__ import annotations

from typing import Any, Mapping

from dagster import Definitions

from assets.build import build
from assets.resources import resources_from_env
from pipelines.flow import FlowSettings


def build_definitions(settings: FlowSettings | None = None, resources: Mapping[str, Any] | None = None) -> Definitions:
    d1 = build(settings)
    return Definitions(
        assets=d1.assets,
        asset_checks=d1.asset_checks,
        jobs=d1.jobs,
        schedules=d1.schedules,
        sensors=d1.sensors,
        resources=dict(resources) if resources is not None else resources_from_env(),
    )


defs = build_definitions()
