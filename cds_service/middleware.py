"""ASGI middleware: the request body size limit (413 before the body is read in full), the
cyclic-GC pause during hook calls, and the last line of defence that turns an unexpected error
into a 500 answer on a live connection."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds_service import request_context
from cds_service.errors import operation_outcome

log = logging.getLogger("cds_service")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        tracking_send = _TrackingSend(send)
        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not tracking_send.response_started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        message = f"Request body is larger than {self.max_bytes} bytes (CDS_MAX_BODY_BYTES)"
        await _send_json(send, 413, operation_outcome("too-costly", message))


class _TooLarge(Exception):
    pass


class _TrackingSend:
    """`send`, remembering whether the answer has started (after which no other can be sent)."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.response_started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.response_started = True
        await self.send(message)


async def _send_json(send: Send, status: int, outcome: dict[str, Any]) -> None:
    body = orjson.dumps(outcome)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AnswerEveryRequest:
    """An unexpected exception becomes a logged 500 OperationOutcome.

    Starlette's own error middleware re-raises after answering, and uvicorn then closes the
    keep-alive connection; here the exception stops, so the client's connection stays usable.
    When the answer had already started, nothing more can be sent: the error is only logged.
    Inside a request context (telemetry.RequestTelemetry, outside this one) the exception goes
    on the request's one error line; without one it is logged here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracking_send = _TrackingSend(send)
        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            context = request_context.current()
            if context is None:
                log.error(
                    "unhandled error",
                    exc_info=exc,
                    extra={"status": 500, "reason": "internal-error"},
                )
            else:
                context.reason = "internal-error"
                context.exception = exc
            if not tracking_send.response_started:
                await _send_json(send, 500, operation_outcome("exception", "Internal error"))


class GcPauseMiddleware:
    """Keep the cyclic garbage collector out of `POST /cds-services/{id}` calls.

    Parsing a large prefetch allocates hundreds of thousands of small acyclic objects (dicts,
    lists, slim models). Each allocation burst triggers collections that rescan everything still
    alive, and re-enabling the collector while the request's objects are alive makes the next
    collection scan them all: measured on a 20,000-resource patient-view, parse+build+evaluate
    take ~270 ms and that one deferred collection another ~190 ms. Those objects are freed by
    reference counting when the call ends, so the collector is paused while any hook call is in
    flight and resumes when none is (a collection then finds little to scan). Under unbroken load,
    a young-generation collection runs at least every `max_pause_seconds` and a full one every
    `full_collect_seconds`, so cyclic garbage from elsewhere (exceptions with tracebacks, asyncio
    internals) is still reclaimed.

    The collector switch is process-wide while the count of calls in flight is this instance's:
    this assumes one app per process (as uvicorn and gunicorn workers run it). A collector that
    was already off when the first call came in (someone else's choice) is left off.
    enter/exit run on the event loop only, so the counter needs no lock; a call whose work runs
    in a worker thread is still covered, since the middleware awaits it to its end.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_pause_seconds: float = 1.0,
        full_collect_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.max_pause_seconds = max_pause_seconds
        self.full_collect_seconds = full_collect_seconds
        self.monotonic = monotonic
        self.depth = 0
        self.owned = False
        self.since = 0.0
        self.last_full = monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not scope.get("path", "").startswith("/cds-services/")
        ):
            await self.app(scope, receive, send)
            return
        self.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.exit()

    def enter(self) -> None:
        now = self.monotonic()
        if self.depth == 0 and gc.isenabled():
            gc.disable()
            self.owned = True
            self.since = now
        elif self.owned and now - self.since > self.max_pause_seconds:
            full = now - self.last_full > self.full_collect_seconds
            gc.collect() if full else gc.collect(1)
            if full:
                self.last_full = now
            self.since = now
        self.depth += 1

    def exit(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self.owned:
            self.owned = False
            gc.enable()
