"""Request bodies -> validated wire models, or a 400 OperationOutcome that names the field."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from cds_service.errors import BadRequest, pydantic_location

M = TypeVar("M", bound=BaseModel)


def parse_json_object(body: bytes) -> dict[str, Any]:
    # A UTF-8 byte order mark is allowed before JSON text (RFC 8259 §8.1: parsers may ignore it).
    body = body.removeprefix(b"\xef\xbb\xbf")
    if not body:
        raise BadRequest(
            "Request body is empty; a JSON object is required",
            expression=["body"],
            reason="body-not-json",
        )
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"Request body is not valid JSON: {exc}", expression=["body"], reason="body-not-json"
        ) from exc
    if not isinstance(data, dict):
        raise BadRequest(
            "Request body must be a JSON object", expression=["body"], reason="body-not-object"
        )
    return data


def check_draft_order_count(data: dict[str, Any], limit: int) -> None:
    """400 when `context.draftOrders` carries more entries than one call may (CONTRACT v2,
    CDS_MAX_DRAFT_ORDERS). Checked on the parsed JSON, before any model is built, so an oversized
    call costs no more than its parse."""
    context = data.get("context")
    bundle = context.get("draftOrders") if isinstance(context, dict) else None
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    if isinstance(entries, list) and len(entries) > limit:
        raise BadRequest(
            f"context.draftOrders has {len(entries)} entries; this service takes at most {limit} "
            "draft orders per call",
            expression=["context.draftOrders"],
            reason="too-many-draft-orders",
        )


def validate(model: type[M], data: Any, root: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = pydantic_location(tuple(first["loc"]), root)
        fields = sorted({pydantic_location(tuple(e["loc"]), root) for e in exc.errors()})
        raise BadRequest(f"{where}: {first['msg']}", expression=fields[:20]) from exc
