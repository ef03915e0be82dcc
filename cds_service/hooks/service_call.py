"""`POST /cds-services/{id}`: one hook call, in five named steps (authentication runs first, as
the router's dependency): parse -> resolve (prefetch, then the FHIR server) -> evaluate (one
PatientRecord, the rules' findings) -> render (cards, JSON) -> record (card log, log line).

The CPU-bound steps of a large call (parse and validate; assemble, evaluate, render and serialise)
run in a worker thread, so one 5 MB prefetch does not stall the event loop and every other call
(`/healthz` included) keeps answering; the FHIR fallback stays async on the loop. Small calls run
inline: a thread hop costs more than their whole evaluation. The worker holds the GIL while it
runs Python but yields it every switch interval, so the loop is never held for a whole request.
The cyclic-GC pause (middleware) covers the worker too: the collector switch is process-wide and
the middleware awaits the call to its end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import ParamSpec, TypeVar

import httpx
import orjson
from anyio import to_thread
from fastapi import APIRouter, Depends, Request, Response

from cds_service import metrics
from cds_service.cards.base import RenderContext
from cds_service.cards.render import render_cards
from cds_service.config import Settings
from cds_service.deps import CardLogDep, ClockDep, HttpClientDep, SettingsDep, UuidDep, local_date
from cds_service.errors import BadRequest
from cds_service.hooks.parsing import check_draft_order_count, parse_json_object, validate
from cds_service.hooks.registry import ServiceDefinition, service_or_404
from cds_service.logic import rules
from cds_service.logic.findings import Finding
from cds_service.logic.record import PatientRecord
from cds_service.models import CdsResponse, HookContext, HookRequest
from cds_service.openapi import body_schema
from cds_service.records.assemble import DraftResources, build_record, draft_resources
from cds_service.records.prefetch import ResolvedData, resolve_data
from cds_service.security import authenticate
from cds_service.store.card_log_writer import CardLogWriter
from cds_service.store.db import CardLogEntry

log = logging.getLogger("cds_service.hooks")

# Bodies larger than this are parsed, evaluated and rendered in a worker thread. Below it the
# whole call takes a few milliseconds on the loop (bench/results).
OFFLOAD_BODY_BYTES = 256 * 1024

P = ParamSpec("P")
T = TypeVar("T")

router = APIRouter(
    prefix="/cds-services", tags=["cds-services"], dependencies=[Depends(authenticate)]
)


@dataclass(frozen=True)
class ParsedCall:
    service: ServiceDefinition
    hook_request: HookRequest
    context: HookContext
    drafts: DraftResources


@dataclass(frozen=True)
class Evaluated:
    record: PatientRecord
    findings: list[Finding]
    skipped: int


@dataclass(frozen=True)
class Answer:
    body: bytes
    card_uuids: list[str]
    topics: list[str]
    indicators: list[str]


def parse(service: ServiceDefinition, body: bytes, max_draft_orders: int) -> ParsedCall:
    """The request body as wire models, or a 400 naming the field. Synchronous, CPU-bound."""
    data = parse_json_object(body)
    # Before any model is built: an oversized draftOrders costs no more than its parse.
    check_draft_order_count(data, max_draft_orders)
    hook_request = validate(HookRequest, data)
    if hook_request.hook != service.hook:
        raise BadRequest(
            f"Service {service.id} answers the {service.hook} hook, not {hook_request.hook}",
            expression=["hook"],
            reason="wrong-hook",
        )
    if hook_request.fhirAuthorization is not None and not hook_request.fhirServer:
        raise BadRequest("fhirAuthorization requires fhirServer", expression=["fhirServer"])
    context = validate(service.context_model, hook_request.context, root="context")
    return ParsedCall(service, hook_request, context, draft_resources(hook_request.context))


async def resolve(call: ParsedCall, settings: Settings, http: httpx.AsyncClient) -> ResolvedData:
    """Each data key from the prefetch, else from the FHIR server (412 when it cannot be had)."""
    return await resolve_data(
        call.service.data,
        call.hook_request,
        call.context.patientId,
        call.drafts.resources,
        settings,
        http,
        optional=call.service.optional_data,
    )


def evaluate(call: ParsedCall, data: ResolvedData, settings: Settings, today: date) -> Evaluated:
    """One PatientRecord, and the findings of the rules of this hook. Synchronous, CPU-bound."""
    record, skipped = build_record(
        hook=call.service.hook,
        today=today,
        context=call.hook_request.context,
        drafts=call.drafts,
        resources=data.resources,
    )
    # The raw JSON is not needed once the record holds the slim models.
    data.resources.clear()
    call.hook_request.prefetch = None
    return Evaluated(record, rules.evaluate(record, settings.rules), skipped)


def render(
    call: ParsedCall, evaluated: Evaluated, settings: Settings, new_uuid: Callable[[], str]
) -> Answer:
    """The findings worded as cards, serialised. Synchronous, CPU-bound."""
    record = evaluated.record
    drafts = {
        f"MedicationRequest/{order.id}": order
        for order in record.draft_medication_requests
        if order.id
    }
    ctx = RenderContext(
        new_uuid=new_uuid,
        today=record.today,
        public_base_url=settings.public_base_url,
        patient_id=call.context.patientId,
        user_id=call.context.userId,
        encounter_id=call.context.encounterId,
        drafts=drafts,
        draft_json=record.draft_order_json,
    )
    cards = render_cards(evaluated.findings, ctx)
    return Answer(
        body=orjson.dumps(CdsResponse(cards=cards).to_json_dict()),
        card_uuids=[card.uuid for card in cards],
        topics=[card.source.topic.code if card.source.topic else "" for card in cards],
        indicators=[card.indicator for card in cards],
    )


def record_cards(
    card_log: CardLogWriter, call: ParsedCall, answer: Answer, issued_at: datetime
) -> None:
    """The cards issued go to the card log (written in batches, off the request path)."""
    entries = [
        CardLogEntry(
            card_uuid=card_uuid,
            service_id=call.service.id,
            topic=topic,
            indicator=indicator,
            hook_instance=call.hook_request.hookInstance,
            issued_at=issued_at,
        )
        for card_uuid, topic, indicator in zip(
            answer.card_uuids, answer.topics, answer.indicators, strict=True
        )
    ]
    if entries:
        card_log.add(entries)
    metrics.count_cards(answer.topics, answer.indicators)


async def _run(offload: bool, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`func(*args)`: in a worker thread when `offload`, else inline on the loop."""
    if not offload:
        return func(*args, **kwargs)
    return await to_thread.run_sync(lambda: func(*args, **kwargs))


@router.post(
    "/{service_id}",
    summary="Call a CDS service",
    openapi_extra=body_schema(HookRequest),
)
async def call_service(
    service_id: str,
    request: Request,
    settings: SettingsDep,
    http: HttpClientDep,
    card_log: CardLogDep,
    clock: ClockDep,
    new_uuid: UuidDep,
) -> Response:
    """One hook call (CDS Hooks 2.0 §"Calling a CDS Service")."""
    started = time.perf_counter()
    service = service_or_404(service_id)
    body = await request.body()
    # The cyclic GC is paused for the whole call (middleware); large calls work in a thread.
    offload = len(body) > OFFLOAD_BODY_BYTES
    call = await _run(offload, parse, service, body, settings.max_draft_orders)
    data = await resolve(call, settings, http)
    # One moment per call, from the injected clock: the record's "today" and the card log's time.
    now = clock()
    evaluated = await _run(offload, evaluate, call, data, settings, local_date(now))
    answer = await _run(offload, render, call, evaluated, settings, new_uuid)
    record_cards(card_log, call, answer, now)
    log.info(
        "hook call",
        extra={
            "hookInstance": call.hook_request.hookInstance,
            "service": service.id,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "topics": answer.topics,
            "data_sources": data.sources,
            "skipped_resources": evaluated.skipped,
            "other_patient_resources": evaluated.record.other_patient_resources,
            "offloaded": offload,
        },
    )
    return Response(content=answer.body, media_type="application/json")
