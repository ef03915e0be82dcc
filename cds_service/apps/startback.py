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
- `POST /apps/startback/score`: the answers scored by `logic.startback` (the same code that reads
  results back in hook calls) and, given a patient, the transaction Bundle to write: a completed
  QuestionnaireResponse and the total, subscale and risk Observations, validated with
  fhir.resources R4B.

Launch checks: apps/smart_launch.py (shared with the red-flag screen): `iss` must be an
allow-listed plain FHIR base URL, https unless loopback, and development mode exists only when
CDS_REQUIRE_AUTH is false; anything else is a 400 before any server is contacted.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request, Response
from fhir.resources.R4B.bundle import Bundle
from pydantic import BaseModel

from cds_service.apps.questionnaire_app import (
    AnswersRequest,
    QuestionnaireApp,
    completed_response,
    known_items,
    questionnaire_app_router,
)
from cds_service.apps.smart_launch import fhir_datetime
from cds_service.deps import SettingsDep
from cds_service.errors import BadRequest
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
from cds_service.openapi import body_schema
from cds_service.responses import json_response
from cds_service.routes import STARTBACK_APP_PATH

APP = QuestionnaireApp(
    path=STARTBACK_APP_PATH,
    title="STarT Back questionnaire",
    what="questionnaire",
    questionnaire_file="questionnaire-startback.json",
    canonical_path=QUESTIONNAIRE_CANONICAL_PATH,
    smart_scope="launch patient/Patient.read patient/QuestionnaireResponse.write "
    "patient/Observation.write openid fhirUser",
)
router = questionnaire_app_router(
    APP,
    tag="startback-app",
    questionnaire_summary="The STarT Back Questionnaire (FHIR R4)",
    page_summary="STarT Back questionnaire app",
    config_summary="SMART client settings and the Questionnaire",
)
canonical_url = APP.canonical_url
questionnaire = APP.questionnaire
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


class ScoreRequest(AnswersRequest):
    """The page's answers: linkId -> the code of the chosen answerOption."""

    answers: dict[str, str]


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
    authored = fhir_datetime(body.authored)
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
    items = known_items(APP.questionnaire_template(), answers)
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
    return completed_response(canonical, authored, out_items, patient=patient, encounter=encounter)


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
