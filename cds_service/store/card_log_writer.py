"""Writes the card log in batches, off the request path.

A hook call only appends its card entries to memory; a lifespan task writes them every
`interval` seconds (one transaction per batch, in a worker thread), and shutdown writes what is
left, so a clean stop loses nothing. If the database is down the entries are kept and retried,
up to `max_pending`; beyond that the oldest are dropped and the loss is logged (the card log is
an audit aid; a clinical answer never waits for it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool

from cds_service.store.db import CardLogEntry, Store

log = logging.getLogger("cds_service.store")


class CardLogWriter:
    def __init__(self, store: Store, *, interval: float = 0.5, max_pending: int = 100_000) -> None:
        self._store = store
        self._interval = interval
        self._max_pending = max_pending
        self._pending: list[CardLogEntry] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, entries: Sequence[CardLogEntry]) -> None:
        self._pending.extend(entries)
        overflow = len(self._pending) - self._max_pending
        if overflow > 0:
            del self._pending[:overflow]
            log.error("card log backlog full: oldest entries dropped", extra={"dropped": overflow})

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await run_in_threadpool(self._store.log_cards, batch)
        except Exception:
            log.exception("card log write failed; will retry", extra={"entries": len(batch)})
            self._pending[:0] = batch

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="card-log-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.flush()
