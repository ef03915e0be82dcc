"""`GET /analytics` (HTML with SVG charts) and `GET /analytics.csv`: card governance figures.

Access: with CDS_ADMIN_TOKEN set, the token must come as `Authorization: Bearer <token>` or
`?token=<token>`; without it, the page is open only when CDS_REQUIRE_AUTH is false (local
development), else every request is refused with 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from cds_service.admin.auth import admin_allowed, refused
from cds_service.analytics.aggregate import Summary, Window, summarise
from cds_service.analytics.page import render_csv, render_page
from cds_service.deps import ClockDep, SettingsDep, StoreDep, local_date
from cds_service.store import rollup

router = APIRouter(tags=["analytics"])

WeeksQuery = Annotated[int, Query(ge=1, le=104, description="weeks shown, up to this one")]

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class _Figures:
    """The figures both views show, for the window ending on `today`."""

    today: date
    summary: Summary


async def _figures(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    clock: ClockDep,
    weeks: WeeksQuery = 12,
) -> _Figures | None:
    """The figures of the requested window, or None when the caller may not see them."""
    if not admin_allowed(request, settings):
        return None
    today = local_date(clock())
    window = Window.ending(today, weeks)
    counts = await run_in_threadpool(rollup.read_weeks, store, window.weeks[0], window.weeks[-1])
    return _Figures(today, summarise(counts, window))


FiguresDep = Annotated[_Figures | None, Depends(_figures)]


@router.get("/analytics", summary="Card analytics (HTML, SVG charts)", include_in_schema=False)
async def analytics_page(request: Request, figures: FiguresDep) -> Response:
    if figures is None:
        return refused("cds-analytics", _HEADERS)
    # A token given in the query stays on the page's own links (window choice, CSV export).
    token = request.query_params.get("token")
    suffix = "&" + urlencode({"token": token}) if token else ""
    html = render_page(figures.summary, today=figures.today, query_suffix=suffix)
    return Response(
        html,
        media_type="text/html; charset=utf-8",
        headers={**_HEADERS, "Content-Security-Policy": _PAGE_CSP},
    )


@router.get("/analytics.csv", summary="Card analytics (CSV)", include_in_schema=False)
async def analytics_csv(figures: FiguresDep) -> Response:
    if figures is None:
        return refused("cds-analytics", _HEADERS)
    filename = f"cds-analytics-{figures.today.isoformat()}.csv"
    return Response(
        render_csv(figures.summary),
        media_type="text/csv; charset=utf-8",
        headers={**_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'},
    )
