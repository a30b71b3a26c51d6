"""MongoDB (PyMongo's async API): the client factory and the transaction helper."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

T = TypeVar("T")
Doc = dict[str, Any]
Client = AsyncMongoClient[Doc]
Database = AsyncDatabase[Doc]
Session = AsyncClientSession


def create_mongo_client(uri: str, *, app_name: str, max_pool_size: int = 100) -> Client:
    """A client that waits for majority acknowledgement: money is never acknowledged early."""
    return AsyncMongoClient(
        uri,
        appname=app_name,
        maxPoolSize=max_pool_size,
        tz_aware=True,
        w="majority",
        serverSelectionTimeoutMS=10_000,
    )


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
