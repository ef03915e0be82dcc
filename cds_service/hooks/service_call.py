"""`POST /cds-services/{id}`: parse, authenticate, gather the record, evaluate, render.

The CPU-bound steps of a large call (parse and validate; assemble, evaluate, render and serialise)
run in a worker thread, so one 5 MB prefetch does not stall the event loop and every other call
(`/healthz` included) keeps answering; the FHIR fallback stays async on the loop. Small calls run
inline: a thread hop costs more than their whole evaluation. The worker still holds the GIL while
it runs Python, but yields it every switch interval, where the loop used to wait for the whole
request. The cyclic-GC pause (gc_pause) covers the worker too: the collector switch is
process-wide and the middleware awaits the call to its end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import ParamSpec, TypeVar

import orjson
from anyio import to_thread
from fastapi import APIRouter, Depends, Request, Response

from cds_service.cards.base import RenderContext
from cds_service.cards.render import render_cards
from cds_service.config import Settings
from cds_service.deps import CardLogDep, ClockDep, HttpClientDep, SettingsDep, UuidDep
from cds_service.errors import BadRequest, UnknownService
from cds_service.hooks.parsing import check_draft_order_count, parse_json_object, validate
from cds_service.hooks.registry import SERVICES, ServiceDefinition
from cds_service.logic import rules
from cds_service.models import CdsResponse, HookContext, HookRequest
from cds_service.openapi import body_schema
from cds_service.records.assemble import build_record
from cds_service.records.prefetch import ResolvedData, resolve_data
from cds_service.security import authenticate
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


def service_or_404(service_id: str) -> ServiceDefinition:
    service = SERVICES.get(service_id)
    if service is None:
        raise UnknownService(f"No CDS service with id {service_id!r}", expression=["id"])
    return service


@dataclass(frozen=True)
class ParsedCall:
    hook_request: HookRequest
    context: HookContext


@dataclass(frozen=True)
class Answer:
    body: bytes
    topics: list[str]
    entries: list[CardLogEntry]
    skipped: int


def parse_call(service: ServiceDefinition, body: bytes, max_draft_orders: int) -> ParsedCall:
    """The request body as wire models, or a 400 naming the field. Synchronous, CPU-bound."""
    data = parse_json_object(body)
    # Before any model is built: an oversized draftOrders costs no more than its parse.
    check_draft_order_count(data, max_draft_orders)
    hook_request = validate(HookRequest, data)
    if hook_request.hook != service.hook:
        raise BadRequest(
            f"Service {service.id} answers the {service.hook} hook, not {hook_request.hook}",
            expression=["hook"],
        )
    if hook_request.fhirAuthorization is not None and not hook_request.fhirServer:
        raise BadRequest("fhirAuthorization requires fhirServer", expression=["fhirServer"])
    context = validate(service.context_model, hook_request.context, root="context")
    return ParsedCall(hook_request, context)


def answer_call(
    service: ServiceDefinition,
    parsed: ParsedCall,
    data: ResolvedData,
    settings: Settings,
    today: date,
    new_uuid: Callable[[], str],
) -> Answer:
    """Record -> findings -> cards -> JSON bytes. Synchronous, CPU-bound, no I/O."""
    hook_request, context = parsed.hook_request, parsed.context
    record, skipped = build_record(
        hook=service.hook, today=today, context=hook_request.context, resources=data.resources
    )
    # The raw JSON is not needed once the record holds the slim models.
    data.resources.clear()
    hook_request.prefetch = None
    findings = rules.evaluate(record, settings.rules)
    ctx = RenderContext(
        new_uuid=new_uuid,
        record=record,
        config=settings.rules,
        public_base_url=settings.public_base_url,
        patient_id=context.patientId,
        user_id=context.userId,
        encounter_id=context.encounterId,
    )
    cards = render_cards(findings, ctx)
    issued_at = datetime.now(UTC)
    entries = [
        CardLogEntry(
            card_uuid=card.uuid,
            service_id=service.id,
            topic=card.source.topic.code if card.source.topic else "",
            indicator=card.indicator,
            hook_instance=hook_request.hookInstance,
            issued_at=issued_at,
        )
        for card in cards
    ]
    body = orjson.dumps(CdsResponse(cards=cards).to_json_dict())
    return Answer(body, [e.topic for e in entries], entries, skipped)


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
    # The cyclic GC is paused for the whole call (gc_pause.GcPauseMiddleware).
    body = await request.body()
    offload = len(body) > OFFLOAD_BODY_BYTES
    parsed = await _run(offload, parse_call, service, body, settings.max_draft_orders)
    hook_request = parsed.hook_request
    data = await resolve_data(service.data, hook_request, parsed.context.patientId, settings, http)
    # The request's own clock and uuid factory (injected; fixed in tests) go with the work.
    answer = await _run(offload, answer_call, service, parsed, data, settings, clock(), new_uuid)
    if answer.entries:
        card_log.add(answer.entries)
    log.info(
        "hook call",
        extra={
            "hookInstance": hook_request.hookInstance,
            "service": service.id,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "topics": answer.topics,
            "data_sources": data.sources,
            "skipped_resources": answer.skipped,
            "offloaded": offload,
        },
    )
    return Response(content=answer.body, media_type="application/json")
