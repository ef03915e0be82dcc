"""The four services, declared once: discovery, routing, context parsing and prefetch use this."""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.errors import UnknownService
from cds_service.models import (
    ChartContext,
    EncounterStartContext,
    HookContext,
    OrderSelectContext,
    OrderSignContext,
    ServiceDescription,
)
from cds_service.records.data import OPTIONAL_KEYS, DataKey, prefetch_template

_CHART_DATA = (
    DataKey.PATIENT,
    DataKey.CONDITIONS,
    DataKey.STARTBACK_OBSERVATIONS,
    DataKey.MEDICATION_REQUESTS,
    DataKey.QUESTIONNAIRE_RESPONSES,
    DataKey.ENCOUNTERS,
)
_ORDER_DATA = (
    DataKey.PATIENT,
    DataKey.CONDITIONS,
    DataKey.TEMPERATURE_OBSERVATIONS,
    DataKey.MEDICATION_REQUESTS,
    DataKey.PROCEDURES,
    DataKey.QUESTIONNAIRE_RESPONSES,
    DataKey.ENCOUNTERS,
)
# The order hooks read QuestionnaireResponses only for the red-flag screen (RULES.md v2), which can
# only silence the imaging card: an EHR set up before the screen existed (no such prefetch key, a
# token not scoped to QuestionnaireResponse) still gets every order check, and the imaging card
# then offers to record a screen. The chart hooks need them for STarT Back results, as before.
_ORDER_OPTIONAL_DATA = OPTIONAL_KEYS | {DataKey.QUESTIONNAIRE_RESPONSES}

_USAGE = (
    "Reads the patient's Conditions, Observations, MedicationRequests (any status), "
    "{extra} and Encounters (hospice discharges of the last 12 months) from prefetch; keys "
    "left out are fetched from fhirServer with fhirAuthorization."
)


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    context_model: type[HookContext]
    data: tuple[DataKey, ...]
    usage_requirements: str
    # Keys the call goes on without when they can be had neither from prefetch nor from FHIR.
    optional_data: frozenset[DataKey] = OPTIONAL_KEYS

    def prefetch(self) -> dict[str, str]:
        return {key.value: prefetch_template(key) for key in self.data}

    def describe(self) -> ServiceDescription:
        return ServiceDescription(
            hook=self.hook,
            title=self.title,
            description=self.description,
            id=self.id,
            prefetch=self.prefetch(),
            usageRequirements=self.usage_requirements,
        )


SERVICES: dict[str, ServiceDefinition] = {
    s.id: s
    for s in (
        ServiceDefinition(
            id="lbp-patient-view",
            hook="patient-view",
            title="Low back pain: STarT Back and muscle relaxant review",
            description=(
                "When a chart with active low back pain opens: suggests the Keele STarT Back "
                "screening questionnaire, or shows the stratified care a recorded result calls "
                "for; flags a muscle relaxant active longer than 3 weeks."
            ),
            context_model=ChartContext,
            data=_CHART_DATA,
            usage_requirements=_USAGE.format(extra="QuestionnaireResponses"),
        ),
        ServiceDefinition(
            id="lbp-encounter-start",
            hook="encounter-start",
            title="Low back pain: STarT Back and muscle relaxant review (encounter start)",
            description=(
                "The patient-view checks, when an encounter for a patient with low back pain "
                "starts: STarT Back screening or result, and a muscle relaxant active too long."
            ),
            context_model=EncounterStartContext,
            data=_CHART_DATA,
            usage_requirements=_USAGE.format(extra="QuestionnaireResponses"),
        ),
        ServiceDefinition(
            id="lbp-order-select",
            hook="order-select",
            title="Low back pain: imaging, opioid and muscle relaxant orders (selection)",
            description=(
                "Checks the selected orders: lumbar imaging without red flags in the first 6 "
                "weeks, opioid orders (MME/day, days supply, benzodiazepines, naloxone), and long "
                "or risky muscle relaxant courses."
            ),
            context_model=OrderSelectContext,
            data=_ORDER_DATA,
            usage_requirements=_USAGE.format(
                extra="Procedures, QuestionnaireResponses (the red-flag screen)"
            ),
            optional_data=_ORDER_OPTIONAL_DATA,
        ),
        ServiceDefinition(
            id="lbp-order-sign",
            hook="order-sign",
            title="Low back pain: imaging, opioid and muscle relaxant orders (signing)",
            description=(
                "The order-select checks on every order about to be signed: lumbar imaging "
                "without red flags, opioid orders, and muscle relaxant courses."
            ),
            context_model=OrderSignContext,
            data=_ORDER_DATA,
            usage_requirements=_USAGE.format(
                extra="Procedures, QuestionnaireResponses (the red-flag screen)"
            ),
            optional_data=_ORDER_OPTIONAL_DATA,
        ),
    )
}


def service_or_404(service_id: str) -> ServiceDefinition:
    """The service with this id, or UnknownService (404) for the call and feedback routes."""
    service = SERVICES.get(service_id)
    if service is None:
        raise UnknownService(f"No CDS service with id {service_id!r}", expression=["id"])
    return service
