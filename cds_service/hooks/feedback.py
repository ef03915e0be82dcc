"""`POST /cds-services/{id}/feedback`: stored durably, idempotent, 200 `{}`.

Stored before the answer: when the store cannot be reached it raises ServiceUnavailable, so the
EHR gets 503 with Retry-After and can send the feedback again (a repeat is ignored)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from cds_service.deps import StoreDep
from cds_service.hooks.parsing import parse_json_object, validate
from cds_service.hooks.registry import service_or_404
from cds_service.models import FeedbackRequest
from cds_service.openapi import body_schema
from cds_service.responses import json_response
from cds_service.security import authenticate

log = logging.getLogger("cds_service.feedback")

router = APIRouter(prefix="/cds-services", tags=["feedback"], dependencies=[Depends(authenticate)])


@router.post(
    "/{service_id}/feedback",
    summary="CDS Hooks feedback",
    openapi_extra=body_schema(FeedbackRequest),
)
async def feedback(service_id: str, request: Request, store: StoreDep) -> Response:
    """Store each feedback item (CDS Hooks 2.0 §"Feedback"); unknown card uuids are kept too."""
    service = service_or_404(service_id)
    body = validate(FeedbackRequest, parse_json_object(await request.body()))
    items = [item.model_dump(exclude_none=True) for item in body.feedback]
    added = await run_in_threadpool(store.save_feedback, service.id, items)
    log.info(
        "feedback",
        extra={
            "service": service.id,
            "items": len(items),
            "stored": added,
            "outcomes": [i["outcome"] for i in items],
        },
    )
    return json_response({})
