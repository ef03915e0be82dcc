"""`GET /cds-services`: discovery, generated from the service registry."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from cds_service.hooks.registry import SERVICES
from cds_service.models import DiscoveryResponse
from cds_service.responses import json_response
from cds_service.security import authenticate

router = APIRouter(prefix="/cds-services", tags=["discovery"], dependencies=[Depends(authenticate)])

_DISCOVERY = DiscoveryResponse(services=[s.describe() for s in SERVICES.values()]).model_dump(
    exclude_none=True
)


@router.get("", summary="CDS Hooks discovery", response_model=DiscoveryResponse)
async def discovery() -> Response:
    """Every service with its prefetch templates (CDS Hooks 2.0 §"Discovery")."""
    return json_response(_DISCOVERY)
