"""Outermost middleware: the request's X-Request-ID, the hook-call metrics, and the one log line
of every 4xx and 5xx answer.

- X-Request-ID: the caller's when it is sane (request_context.sane_request_id), else a new
  uuid4 hex; current for the whole request (log lines repeat it) and set on every answer,
  whoever sends it (a route, an exception handler, BodySizeLimit's 413, AnswerEveryRequest's
  500, the router's 404).
- `POST /cds-services/{id}`: counted by service id and status, and timed, from arrival to the end
  of the answer.
- An answer of status 400 or more: one JSON line with status, reason code, method and route
  template (never the raw path: it may carry an id), plus what the code that chose the answer
  noted (field names, the service's own why), and the errors metric. Never the body, a header,
  a token or a URL. The reason is noted by whoever decides the answer (request_context); an
  answer nobody explained gets a code from its status.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds_service import metrics, request_context
from cds_service.request_context import RequestContext

log = logging.getLogger("cds_service.answers")

HEADER = request_context.HEADER.encode("ascii")
HOOK_CALL_PREFIX = "/cds-services/"
# Answers no code explained (the router's 404/405, a plain 401 Response of the admin pages, ...).
STATUS_REASONS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
    500: "internal-error",
    503: "unavailable",
}


def status_reason(status: int) -> str:
    return STATUS_REASONS.get(status, f"http-{status}")


class RequestTelemetry:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _caller_request_id(scope) or request_context.new_request_id()
        context = request_context.begin(request_id)
        id_header = (HEADER, request_id.encode("ascii"))
        status = 0
        finished = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted and logged before the last byte leaves: whoever has the answer can
                # already see it in /metrics and in the log.
                finished = True
                _finish(scope, context, status, started)
            await send(message)

        await self.app(scope, receive, send_with_id)
        if not finished:
            _finish(scope, context, status, started)
        elif context.exception is not None:
            # Raised after the whole answer was sent: nothing to count, but it is logged.
            _log_error_answer(scope, context, status, None)


def _finish(scope: Scope, context: RequestContext, status: int, started: float) -> None:
    service = _hook_call_service(scope)
    if service is not None and status:
        metrics.observe_hook_call(service, status, time.perf_counter() - started)
    if status >= 400 or context.exception is not None:
        _log_error_answer(scope, context, status, service)
        context.exception = None


def _caller_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            return request_context.sane_request_id(value)
    return None


def _route_path(scope: Scope) -> str:
    """The path the routes see (without the root path a proxy mounts the service under)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _hook_call_service(scope: Scope) -> str | None:
    """The service label of a hook call (`POST /cds-services/{id}`), None for other requests."""
    if scope.get("method") != "POST":
        return None
    path = _route_path(scope)
    if not path.startswith(HOOK_CALL_PREFIX):
        return None
    service_id = path[len(HOOK_CALL_PREFIX) :]
    if "/" in service_id:
        return None
    return metrics.service_label(service_id)


def route_template(scope: Scope) -> str | None:
    """The path template of the route that answered. An answer sent before routing (a 413 from
    BodySizeLimit) has none: the template of the service routes is then taken from the path's
    shape, and any other path is None (its text is never logged)."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    route_path = _route_path(scope)
    if route_path.startswith(HOOK_CALL_PREFIX):
        tail = route_path[len(HOOK_CALL_PREFIX) :].split("/")
        if len(tail) == 1:
            return "/cds-services/{service_id}"
        if len(tail) == 2 and tail[1] == "feedback":
            return "/cds-services/{service_id}/feedback"
    return None


def _log_error_answer(
    scope: Scope, context: RequestContext, status: int, service: str | None
) -> None:
    reason = context.reason or status_reason(status or 500)
    if status >= 400:
        metrics.count_error_answer(status, reason)
    fields: dict[str, Any] = {
        "status": status,
        "reason": reason,
        "method": scope.get("method"),
        "route": route_template(scope),
    }
    if service is not None and service != metrics.UNKNOWN:
        fields["service"] = service
    fields.update(context.fields)
    level = logging.ERROR if status >= 500 or context.exception is not None else logging.WARNING
    message = "error answer" if status >= 400 else "error after the answer started"
    log.log(level, message, extra=fields, exc_info=context.exception)
