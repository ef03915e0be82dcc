"""`GET /metrics`: the Prometheus text format (cds_service/metrics.py says what is there).

Access as for /analytics (admin/auth.py): with CDS_ADMIN_TOKEN set, `Authorization: Bearer
<token>` (what Prometheus's `authorization` scrape setting sends) or `?token=`; without it, open
only when CDS_REQUIRE_AUTH is false.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from cds_service import metrics
from cds_service.admin.auth import admin_allowed, refused
from cds_service.deps import SettingsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics_page(request: Request, settings: SettingsDep) -> Response:
    if not admin_allowed(request, settings):
        return refused("cds-metrics", {"Cache-Control": "no-store"})
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
