"""Forgetting what is past its retention: sent outbox records, applied event ids.

One replica at a time (a lease) deletes, every few minutes, the documents whose age field is older
than the retention, with a range delete on an index of that field: the cost is what is deleted,
whatever the collection's size (a TTL index would do the same on MongoDB, but the embedded
server's TTL monitor reads whole collections under its global lock every minute).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from opentelemetry import metrics

from services.common.clock import Clock
from services.common.errors import safe_error_text
from services.common.lease import Lease
from services.common.mongo import Database

log = logging.getLogger(__name__)
_deleted = metrics.get_meter("fordring.retention").create_counter(
    "fordring_retention_deleted", description="Documents deleted because they were past their retention"
)


@dataclass(frozen=True)
class Retained:
    collection: str
    # A date field: documents without it are kept (an unsent outbox record has no `sent_at`).
    field: str
    keep: timedelta


class RetentionSweep:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        rules: Sequence[Retained],
        *,
        every: float = 300.0,
        name: str = "retention",
    ) -> None:
        self._db = db
        self._clock = clock
        self._rules = tuple(rules)
        self._every = every
        self._lease = Lease(db, name, clock, seconds=max(60.0, every))

    async def sweep(self) -> int:
        """Delete what is past its retention now; returns how many documents went."""
        total = 0
        now = self._clock.now()
        for rule in self._rules:
            result = await self._db[rule.collection].delete_many({rule.field: {"$lt": now - rule.keep}})
            if result.deleted_count:
                _deleted.add(result.deleted_count, {"collection": rule.collection})
                total += result.deleted_count
        return total

    async def run(self) -> None:
        while True:
            try:
                if await self._lease.hold():
                    await self.sweep()
            except Exception as exc:  # the next round tries again; nothing is lost by waiting
                log.warning("retention sweep failed (%s); trying again later", safe_error_text(exc))
            await asyncio.sleep(self._every)
