"""`POST /cds-services/{id}`: parse, authenticate, gather the record, evaluate, render."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request, Response

from cds_service.cards.base import RenderContext
from cds_service.cards.render import render_cards
from cds_service.deps import CardLogDep, ClockDep, HttpClientDep, SettingsDep, UuidDep
from cds_service.errors import BadRequest, UnknownService
from cds_service.hooks.parsing import parse_json_object, validate
from cds_service.hooks.registry import SERVICES, ServiceDefinition
from cds_service.logic import rules
from cds_service.models import CdsResponse, HookRequest
from cds_service.openapi import body_schema
from cds_service.records.assemble import build_record
from cds_service.records.prefetch import resolve_data
from cds_service.responses import json_response
from cds_service.security import authenticate
from cds_service.store.db import CardLogEntry

log = logging.getLogger("cds_service.hooks")

router = APIRouter(
    prefix="/cds-services", tags=["cds-services"], dependencies=[Depends(authenticate)]
)


def service_or_404(service_id: str) -> ServiceDefinition:
    service = SERVICES.get(service_id)
    if service is None:
        raise UnknownService(f"No CDS service with id {service_id!r}", expression=["id"])
    return service


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
    hook_request = validate(HookRequest, parse_json_object(await request.body()))
    if hook_request.hook != service.hook:
        raise BadRequest(
            f"Service {service.id} answers the {service.hook} hook, not {hook_request.hook}",
            expression=["hook"],
        )
    if hook_request.fhirAuthorization is not None and not hook_request.fhirServer:
        raise BadRequest("fhirAuthorization requires fhirServer", expression=["fhirServer"])
    context = validate(service.context_model, hook_request.context, root="context")
    patient_id = context.patientId

    data = await resolve_data(service.data, hook_request, patient_id, settings, http)
    record, skipped = build_record(
        hook=service.hook, today=clock(), context=hook_request.context, resources=data.resources
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
        patient_id=patient_id,
        user_id=context.userId,
        encounter_id=context.encounterId,
    )
    cards = render_cards(findings, ctx)
    response = CdsResponse(cards=cards)

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
    if entries:
        card_log.add(entries)
    log.info(
        "hook call",
        extra={
            "hookInstance": hook_request.hookInstance,
            "service": service.id,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "topics": [e.topic for e in entries],
            "data_sources": data.sources,
            "skipped_resources": skipped,
        },
    )
    return json_response(response.to_json_dict())
