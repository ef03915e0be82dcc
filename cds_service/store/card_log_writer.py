"""Writes the card log in batches, off the request path.

A hook call only appends its card entries to memory; a lifespan task writes them every
FLUSH_INTERVAL_SECONDS (0.1 s, on a fixed cadence; one transaction per batch, in the writer's own
thread; nothing is written when nothing is pending).

Durability:
- A clean stop (SIGTERM, SIGINT, the end of the lifespan) loses nothing: uvicorn answers the calls
  in flight first, then the lifespan shutdown wakes the writer, which writes everything pending
  before the store is closed. A write in progress is never abandoned: cancelling the writer waits
  for the batch's transaction to finish, and a batch whose write failed goes back to the queue.
  If the database still refuses the final write after STOP_RETRY_SECONDS, the entries are
  logged as lost (an error line with their count), never dropped silently.
- A crash (SIGKILL, OOM kill) loses what was still in memory: the cards issued during the last
  flush interval plus the write in progress, well under 0.25 s of cards (bench/card_log_loss.py
  measures it). SQLite runs in WAL mode with synchronous=NORMAL: a committed batch survives the
  process being killed; a power loss of the host may also lose the last commits.
- The database down: entries stay in memory and the write is retried with a back-off (up to
  MAX_RETRY_SECONDS apart), up to `max_pending` entries; beyond that the oldest are dropped. One
  error line when writes start failing, one per report interval counting the entries dropped,
  one line when they succeed again. The card log is an audit aid: a clinical answer never waits
  for it.

Rows are keyed by card uuid and inserted with "on conflict do nothing", so writing a batch twice
(a retry after an uncertain failure) never duplicates a card.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from cds_service import metrics
from cds_service.store.db import CardLogEntry, Store

log = logging.getLogger("cds_service.store")

FLUSH_INTERVAL_SECONDS = 0.1
# While the database refuses writes, the retry interval doubles up to this.
MAX_RETRY_SECONDS = 2.0
# At shutdown, how long the final write is retried before the entries are reported lost.
STOP_RETRY_SECONDS = 5.0
# At most one "entries dropped" line per this many seconds while the backlog overflows.
DROP_REPORT_SECONDS = 10.0


class CardLogWriter:
    def __init__(
        self,
        store: Store,
        *,
        interval: float = FLUSH_INTERVAL_SECONDS,
        max_pending: int = 100_000,
        stop_retry_seconds: float = STOP_RETRY_SECONDS,
    ) -> None:
        self._store = store
        self._interval = interval
        self._max_pending = max_pending
        self._stop_retry_seconds = stop_retry_seconds
        self._pending: list[CardLogEntry] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()
        # One thread of its own: the write never queues behind request work in the shared pool,
        # and stop() can wait for it.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="card-log-writer")
        self._failures = 0
        self._dropped = 0
        self._dropped_unreported = 0
        self._last_drop_report = 0.0
        self._stopped = False

    def add(self, entries: Sequence[CardLogEntry]) -> None:
        if self._stopped:
            log.error(
                "card log entries after shutdown were not written", extra={"lost": len(entries)}
            )
            return
        self._pending.extend(entries)
        if self._drop_overflow():
            self._report_drops()

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def dropped(self) -> int:
        """Entries dropped because the backlog was full (since start)."""
        return self._dropped

    def _drop_overflow(self) -> bool:
        """Drop the oldest pending entries beyond `max_pending`, counted; True when any were."""
        overflow = len(self._pending) - self._max_pending
        if overflow <= 0:
            return False
        del self._pending[:overflow]
        metrics.card_log_dropped(overflow)
        self._dropped += overflow
        self._dropped_unreported += overflow
        return True

    def _report_drops(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self._dropped_unreported:
            return
        if force or now - self._last_drop_report >= DROP_REPORT_SECONDS:
            log.error(
                "card log backlog full: oldest entries dropped",
                extra={"dropped": self._dropped_unreported, "max_pending": self._max_pending},
            )
            self._dropped_unreported = 0
            self._last_drop_report = now

    async def flush(self) -> bool:
        """Write what is pending; True when nothing is left pending. A failed batch is kept."""
        async with self._lock:
            if not self._pending:
                return True
            batch, self._pending = self._pending, []
            write = asyncio.get_running_loop().run_in_executor(
                self._thread, self._store.log_cards, batch
            )
            try:
                # Shielded: a cancelled caller must not abandon a transaction halfway.
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await self._settle(write, batch)
                raise
            except Exception as exc:
                self._write_failed(batch, exc)
                return False
            self._write_succeeded(len(batch))
            return not self._pending

    async def _settle(self, write: asyncio.Future[None], batch: list[CardLogEntry]) -> None:
        """After a cancel: wait for the write in progress, and keep its batch if it failed."""
        try:
            await asyncio.wait([write])
        finally:
            if not write.done() or write.cancelled() or write.exception() is not None:
                self._pending[:0] = batch

    def _write_failed(self, batch: list[CardLogEntry], exc: Exception) -> None:
        self._pending[:0] = batch
        self._failures += 1
        if self._failures == 1:
            log.error(
                "card log write failed; entries kept in memory and retried",
                extra={"entries": len(self._pending), "error": type(exc.__cause__ or exc).__name__},
            )
        self._drop_overflow()
        self._report_drops()

    def _write_succeeded(self, written: int) -> None:
        if self._failures:
            log.warning(
                "card log writes resumed",
                extra={"entries": written, "failed_attempts": self._failures},
            )
            self._failures = 0
        self._report_drops(force=True)

    def _next_wait(self) -> float:
        if not self._failures:
            return self._interval
        backoff = self._interval * 2.0 ** min(self._failures, 16)
        return min(backoff, max(MAX_RETRY_SECONDS, self._interval))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        # Flushes start on a fixed cadence (not `interval` after the previous write ended), so
        # an entry waits at most one interval plus the write in progress.
        next_at = loop.time() + self._interval
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(
                    self._stopping.wait(), timeout=max(0.0, next_at - loop.time())
                )
            except TimeoutError:
                pass
            await self.flush()
            metrics.card_log_pending(len(self._pending))
            if self._failures:
                next_at = loop.time() + self._next_wait()
            else:
                next_at = max(next_at + self._interval, loop.time())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="card-log-writer")

    async def stop(self) -> None:
        """Write everything pending (retrying for up to `stop_retry_seconds`), then stop."""
        self._stopping.set()
        if self._task is not None:
            try:
                await self._task
            except Exception:
                log.exception("card log writer task failed")
            self._task = None
        deadline = time.monotonic() + self._stop_retry_seconds
        while not await self.flush():
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        self._stopped = True
        if self._pending:
            log.error(
                "card log entries could not be written before shutdown; lost",
                extra={"lost": len(self._pending), "error_attempts": self._failures},
            )
            self._pending = []
        self._report_drops(force=True)
        self._thread.shutdown(wait=True)
