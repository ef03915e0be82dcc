"""CDS Hooks 2.0 wire models, named as in the specification.

Requests are validated leniently where real clients are loose (unknown keys ignored,
`expires_in` as a string) and strictly where the spec is firm (hook, hookInstance, context).
Responses omit every empty or null element (spec §"Use of JSON"), except `{"cards": []}`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
FhirId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-\.]+$")
]
UserReference = Annotated[
    str,
    StringConstraints(
        pattern=r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-\.]{1,64}$"
    ),
]
OrderReference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]+/[A-Za-z0-9\-\.]{1,64}$")]


def _int_from_string(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


class WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class FhirAuthorization(WireModel):
    access_token: NonEmptyStr
    token_type: NonEmptyStr = "Bearer"
    expires_in: Annotated[int | None, BeforeValidator(_int_from_string)] = None
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None

    def __repr__(self) -> str:  # never leak the token into logs or tracebacks
        return "FhirAuthorization(access_token=***)"

    __str__ = __repr__


class HookRequest(WireModel):
    """The body of `POST /cds-services/{id}`."""

    hook: NonEmptyStr
    hookInstance: NonEmptyStr
    fhirServer: NonEmptyStr | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None


class HookContext(WireModel):
    """Fields every hook of this service has in `context`."""

    userId: UserReference
    patientId: FhirId
    encounterId: FhirId | None = None


class ChartContext(HookContext):
    """patient-view context."""


class EncounterStartContext(HookContext):
    encounterId: FhirId


class DraftOrdersBundle(WireModel):
    resourceType: Literal["Bundle"]
    type: str | None = None
    entry: list[Any] = Field(default_factory=list)


class OrderSignContext(HookContext):
    draftOrders: DraftOrdersBundle


class OrderSelectContext(OrderSignContext):
    selections: list[OrderReference]


# ---- response ----------------------------------------------------------------------------


class Coding(WireModel):
    system: str
    code: str
    display: str | None = None


class Source(WireModel):
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(WireModel):
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


class Suggestion(WireModel):
    label: str
    uuid: str | None = None
    isRecommended: bool | None = None
    actions: list[Action] | None = None


class Link(WireModel):
    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None


class Card(WireModel):
    uuid: str
    summary: Annotated[str, StringConstraints(max_length=139)]
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = None
    links: list[Link] | None = None


class CdsResponse(WireModel):
    cards: list[Card]
    systemActions: list[Action] | None = None

    def to_json_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = self.model_dump(exclude_none=True)
        if not data.get("systemActions"):
            data.pop("systemActions", None)
        return data


class ServiceDescription(WireModel):
    hook: str
    title: str
    description: str
    id: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None


class DiscoveryResponse(WireModel):
    services: list[ServiceDescription]


# ---- feedback ------------------------------------------------------------------------------


class AcceptedSuggestion(WireModel):
    id: NonEmptyStr


class OverrideReasonCoding(WireModel):
    # The sandbox sends {code, system} without display; accept it.
    code: NonEmptyStr
    system: NonEmptyStr
    display: str | None = None


class OverrideReason(WireModel):
    reason: OverrideReasonCoding | None = None
    userComment: str | None = Field(default=None, max_length=10_000)


class FeedbackItem(WireModel):
    card: NonEmptyStr
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: NonEmptyStr


class FeedbackRequest(WireModel):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=1000)
