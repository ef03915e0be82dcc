"""uvicorn's h11 protocol with a deadline for the request head.

uvicorn closes an idle keep-alive connection only after an answer; a connection that never sends
a complete request head (nothing at all, or a header line every few seconds: "slowloris") stays
open for ever and holds a slot of `--limit-concurrency`. Here every wait for a request head, the
first on a connection and each one after an answer, must end within
CDS_HTTP_HEAD_TIMEOUT_SECONDS; otherwise the connection is closed. A request whose head arrived
is not affected (its body and its answer take as long as they take).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cds_service.config import get_settings


class HeadTimeoutH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = get_settings().http_head_timeout_seconds
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            # Bytes of a request head came, but not all of it: the deadline keeps running.
            self._arm_head_timer()
        else:
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        # The keep-alive timer (uvicorn) covers the idle time until the next request's bytes.
        self._cancel_head_timer()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
