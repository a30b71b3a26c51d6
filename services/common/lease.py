"""Leases in MongoDB: one replica at a time does a singleton job (outbox relay, timers, sweeps).

A lease is claimed with `find_one_and_update`; a crashed holder's lease runs out and another
replica takes over.
"""

from __future__ import annotations

import socket
from datetime import timedelta

from pymongo.errors import DuplicateKeyError

from services.common.clock import Clock
from services.common.ids import new_id
from services.common.mongo import Database

LEASES = "leases"


class Lease:
    def __init__(self, db: Database, name: str, clock: Clock, *, seconds: float = 10.0) -> None:
        self._db = db
        self._name = name
        self._clock = clock
        self._length = timedelta(seconds=seconds)
        self.holder = f"{socket.gethostname()}:{new_id()}"
        self._until = clock.now()

    async def hold(self) -> bool:
        """True while this replica holds the lease; renews it when a third of it is left."""
        now = self._clock.now()
        if self._until - now > self._length * 2 / 3:
            return True
        until = now + self._length
        try:
            await self._db[LEASES].find_one_and_update(
                {"_id": self._name, "$or": [{"until": {"$lt": now}}, {"holder": self.holder}]},
                {"$set": {"holder": self.holder, "until": until}},
                upsert=True,
            )
        except DuplicateKeyError:  # another replica holds it
            self._until = now
            return False
        self._until = until
        return True

    async def release(self) -> None:
        await self._db[LEASES].update_one(
            {"_id": self._name, "holder": self.holder}, {"$set": {"until": self._clock.now()}}
        )
        self._until = self._clock.now()
