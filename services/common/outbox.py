"""The transactional outbox: the events a change announces, written in the change's own transaction.

A service writes its state change and the events announcing it in one MongoDB transaction
(`add_to_outbox`); the relay (services/common/relay.py) publishes what is unsent to Kafka and marks it
sent. Sent records stay for a retention window (then services/common/retention.py deletes them), so
a window can be published again after a broker lost its log (`replay`); consumers dedupe by event id.

A record the broker keeps refusing (too large, a topic that does not exist, a denied ACL) is parked
after bounded attempts: it stays unsent with its reason until an operator retries it (`unpark`), and
later records with the same key wait behind it, so one invoice's events never overtake each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING

from services.common.events import Event, encode_event, trace_headers
from services.common.ids import id_floor
from services.common.mongo import Database, Doc, Session
from services.common.telemetry import current_traceparent

OUTBOX = "outbox"
# Per-database state of the relay (the broker's cluster id it last published to).
OUTBOX_STATE = "outbox_state"


def outbox_doc(
    event: Event, topic: str, traceparent: str | None = None, *, headers: dict[str, str] | None = None
) -> Doc:
    """The outbox record of one event, carrying the trace of the change that caused it (and extra
    Kafka headers, e.g. a dead-letter reason)."""
    return {
        "_id": event.id,
        "topic": topic,
        "key": event.subject,
        "type": event.type,
        "tenant_id": event.tenant_id,
        "value": encode_event(event),
        "traceparent": current_traceparent() if traceparent is None else traceparent,
        "headers": {**trace_headers(event), **(headers or {})},
        "created_at": event.occurred_at,
        "sent": False,
    }


async def add_to_outbox(db: Database, session: Session, items: Sequence[tuple[Event, str]]) -> None:
    """Write (event, topic) pairs to the outbox inside the caller's transaction."""
    if items:
        await db[OUTBOX].insert_many([outbox_doc(e, t) for e, t in items], session=session)


async def ensure_outbox_indexes(db: Database) -> None:
    """The relay's queue (unsent, in id order), parked records, and sent ones by age (retention)."""
    outbox = db[OUTBOX]
    await outbox.create_index([("sent", ASCENDING), ("_id", ASCENDING)], name="unsent")
    await outbox.create_index(
        [("parked", ASCENDING), ("key", ASCENDING)],
        name="parked",
        partialFilterExpression={"parked": True},
    )
    # Not a TTL index: the relay deletes what is past the retention (services/common/retention.py).
    # The embedded server's TTL monitor reads every document of the collection each minute under its
    # global lock; a range delete on this index costs only what it deletes, on any server.
    await outbox.create_index("sent_at", name="sent_at")


# --- for operators ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParkedRecord:
    id: str
    topic: str
    key: str
    type: str
    attempts: int
    reason: str
    parked_at: datetime | None
    waiting_behind: int


@dataclass(frozen=True)
class OutboxStatus:
    unsent: int
    parked: tuple[ParkedRecord, ...]
    oldest_unsent_at: datetime | None


async def outbox_status(db: Database) -> OutboxStatus:
    outbox = db[OUTBOX]
    unsent = await outbox.count_documents({"sent": False})
    parked_docs = await outbox.find({"parked": True}).sort("_id", ASCENDING).limit(1000).to_list()
    parked = []
    for doc in parked_docs:
        waiting = await outbox.count_documents(
            {"sent": False, "key": doc["key"], "_id": {"$gt": doc["_id"]}, "parked": {"$ne": True}}
        )
        parked.append(
            ParkedRecord(
                id=doc["_id"],
                topic=doc["topic"],
                key=doc["key"],
                type=doc["type"],
                attempts=int(doc.get("attempts", 0)),
                reason=str(doc.get("last_error", "")),
                parked_at=doc.get("parked_at"),
                waiting_behind=waiting,
            )
        )
    oldest = await outbox.find_one(
        {"sent": False}, sort=[("_id", ASCENDING)], projection={"created_at": 1, "queued_at": 1}
    )
    return OutboxStatus(
        unsent=unsent,
        parked=tuple(parked),
        oldest_unsent_at=(oldest.get("queued_at") or oldest["created_at"]) if oldest else None,
    )


async def unpark(db: Database, record_ids: Sequence[str] = ()) -> int:
    """Give parked records (all, or these) a fresh set of attempts; returns how many."""
    query: dict[str, Any] = {"parked": True}
    if record_ids:
        query["_id"] = {"$in": list(record_ids)}
    result = await db[OUTBOX].update_many(
        query, {"$unset": {"parked": "", "parked_at": ""}, "$set": {"attempts": 0}}
    )
    return result.modified_count


async def replay(
    db: Database,
    *,
    since: datetime,
    until: datetime | None,
    now: datetime,
    topics: Sequence[str] = (),
) -> int:
    """Queue the sent records of a time window (by when they were made) to be published again, in
    their original order; consumers dedupe by event id. Returns how many were queued.

    For a broker that lost its log (the embedded broker keeps it in memory) or a Kafka cluster
    restored from an older backup. Only what is still within the retention window can be replayed.
    """
    # By the time in the event ids (UUIDv7): a range on the (sent, _id) index.
    window: dict[str, Any] = {"$gte": id_floor(since)}
    if until is not None:
        window["$lt"] = id_floor(until)
    query: dict[str, Any] = {"sent": True, "_id": window}
    if topics:
        query["topic"] = {"$in": list(topics)}
    result = await db[OUTBOX].update_many(
        query,
        {"$set": {"sent": False, "queued_at": now, "replayed": True}, "$unset": {"sent_at": ""}},
    )
    return result.modified_count


async def broker_cluster_seen(db: Database, relay: str) -> str:
    doc = await db[OUTBOX_STATE].find_one({"_id": relay})
    return str(doc.get("cluster_id", "")) if doc else ""


async def remember_broker_cluster(db: Database, relay: str, cluster_id: str, now: datetime) -> None:
    await db[OUTBOX_STATE].update_one(
        {"_id": relay}, {"$set": {"cluster_id": cluster_id, "seen_at": now}}, upsert=True
    )
