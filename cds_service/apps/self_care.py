"""The patient's self-care plan: one static, printable page in plain language.

RULES.md v2 "Red-flag screen and stratified care": the screening, low-risk result and imaging
cards link here. It is the same page for every patient (no patient data, no sign-in, no script),
so browsers and proxies may keep it: `Cache-Control: public` for an hour, with an ETag so a
stale copy is revalidated with a 304 instead of downloaded again.

Routes: `GET /apps/self-care` (the page) and `GET /apps/self-care/static/self-care.css`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from cds_service.routes import SELF_CARE_PATH

router = APIRouter(tags=["self-care"])

PAGE = "self-care.html"
STYLESHEET = "self-care.css"
STYLESHEET_PATH = f"{SELF_CARE_PATH}/static/{STYLESHEET}"
CACHE_CONTROL = "public, max-age=3600"
# No script at all; only this service's stylesheet. No frame-ancestors: an EHR may show the
# page in its own frame before printing it.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; object-src 'none'"
)


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


@cache
def _file(name: str, media_type: str) -> StaticFile:
    body = resources.files("cds_service.apps").joinpath("static", name).read_bytes()
    return StaticFile(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def _answer(request: Request, file: StaticFile, headers: dict[str, str]) -> Response:
    common = {"Cache-Control": CACHE_CONTROL, "ETag": file.etag, **headers}
    sent = request.headers.get("if-none-match", "")
    if file.etag in (tag.strip().removeprefix("W/") for tag in sent.split(",")) or sent == "*":
        return Response(status_code=304, headers=common)
    return Response(file.body, media_type=file.media_type, headers=common)


@router.get(
    SELF_CARE_PATH,
    summary="The patient's self-care plan for low back pain (printable)",
    response_class=HTMLResponse,
    responses={304: {"description": "Not modified: `If-None-Match` names the current ETag"}},
)
async def page(request: Request) -> Response:
    """One printable page, the same for every patient."""
    return _answer(
        request,
        _file(PAGE, "text/html; charset=utf-8"),
        {
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(STYLESHEET_PATH, include_in_schema=False)
async def stylesheet(request: Request) -> Response:
    return _answer(
        request, _file(STYLESHEET, "text/css; charset=utf-8"), {"X-Content-Type-Options": "nosniff"}
    )
