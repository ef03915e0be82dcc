"""The store's background work, started and stopped by the service's lifespan.

- Every FOLD_INTERVAL_SECONDS: fold the cards and feedback written since into the analytics
  counts (store/rollup.py `catch_up`), when no other replica is at it. /analytics folds in what
  is pending before it reads anyway; this keeps that short.
- PRUNE_FIRST_DELAY_SECONDS after start, then every PRUNE_INTERVAL_SECONDS: retention
  (store/retention.py) with the cutoff `CDS_RETENTION_DAYS` before the service's clock.

The database work runs in a thread of its own, never on the event loop. A failure is logged and
the next round runs as planned; the service never stops for it. Stopping ends the current round
after its batch in progress (a transaction is never abandoned halfway).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from cds_service.errors import ServiceUnavailable
from cds_service.store import retention, rollup
from cds_service.store.db import Store

log = logging.getLogger("cds_service.store")

FOLD_INTERVAL_SECONDS = 5.0
PRUNE_FIRST_DELAY_SECONDS = 60.0
PRUNE_INTERVAL_SECONDS = 6 * 3600.0


class StoreMaintenance:
    def __init__(
        self,
        store: Store,
        *,
        retention_days: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._retention = timedelta(days=retention_days)
        self._clock = clock
        # Read when built (not as default arguments), so a test can shorten them.
        self._fold_interval = FOLD_INTERVAL_SECONDS
        self._prune_first_delay = PRUNE_FIRST_DELAY_SECONDS
        self._prune_interval = PRUNE_INTERVAL_SECONDS
        self._stopping = threading.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-maintenance")
        self._task: asyncio.Task[None] | None = None

    def fold(self) -> None:
        folded = rollup.catch_up(self._store, wait=False)
        if folded:
            log.debug("analytics counts updated", extra={"rows": folded})

    def prune(self) -> retention.Pruned | None:
        cutoff = self._clock() - self._retention
        pruned = retention.prune(self._store, cutoff, stop=self._stopping)
        if pruned is None:
            log.info("retention skipped: another replica is pruning")
        else:
            log.info(
                "retention pruned",
                extra={
                    "cutoff": cutoff.isoformat(),
                    "cards": pruned.cards,
                    "feedback": pruned.feedback,
                    "batches": pruned.batches,
                },
            )
        return pruned

    async def _in_thread(self, job: Callable[[], Any], name: str) -> None:
        work = asyncio.get_running_loop().run_in_executor(self._thread, job)
        try:
            # Shielded: a cancelled task waits for the batch in progress instead of leaving it.
            await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.wait([work])
            raise
        except ServiceUnavailable:
            log.warning("store maintenance skipped: store unavailable", extra={"job": name})
        except Exception:
            log.exception("store maintenance failed", extra={"job": name})

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_prune = loop.time() + self._prune_first_delay
        while not self._stopping.is_set():
            await asyncio.sleep(max(0.0, min(self._fold_interval, next_prune - loop.time())))
            await self._in_thread(self.fold, "analytics")
            if loop.time() >= next_prune:
                await self._in_thread(self.prune, "retention")
                next_prune = loop.time() + self._prune_interval

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-maintenance")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None
        self._thread.shutdown(wait=True)
