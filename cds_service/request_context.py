"""The request being answered: its X-Request-ID and, for an error answer, the reason code.

One `RequestContext` per HTTP request, held in a contextvar by the telemetry middleware: log
lines written while the request runs (in worker threads too: anyio copies the context) carry its
id, and whoever decides an error answer (an exception handler, a middleware) notes the reason
here, so that one place logs the error line and counts it.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

HEADER = "x-request-id"
MAX_REQUEST_ID_CHARS = 128


@dataclass
class RequestContext:
    request_id: str
    reason: str | None = None
    # Extra fields for the error line: field names, the service's own why; never request data.
    fields: dict[str, Any] = field(default_factory=dict)
    exception: BaseException | None = None


_current: ContextVar[RequestContext | None] = ContextVar("cds_request", default=None)


def current() -> RequestContext | None:
    return _current.get()


def current_request_id() -> str | None:
    context = _current.get()
    return context.request_id if context is not None else None


def begin(request_id: str) -> RequestContext:
    """A new context for this request, current from now on in this task."""
    context = RequestContext(request_id)
    _current.set(context)
    return context


def note_error(reason: str, **fields: Any) -> None:
    """The reason code (and safe details) of the error answer being sent, for its log line."""
    context = _current.get()
    if context is not None:
        context.reason = reason
        context.fields.update({k: v for k, v in fields.items() if v})


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: bytes | None) -> str | None:
    """The caller's X-Request-ID when it is 1-128 printable ASCII characters (no control
    characters or non-ASCII bytes: it goes into every log line and back into a header), else
    None."""
    if not value or len(value) > MAX_REQUEST_ID_CHARS:
        return None
    if not all(0x20 <= byte <= 0x7E for byte in value):
        return None
    return value.decode("ascii")
