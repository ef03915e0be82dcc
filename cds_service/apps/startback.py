"""The STarT Back questionnaire app (SMART App Launch) and the Questionnaire it is built from.

Routes:
- `GET /fhir/Questionnaire/startback`: the FHIR R4 Questionnaire; its `url` is this very address
  (`{CDS_PUBLIC_BASE_URL}/fhir/Questionnaire/startback`), the canonical that cards and Tasks name.
- `GET /apps/startback`: the page. EHR launch (`launch` + `iss`): SMART App Launch with PKCE, in
  the browser. Development: `?iss=<open FHIR base>&patient=<id>`. The browser writes to the FHIR
  server itself; the service never sees the access token.
- `GET /apps/startback/config`: the SMART client id, scopes and the Questionnaire; given the
  page's `iss`/`launch`/`patient`, it checks them as the page does (the script asks before it
  contacts any server).

Launch checks (`launch_problem`): the page sends the EHR's authorization request, with the real
client id and redirect URI, to whatever `iss` names, and in development mode shows that server's
patient on this service's origin. So `iss` must be a plain FHIR base URL on CDS_FHIR_ALLOWLIST,
https unless loopback, and development mode (`patient` without `launch`, no sign-in) exists only
when CDS_REQUIRE_AUTH is false. Anything else is a 400 before any server is contacted.
- `POST /apps/startback/score`: the answers scored by `logic.startback` (the same code that reads
  results back in hook calls) and, given a patient, the transaction Bundle to write: a completed
  QuestionnaireResponse and the total, subscale and risk Observations, validated with
  fhir.resources R4B.
"""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from fhir.resources.R4B.bundle import Bundle
from pydantic import BaseModel, ConfigDict, StringConstraints

from cds_service import request_context
from cds_service.config import Settings, is_loopback_url
from cds_service.deps import SettingsDep
from cds_service.errors import BadRequest, CdsError
from cds_service.hooks.parsing import parse_json_object, validate
from cds_service.logic import startback
from cds_service.logic.fhir import QuestionnaireResponse
from cds_service.logic.startback import (
    MATCHED_CARE,
    QUESTIONNAIRE_CANONICAL_PATH,
    RiskGroup,
    Score,
)
from cds_service.logic.terminology import value_set
from cds_service.openapi import body_schema, error_responses
from cds_service.records.fhir_urls import UnsafeFhirUrl, parse_base
from cds_service.responses import json_response
from cds_service.routes import STARTBACK_APP_PATH

router = APIRouter(tags=["startback-app"])

SMART_SCOPE = "launch patient/Patient.read patient/QuestionnaireResponse.write patient/Observation.write openid fhirUser"
STATIC_FILES = {
    "startback.js": "text/javascript; charset=utf-8",
    "startback.css": "text/css; charset=utf-8",
}
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
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


class NotFound(CdsError):
    status_code = 404
    issue_code = "not-found"


@cache
def _questionnaire_template() -> dict[str, Any]:
    text = (
        resources.files("cds_service.apps")
        .joinpath("questionnaire-startback.json")
        .read_text(encoding="utf-8")
    )
    data: dict[str, Any] = json.loads(text)
    return data


def canonical_url(public_base_url: str) -> str:
    return f"{public_base_url}{QUESTIONNAIRE_CANONICAL_PATH}"


def questionnaire(public_base_url: str) -> dict[str, Any]:
    """The Questionnaire with its canonical `url` set to where this service serves it."""
    return {**_questionnaire_template(), "url": canonical_url(public_base_url)}


@cache
def _static(name: str) -> str:
    return (
        resources.files("cds_service.apps")
        .joinpath("static")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )


@router.get(QUESTIONNAIRE_CANONICAL_PATH, summary="The STarT Back Questionnaire (FHIR R4)")
async def get_questionnaire(settings: SettingsDep) -> Response:
    """The Questionnaire resource at its canonical URL."""
    return json_response(
        questionnaire(settings.public_base_url), headers={"Content-Type": "application/fhir+json"}
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


class LaunchRefused(CdsError):
    status_code = 400
    issue_code = "security"
    reason = "launch-refused"


def _refusal_page(message: str) -> HTMLResponse:
    request_context.note_error(LaunchRefused.reason)
    body = (
        '<!doctype html>\n<html lang="en">\n<head>\n  <meta charset="utf-8">\n'
        '  <meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "  <title>STarT Back questionnaire: launch refused</title>\n"
        '  <link rel="stylesheet" href="startback/static/startback.css">\n</head>\n<body>\n'
        '  <header class="banner"><h1>STarT Back questionnaire</h1></header>\n  <main>\n'
        '    <p class="status">The questionnaire could not start.</p>\n'
        f'    <div id="error" class="error" role="alert">{html.escape(message)}</div>\n'
        "  </main>\n</body>\n</html>\n"
    )
    return HTMLResponse(body, status_code=400, headers=PAGE_HEADERS)


@router.get(
    STARTBACK_APP_PATH,
    summary="STarT Back questionnaire app",
    response_class=HTMLResponse,
    responses={
        400: {
            "description": "Launch refused: `iss` not allow-listed, not https (except loopback) "
            "or malformed; or development mode while authentication is required",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    },
)
async def page(launch: LaunchDep) -> Response:
    """The single-page app (SMART EHR launch, or `?iss=...&patient=...` for development)."""
    if launch.problem:
        return _refusal_page(launch.problem[0])
    return HTMLResponse(_static("startback.html"), headers=PAGE_HEADERS)


@router.get(STARTBACK_APP_PATH + "/static/{name}", include_in_schema=False)
async def static_file(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFound(f"No file {name!r}")
    return Response(
        _static(name),
        media_type=media_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@router.get(
    STARTBACK_APP_PATH + "/config",
    summary="SMART client settings and the Questionnaire",
    responses=error_responses(400),
)
async def app_config(settings: SettingsDep, launch: LaunchDep) -> Response:
    """The page's settings; with the page's launch parameters, 400 when they are refused."""
    if launch.problem:
        raise LaunchRefused(launch.problem[0], expression=[launch.problem[1]])
    config: dict[str, Any] = {
        "clientId": settings.smart_client_id,
        "scope": SMART_SCOPE,
        "questionnaire": questionnaire(settings.public_base_url),
        "developmentMode": not settings.require_auth,
    }
    if launch.iss is not None:
        config["iss"] = launch.iss  # checked above: the only server the script may contact
    return json_response(config)


FhirId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-\.]{1,64}$")]


class ScoreRequest(BaseModel):
    """The page's answers: linkId -> the code of the chosen answerOption."""

    model_config = ConfigDict(extra="forbid")

    answers: dict[str, str]
    patient: FhirId | None = None
    authored: datetime | None = None
    encounter: FhirId | None = None


class ScoreResponse(BaseModel):
    total: int
    subscale: int
    risk: RiskGroup
    care: str
    bundle: dict[str, Any] | None = None


@router.post(
    STARTBACK_APP_PATH + "/score",
    summary="Score STarT Back answers and build the FHIR resources",
    openapi_extra=body_schema(ScoreRequest),
)
async def score(request: Request, settings: SettingsDep) -> Response:
    """Score the answers; with `patient`, also the transaction Bundle the page writes."""
    body = validate(ScoreRequest, parse_json_object(await request.body()))
    canonical = canonical_url(settings.public_base_url)
    when = body.authored or datetime.now(UTC)
    # FHIR dateTime with a time needs a zone; a browser's toISOString() is UTC already.
    authored = (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
    response = questionnaire_response(
        body.answers, canonical, authored, patient=body.patient, encounter=body.encounter
    )
    result = startback.score_response(QuestionnaireResponse.model_validate(response))
    if result is None:  # every answer was checked against the Questionnaire above
        raise BadRequest("The answers could not be scored", expression=["answers"])
    bundle = None
    if body.patient:
        bundle = transaction_bundle(response, result)
    out = ScoreResponse(
        total=result.total,
        subscale=result.subscale,
        risk=result.risk,
        care=MATCHED_CARE[result.risk],
        bundle=bundle,
    )
    return json_response(out.model_dump(exclude_none=True))


def questionnaire_response(
    answers: dict[str, str],
    canonical: str,
    authored: str,
    *,
    patient: str | None = None,
    encounter: str | None = None,
) -> dict[str, Any]:
    """A completed QuestionnaireResponse; every item needs one of its answerOption codes."""
    items = _questionnaire_template()["item"]
    unknown = sorted(set(answers) - {i["linkId"] for i in items})
    if unknown:
        raise BadRequest(f"Unknown items: {', '.join(unknown)}", expression=["answers"])
    out_items = []
    for item in items:
        link_id = item["linkId"]
        chosen = answers.get(link_id)
        if chosen is None:
            raise BadRequest(f"Item {item['prefix']} is not answered", expression=[link_id])
        options = [o["valueCoding"] for o in item["answerOption"]]
        coding = next((o for o in options if o["code"] == chosen), None)
        if coding is None:
            raise BadRequest(f"Item {item['prefix']}: no answer {chosen!r}", expression=[link_id])
        answer = {k: coding[k] for k in ("system", "code", "display")}
        out_items.append(
            {"linkId": link_id, "text": item["text"], "answer": [{"valueCoding": answer}]}
        )
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": canonical,
        "status": "completed",
        "authored": authored,
        "item": out_items,
    }
    if patient:
        response["subject"] = {"reference": f"Patient/{patient}"}
    if encounter:
        response["encounter"] = {"reference": f"Encounter/{encounter}"}
    return response


def _single_coding(value_set_name: str) -> dict[str, str]:
    vs = value_set(value_set_name)
    ((system, code),) = vs.codes
    return {"system": system, "code": code, "display": vs.displays[(system, code)]}


def _risk_coding(group: RiskGroup) -> dict[str, str]:
    vs = value_set(startback.RISK_ANSWERS_VS)
    for (system, code), display in vs.displays.items():
        if display.strip().lower() == group.value:
            return {"system": system, "code": code, "display": display}
    raise LookupError(f"no answer code for risk group {group}")


def transaction_bundle(response: dict[str, Any], result: Score) -> dict[str, Any]:
    """The QuestionnaireResponse and its three score Observations, in one transaction.

    The Observations share the response's subject, encounter and time, and point to it with
    `derivedFrom` (a urn:uuid the server resolves inside the transaction).
    """
    response_urn = f"urn:uuid:{uuid.uuid4()}"

    def observation(value_set_name: str, value: dict[str, Any]) -> dict[str, Any]:
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}
                    ]
                }
            ],
            "code": {"coding": [_single_coding(value_set_name)]},
            "subject": response["subject"],
            "effectiveDateTime": response["authored"],
            "derivedFrom": [{"reference": response_urn}],
            **value,
        }
        if "encounter" in response:
            obs["encounter"] = response["encounter"]
        return obs

    risk = _risk_coding(result.risk)
    resources_ = [
        (response_urn, response),
        (
            f"urn:uuid:{uuid.uuid4()}",
            observation(startback.TOTAL_VS, {"valueInteger": result.total}),
        ),
        (
            f"urn:uuid:{uuid.uuid4()}",
            observation(startback.SUBSCALE_VS, {"valueInteger": result.subscale}),
        ),
        (
            f"urn:uuid:{uuid.uuid4()}",
            observation(
                startback.RISK_VS,
                {"valueCodeableConcept": {"coding": [risk], "text": f"{risk['display']} risk"}},
            ),
        ),
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": full_url,
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            for full_url, resource in resources_
        ],
    }
    Bundle.model_validate(bundle)
    return bundle
