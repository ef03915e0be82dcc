"""`GET /docs` (Swagger UI) and `GET /openapi.json`, for operators.

FastAPI's own /docs loads Swagger UI from a CDN (a blank page offline, and a third party in the
page); its /docs, /redoc and /openapi.json are turned off in main.create_app. Here the Swagger UI
files come from the `fastapi-offline` distribution (Swagger UI 5, which reads the OpenAPI 3.1
document FastAPI writes), served from /docs/static/, with a CSP that lets the page reach only
this origin.

Access: the same rule as /analytics (auth.admin_allowed): CDS_ADMIN_TOKEN as a bearer token
or `?token=`; without CDS_ADMIN_TOKEN, open only when CDS_REQUIRE_AUTH is false. The static files
are the stock Swagger UI release and say nothing about this service, so they need no token.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request, Response

from cds_service.admin.auth import admin_allowed, refused
from cds_service.deps import SettingsDep
from cds_service.errors import operation_outcome
from cds_service.responses import json_response

router = APIRouter(include_in_schema=False)

DOCS_PATH = "/docs"
OPENAPI_PATH = "/openapi.json"
STATIC_PATH = DOCS_PATH + "/static"
# name -> (package, resource path, media type)
STATIC_FILES: dict[str, tuple[str, str, str]] = {
    "swagger-ui-bundle.js": (
        "fastapi_offline",
        "static/swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
    ),
    "swagger-ui.css": ("fastapi_offline", "static/swagger-ui.css", "text/css; charset=utf-8"),
    "favicon.png": ("fastapi_offline", "static/favicon.png", "image/png"),
    "swagger-init.js": (
        "cds_service.admin",
        "swagger-init.js",
        "text/javascript; charset=utf-8",
    ),
}
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# Swagger UI sets inline style attributes and shows data: images; everything else is this origin
# (connect-src 'self': "Try it out" cannot be aimed at another host from this page).
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@cache
def _asset(name: str) -> bytes:
    package, path, _media_type = STATIC_FILES[name]
    return resources.files(package).joinpath(path).read_bytes()


def _page(root: str, title: str) -> str:
    static = html.escape(root + STATIC_PATH, quote=True)
    openapi_url = html.escape(root + OPENAPI_PATH, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{html.escape(title)} - API</title>
  <link rel="icon" href="{static}/favicon.png">
  <link rel="stylesheet" href="{static}/swagger-ui.css">
  <script src="{static}/swagger-ui-bundle.js" defer></script>
  <script src="{static}/swagger-init.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
</body>
</html>
"""


@router.get(DOCS_PATH)
async def docs(request: Request, settings: SettingsDep) -> Response:
    if not admin_allowed(request, settings):
        return refused("cds-admin", _HEADERS)
    root = request.scope.get("root_path", "").rstrip("/")
    return Response(
        _page(root, request.app.title),
        media_type="text/html; charset=utf-8",
        headers={**_HEADERS, "Content-Security-Policy": _PAGE_CSP},
    )


@router.get(OPENAPI_PATH)
async def openapi_document(request: Request, settings: SettingsDep) -> Response:
    if not admin_allowed(request, settings):
        return refused("cds-admin", _HEADERS)
    return json_response(request.app.openapi(), headers=_HEADERS)


@router.get(STATIC_PATH + "/{name}")
async def static_file(name: str) -> Response:
    entry = STATIC_FILES.get(name)
    if entry is None:
        return json_response(operation_outcome("not-found", f"No file {name!r}"), 404)
    return Response(
        _asset(name),
        media_type=entry[2],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
