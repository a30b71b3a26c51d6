"""Where a sandbox stack keeps its clock's offset: one document on the stack's MongoDB server, read by
every service's SandboxClock (services/common/clock.py) and moved by `fordring sandbox clock advance`.

`{_id: "clock", offset_seconds, changed_at}` in the `clock` collection of its own database
(FORDRING_SANDBOX_CLOCK_DATABASE, `fordring_sandbox`): no service's database, because all of them
read it. The offset only grows (`$inc` by a positive amount), up to MAX_OFFSET.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.common.clock import SandboxClock
from services.common.mongo import Database

DATABASE: Final = "fordring_sandbox"
COLLECTION: Final = "clock"
CLOCK_ID: Final = "clock"
# A sandbox may live a hundred years ahead; datetime ends at 9999, and no demo needs more.
MAX_OFFSET: Final = timedelta(days=36_500)


class OffsetLimitError(ValueError):
    """The offset would pass MAX_OFFSET: the clock stays where it is."""


def sandbox_clock(db: Database) -> SandboxClock:
    """A clock that follows the offset kept in `db` (the stack's sandbox database)."""
    return SandboxClock(lambda: read_offset(db))


async def read_offset(db: Database) -> float:
    """The stack's offset in seconds (0 until the clock was first advanced)."""
    doc = await db[COLLECTION].find_one({"_id": CLOCK_ID})
    return float(doc.get("offset_seconds", 0.0)) if doc else 0.0


async def advance(db: Database, by: timedelta) -> float:
    """Move the stack's clock forward by `by` in one update; the new offset in seconds."""
    seconds = by.total_seconds()
    if seconds <= 0:
        raise ValueError("the sandbox clock only moves forward")
    limit = MAX_OFFSET.total_seconds() - seconds
    try:
        # The filter holds only when the offset stays within the limit. When the document exists and
        # it does not, the upsert tries to insert a second "clock" and the unique _id refuses it.
        doc = await db[COLLECTION].find_one_and_update(
            {"_id": CLOCK_ID, "offset_seconds": {"$lte": limit}},
            {"$inc": {"offset_seconds": seconds}, "$set": {"changed_at": datetime.now(UTC)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:
        raise OffsetLimitError(
            f"the sandbox clock may run at most {MAX_OFFSET.days} days ahead of the real time"
        ) from None
    if doc is None:  # an upsert that returns the document after it always has one
        raise RuntimeError("the sandbox clock's document is missing after its update")
    return float(doc["offset_seconds"])
