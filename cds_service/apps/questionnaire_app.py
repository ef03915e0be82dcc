"""The routes every questionnaire app of the service has (the STarT Back questionnaire, the
red-flag screen): its Questionnaire at its canonical URL, the page, the page's static files and
its `/config`. Each app module describes itself once (`QuestionnaireApp`) and adds the one route
of its own: how its answers are read.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict

from cds_service.apps.smart_launch import (
    FhirId,
    LaunchDep,
    config_body,
    json_file,
    page,
    refusal_page,
    static_file,
)
from cds_service.deps import SettingsDep
from cds_service.errors import BadRequest
from cds_service.openapi import error_responses
from cds_service.responses import json_response

REFUSED_LAUNCH: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "Launch refused: `iss` not allow-listed, not https (except loopback) "
        "or malformed; or development mode while authentication is required",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}


@dataclass(frozen=True)
class QuestionnaireApp:
    """One app: served at `path`, whose last segment names its own files (`<name>.html`,
    `<name>.js`, `<name>.css` in static/); `title` and `what` word its refusal page."""

    path: str
    title: str
    what: str
    questionnaire_file: str
    canonical_path: str
    smart_scope: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def static_files(self) -> dict[str, str]:
        return {
            f"{self.name}.js": "text/javascript; charset=utf-8",
            f"{self.name}.css": "text/css; charset=utf-8",
        }

    @property
    def stylesheets(self) -> tuple[str, ...]:
        # Relative to the page (`<path>`), so a proxy path in front of the service still works.
        return (f"{self.name}/static/app.css", f"{self.name}/static/{self.name}.css")

    def questionnaire_template(self) -> dict[str, Any]:
        return json_file(self.questionnaire_file)

    def canonical_url(self, public_base_url: str) -> str:
        return f"{public_base_url}{self.canonical_path}"

    def questionnaire(self, public_base_url: str) -> dict[str, Any]:
        """The Questionnaire with its canonical `url` set to where this service serves it."""
        return {**self.questionnaire_template(), "url": self.canonical_url(public_base_url)}


class AnswersRequest(BaseModel):
    """What every app page posts besides its answers: with `patient`, the service also builds
    the resources the page writes, for that patient, encounter and time."""

    model_config = ConfigDict(extra="forbid")

    patient: FhirId | None = None
    authored: datetime | None = None
    encounter: FhirId | None = None


def known_items(questionnaire: dict[str, Any], answers: Collection[str]) -> list[dict[str, Any]]:
    """The Questionnaire's items; 400 naming any answered linkId it does not have."""
    items: list[dict[str, Any]] = questionnaire["item"]
    unknown = sorted(set(answers) - {i["linkId"] for i in items})
    if unknown:
        raise BadRequest(f"Unknown items: {', '.join(unknown)}", expression=["answers"])
    return items


def completed_response(
    questionnaire: str,
    authored: str,
    items: list[dict[str, Any]],
    *,
    patient: str | None,
    encounter: str | None,
) -> dict[str, Any]:
    """A completed QuestionnaireResponse of `items` (linkId, text, answer) naming `questionnaire`,
    with the patient and encounter when given."""
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire,
        "status": "completed",
        "authored": authored,
        "item": items,
    }
    if patient:
        response["subject"] = {"reference": f"Patient/{patient}"}
    if encounter:
        response["encounter"] = {"reference": f"Encounter/{encounter}"}
    return response


def questionnaire_app_router(
    app: QuestionnaireApp,
    *,
    tag: str,
    questionnaire_summary: str,
    page_summary: str,
    config_summary: str,
) -> APIRouter:
    """The four routes `app` shares with every questionnaire app."""
    router = APIRouter(tags=[tag])

    @router.get(app.canonical_path, summary=questionnaire_summary)
    async def get_questionnaire(settings: SettingsDep) -> Response:
        """The Questionnaire resource at its canonical URL."""
        return json_response(
            app.questionnaire(settings.public_base_url),
            headers={"Content-Type": "application/fhir+json"},
        )

    @router.get(
        app.path, summary=page_summary, response_class=HTMLResponse, responses=REFUSED_LAUNCH
    )
    async def app_page(launch: LaunchDep) -> Response:
        """The single-page app (SMART EHR launch, or `?iss=...&patient=...` for development)."""
        if launch.problem:
            return refusal_page(app.title, app.what, app.stylesheets, launch.problem[0])
        return page(f"{app.name}.html")

    @router.get(app.path + "/static/{name}", include_in_schema=False)
    async def app_static_file(name: str) -> Response:
        return static_file(name, app.static_files)

    @router.get(app.path + "/config", summary=config_summary, responses=error_responses(400))
    async def app_config(settings: SettingsDep, launch: LaunchDep) -> Response:
        """The page's settings; with the page's launch parameters, 400 when they are refused."""
        return json_response(
            config_body(
                settings,
                launch,
                scope=app.smart_scope,
                questionnaire=app.questionnaire(settings.public_base_url),
            )
        )

    return router
