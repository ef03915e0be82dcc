"""ASGI middleware: the request body size limit (413 before the body is read in full), and the
last line of defence that turns an unexpected error into a 500 answer on a live connection."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    """Outermost middleware: an unexpected exception becomes a logged 500 OperationOutcome.

    Starlette's own error middleware re-raises after answering, and uvicorn then closes the
    keep-alive connection; here the exception stops, so the client's connection stays usable.
    When the answer had already started, nothing more can be sent: the error is only logged.
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
            log.error(
                "unhandled error", exc_info=exc, extra={"status": 500, "reason": "internal-error"}
            )
            if not tracking_send.response_started:
                await _send_json(send, 500, operation_outcome("exception", "Internal error"))
