"""MongoDB (PyMongo's async API): the client factory and the transaction helper."""

from __future__ import annotations

import atexit
import json
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, TypeVar

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

T = TypeVar("T")
Doc = dict[str, Any]
Client = AsyncMongoClient[Doc]
Database = AsyncDatabase[Doc]
Collection = AsyncCollection[Doc]
Session = AsyncClientSession

# Ids per `{"_id": {"$in": [...]}}`: the embedded server matches each document it finds against the
# whole list (0.1 ms a document at 100 ids, 3 ms at 5,000), so long lists go in slices of this.
IN_LIMIT: Final = 100


def in_slices(ids: Sequence[T]) -> Iterator[list[T]]:
    """`ids` in lists of at most IN_LIMIT, for `$in` lookups."""
    for start in range(0, len(ids), IN_LIMIT):
        yield list(ids[start : start + IN_LIMIT])


def create_mongo_client(uri: str, *, app_name: str, max_pool_size: int = 100) -> Client:
    """A client that waits for majority acknowledgement: money is never acknowledged early.

    FORDRING_MONGO_COMMAND_STATS=<file>: count every command by database, collection and name, and
    write the counts there as JSON when the process ends (for finding what a workload costs; "{pid}"
    in the name becomes the process id)."""
    listeners = []
    stats_file = os.environ.get("FORDRING_MONGO_COMMAND_STATS")
    if stats_file:
        listeners.append(_CommandStats(stats_file))
    return AsyncMongoClient(
        uri,
        appname=app_name,
        maxPoolSize=max_pool_size,
        tz_aware=True,
        w="majority",
        serverSelectionTimeoutMS=10_000,
        event_listeners=listeners,
    )


class _CommandStats(monitoring.CommandListener):
    def __init__(self, path: str) -> None:
        self._path = path.replace("{pid}", str(os.getpid()))
        self._counts: Counter[str] = Counter()
        self._seconds: dict[str, float] = {}
        self._names: dict[int, str] = {}
        atexit.register(self._write)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        collection = event.command.get(event.command_name)
        where = f"{event.database_name}.{collection}" if isinstance(collection, str) else event.database_name
        self._names[event.request_id] = f"{where} {event.command_name}"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._count(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._count(event.request_id, event.duration_micros)

    def _count(self, request_id: int, micros: int) -> None:
        name = self._names.pop(request_id, "?")
        self._counts[name] += 1
        self._seconds[name] = self._seconds.get(name, 0.0) + micros / 1e6

    def _write(self) -> None:
        rows = {
            name: {"count": n, "seconds": round(self._seconds[name], 3)}
            for name, n in self._counts.most_common()
        }
        with open(self._path, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=1)


async def in_transaction(client: Client, work: Callable[[Session], Awaitable[T]]) -> T:
    """Run `work` in one transaction, retried on transient errors (write conflicts, fail-over).

    `work` may run more than once: it must do nothing outside the session.
    """
    async with client.start_session() as session:
        return await session.with_transaction(
            work,
            read_concern=ReadConcern("snapshot"),
            write_concern=WriteConcern("majority"),
        )


async def ping(client: Client) -> None:
    await client.admin.command("ping")
