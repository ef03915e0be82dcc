"""What the service's SMART apps share (the STarT Back questionnaire, the red-flag screen): the
launch checks, the page headers, the refusal page, the static files and the Questionnaire files.

Launch checks (`launch_problem`): a page sends the EHR's authorization request, with the real
client id and redirect URI, to whatever `iss` names, and in development mode shows that server's
patient on this service's origin. So `iss` must be a plain FHIR base URL on CDS_FHIR_ALLOWLIST,
https unless loopback, and development mode (`patient` without `launch`, no sign-in) exists only
when CDS_REQUIRE_AUTH is false. Anything else is a 400 before any server is contacted; each page's
`/config` answers the same, and the browser script (static/smart-launch.js) asks before it
contacts any server.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import StringConstraints

from cds_service import request_context
from cds_service.config import Settings, is_loopback_url
from cds_service.deps import SettingsDep
from cds_service.errors import CdsError
from cds_service.records.fhir_urls import UnsafeFhirUrl, parse_base

# The page talks to the (allow-listed) FHIR server that launched it and to the authorization
# server that FHIR server names, which can be any host: connect-src cannot be narrowed here.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src *; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    # The address bar holds the launch id and, briefly, the authorization code.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
# Served under every app's /static/: the SMART launch script, the form helpers and the common
# styles.
SHARED_STATIC_FILES = {
    "smart-launch.js": "text/javascript; charset=utf-8",
    "questionnaire-form.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

FhirId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-\.]{1,64}$")]


class NotFound(CdsError):
    status_code = 404
    issue_code = "not-found"
    reason = "not-found"


class LaunchRefused(CdsError):
    status_code = 400
    issue_code = "security"
    reason = "launch-refused"


@cache
def _app_file(*parts: str) -> str:
    folder = resources.files("cds_service.apps")
    for part in parts:
        folder = folder.joinpath(part)
    return folder.read_text(encoding="utf-8")


def json_file(name: str) -> dict[str, Any]:
    """A JSON file of apps/ (a Questionnaire), parsed anew so callers may change their copy."""
    data: dict[str, Any] = json.loads(_app_file(name))
    return data


def static_text(name: str) -> str:
    return _app_file("static", name)


def static_file(name: str, own_files: Mapping[str, str]) -> Response:
    """One of an app's static files (its own, or a shared one); 404 for anything else."""
    media_type = own_files.get(name) or SHARED_STATIC_FILES.get(name)
    if media_type is None:
        raise NotFound(f"No file {name!r}")
    return Response(
        static_text(name),
        media_type=media_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


IssQuery = Annotated[str | None, Query(description="the EHR's FHIR base URL (SMART launch)")]
LaunchQuery = Annotated[str | None, Query(description="the EHR's launch id (SMART EHR launch)")]
PatientQuery = Annotated[
    str | None, Query(description="development mode only (CDS_REQUIRE_AUTH=false): a patient id")
]


def iss_problem(settings: Settings, iss: str) -> str | None:
    """Why `iss` may not be used as the launching FHIR server, or None when it may."""
    try:
        parse_base(iss)  # the same URL rules as a hook request's fhirServer
    except UnsafeFhirUrl:
        return "The FHIR server address (iss) is not a plain http(s) base URL."
    if not iss.lower().startswith("https://") and not is_loopback_url(iss):
        return "The FHIR server address (iss) must be an https URL."
    if not settings.fhir_server_allowed(iss):
        return (
            "This FHIR server (iss) is not on the service's FHIR allow-list "
            "(CDS_FHIR_ALLOWLIST): the app does not connect to it."
        )
    return None


def launch_problem(
    settings: Settings, *, iss: str | None, launch: str | None, patient: str | None
) -> tuple[str, str] | None:
    """Why the page's launch parameters are refused and which one, or None (see the module
    docstring)."""
    if iss is not None:
        problem = iss_problem(settings, iss)
        if problem:
            return problem, "iss"
    if patient is not None and launch is None and settings.require_auth:
        return (
            "Development mode (?iss=&patient=, no sign-in) is off because the service requires "
            "authentication (CDS_REQUIRE_AUTH): launch the app from the EHR.",
            "patient",
        )
    return None


@dataclass(frozen=True)
class Launch:
    """The page's launch parameters as given (`iss`), and why they are refused (message,
    parameter) or None."""

    iss: str | None
    problem: tuple[str, str] | None


async def checked_launch(
    settings: SettingsDep,
    iss: IssQuery = None,
    launch: LaunchQuery = None,
    patient: PatientQuery = None,
) -> Launch:
    """The page's and the config's query parameters, checked by `launch_problem`."""
    return Launch(iss, launch_problem(settings, iss=iss, launch=launch, patient=patient))


LaunchDep = Annotated[Launch, Depends(checked_launch)]


def refusal_page(title: str, what: str, stylesheets: tuple[str, ...], message: str) -> HTMLResponse:
    """The 400 page of a refused launch: "The <what> could not start.", the reason announced,
    and no script."""
    request_context.note_error(LaunchRefused.reason)
    links = "".join(
        f'  <link rel="stylesheet" href="{html.escape(href)}">\n' for href in stylesheets
    )
    body = (
        '<!doctype html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n'
        '  <meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"  <title>{html.escape(title)}: launch refused</title>\n{links}</head>\n<body>\n"
        f'  <header class="banner"><h1>{html.escape(title)}</h1></header>\n  <main>\n'
        f'    <p class="status">The {html.escape(what)} could not start.</p>\n'
        f'    <div id="error" class="error" role="alert">{html.escape(message)}</div>\n'
        "  </main>\n</body>\n</html>\n"
    )
    return HTMLResponse(body, status_code=400, headers=PAGE_HEADERS)


def page(name: str) -> HTMLResponse:
    return HTMLResponse(static_text(name), headers=PAGE_HEADERS)


def config_body(
    settings: Settings, launch: Launch, *, scope: str, questionnaire: dict[str, Any]
) -> dict[str, Any]:
    """An app's `/config`: 400 when the launch is refused, else the SMART client settings and
    the Questionnaire the page renders."""
    if launch.problem:
        raise LaunchRefused(launch.problem[0], expression=[launch.problem[1]])
    config: dict[str, Any] = {
        "clientId": settings.smart_client_id,
        "scope": scope,
        "questionnaire": questionnaire,
        "developmentMode": not settings.require_auth,
    }
    if launch.iss is not None:
        config["iss"] = launch.iss  # checked above: the only server the script may contact
    return config


def fhir_datetime(when: datetime | None) -> str:
    """A FHIR dateTime with a zone (required with a time): now when not given; a browser's
    toISOString() is UTC already, a value without a zone is read as UTC."""
    value = when or datetime.now(UTC)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
