"""The red-flag screen app (SMART App Launch) and its Questionnaire (RULES.md v2 "Red-flag screen
and stratified care").

Routes:
- `GET /fhir/Questionnaire/lbp-red-flag-screen`: the FHIR R4 Questionnaire (12 yes / no items,
  each coded with SNOMED CT); its `url` is this very address, the canonical a response names.
- `GET /apps/red-flags`: the page. EHR launch (`launch` + `iss`, from the imaging card's `smart`
  link "Record a red-flag screen"): SMART App Launch with PKCE, in the browser. Development:
  `?iss=<open FHIR base>&patient=<id>`. The browser writes the response to the FHIR server
  itself; the service never sees the access token.
- `GET /apps/red-flags/config`: the SMART client id, scopes and the Questionnaire; 400 for the
  launch parameters the page would refuse.
- `POST /apps/red-flags/response`: the answers read by `logic.red_flag_screen` (the same code that
  reads the screen back in hook calls: the app shows what the cards will do) and, given a
  patient, the completed QuestionnaireResponse to write, validated with fhir.resources R4B.

Launch checks, page headers and the shared SMART script: apps/smart_launch.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request, Response
from fhir.resources.R4B.questionnaireresponse import (
    QuestionnaireResponse as R4BQuestionnaireResponse,
)
from pydantic import BaseModel, StrictBool, StringConstraints

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
from cds_service.logic.fhir import QuestionnaireResponse
from cds_service.logic.red_flag_screen import read_screen
from cds_service.logic.red_flags import RedFlagReport, red_flag_checks
from cds_service.openapi import body_schema
from cds_service.responses import json_response
from cds_service.routes import RED_FLAG_QUESTIONNAIRE_PATH, RED_FLAGS_APP_PATH

APP = QuestionnaireApp(
    path=RED_FLAGS_APP_PATH,
    title="Red-flag screen",
    what="screen",
    questionnaire_file="questionnaire-red-flags.json",
    canonical_path=RED_FLAG_QUESTIONNAIRE_PATH,
    smart_scope="launch patient/Patient.read patient/QuestionnaireResponse.write openid fhirUser",
)
router = questionnaire_app_router(
    APP,
    tag="red-flag-screen-app",
    questionnaire_summary="The red-flag screen Questionnaire (FHIR R4)",
    page_summary="Red-flag screen app",
    config_summary="SMART client settings and the red-flag Questionnaire",
)
canonical_url = APP.canonical_url
questionnaire = APP.questionnaire


# The signed-in user as the EHR's launch names it (SMART fhirUser): the response's author.
UserReference = Annotated[
    str,
    StringConstraints(
        pattern=r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-\.]{1,64}$"
    ),
]


class ScreenRequest(AnswersRequest):
    """The page's answers: linkId -> true (yes) / false (no), for all 12 items (JSON booleans
    only: "yes" or 1 is refused, not guessed)."""

    answers: dict[str, StrictBool]
    author: UserReference | None = None


class ScreenFlag(BaseModel):
    linkId: str
    item: str
    flag: str


class ScreenResult(BaseModel):
    negative: bool
    yes: list[ScreenFlag]
    resource: dict[str, Any] | None = None


@router.post(
    RED_FLAGS_APP_PATH + "/response",
    summary="Read red-flag screen answers and build the QuestionnaireResponse",
    openapi_extra=body_schema(ScreenRequest),
)
async def screen_response(request: Request, settings: SettingsDep) -> Response:
    """Which answers are red flags, as the cards read them; with `patient`, also the completed
    QuestionnaireResponse the page writes."""
    body = validate(ScreenRequest, parse_json_object(await request.body()))
    response = questionnaire_response(
        body.answers,
        settings.public_base_url,
        fhir_datetime(body.authored),
        patient=body.patient,
        encounter=body.encounter,
        author=body.author,
    )
    screen = read_screen(QuestionnaireResponse.model_validate(response))
    if screen is None:  # every item was answered above
        raise BadRequest("The answers could not be read", expression=["answers"])
    report = RedFlagReport(checked=red_flag_checks(settings.rules), found=screen.hits())
    out = ScreenResult(
        negative=screen.negative,
        yes=[
            ScreenFlag(linkId=item.link_id, item=item.name, flag=report.label_of(item.flag))
            for item in screen.yes
        ],
        resource=response if body.patient else None,
    )
    return json_response(out.model_dump(exclude_none=True))


def questionnaire_response(
    answers: dict[str, bool],
    public_base_url: str,
    authored: str,
    *,
    patient: str | None = None,
    encounter: str | None = None,
    author: str | None = None,
) -> dict[str, Any]:
    """A completed QuestionnaireResponse naming `canonical|version`; every item needs an answer
    (the Questionnaire marks them required). Validated with fhir.resources R4B."""
    template = APP.questionnaire_template()
    items = known_items(template, answers)
    missing = [i for i in items if i["linkId"] not in answers]
    if missing:
        numbers = ", ".join(i["prefix"] for i in missing)
        raise BadRequest(
            f"Every item needs a yes or no (missing: {numbers})",
            expression=[i["linkId"] for i in missing],
        )
    response = completed_response(
        f"{canonical_url(public_base_url)}|{template['version']}",
        authored,
        [
            {
                "linkId": item["linkId"],
                "text": item["text"],
                "answer": [{"valueBoolean": answers[item["linkId"]]}],
            }
            for item in items
        ],
        patient=patient,
        encounter=encounter,
    )
    if author:
        response["author"] = {"reference": author}
    R4BQuestionnaireResponse.model_validate(response)
    return response
