from __future__ import annotations

from fastapi import APIRouter

from portal_api import schemas
from portal_api.core import problems

router = APIRouter(tags=["saúde"])


@router.get(
    "/health",
    response_model=schemas.HealthOut,
    summary="A API está no ar",
    description="Responde sem autenticação e sem tocar o banco: para balanceadores e monitoração.",
    responses=problems.responses(),
)
def health() -> schemas.HealthOut:
    return schemas.HealthOut()
