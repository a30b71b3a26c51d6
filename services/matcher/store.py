"""The matcher's database (its own; nobody else reads it).

- `imports`: one bank file: its identity (sha256, the file's own id), its state and its summary.
  Unique per tenant and sha256: the same file imported twice is one import.
- `files`: the file's bytes, in chunks, kept with the import (evidence, and what a replica resumes
  an interrupted import from).
- `payments`: one bank transaction each, with every identifier the bank gave it and the decision.
  The id is derived from the tenant and the transaction's `bank_key`, so the same transaction in a
  second file is the same document and pays nothing twice.
- `items`: the projection of the ledger's invoices (KID, number, customer, balance, status, version)
  and `pending`: what this matcher proposed to pay on each and the ledger has not applied yet.
- `customers`: the payer accounts and names of each customer, read from the ledger.
- `outbox`, `processed_events`, `leases`: the shared machinery.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from pymongo import ASCENDING, DESCENDING

from services.common.bus import ensure_processed_indexes
from services.common.mongo import Client, Database, Doc
from services.common.outbox import ensure_outbox_indexes

IMPORTS: Final = "imports"
FILES: Final = "files"
PAYMENTS: Final = "payments"
ITEMS: Final = "items"
CUSTOMERS: Final = "customers"

# Payments an operator must still decide.
OPEN_REVIEW: Final = ("review", "rejected")
_NAMESPACE: Final = uuid.UUID("0f7c3a52-6c1e-4b0d-8d0e-3c7a9b1e2f44")
FILE_CHUNK: Final = 4 * 1024 * 1024


def payment_id(tenant_id: str, bank_key: str) -> str:
    """One bank transaction is one payment, whichever file it comes in."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant_id}/{bank_key}"))


def sort_key(created_at: datetime, seq: int) -> str:
    """Newest import first, then file order: one ascending string (ListPayments pages on it)."""
    return f"{import_prefix(created_at)}{seq:07d}"


def review_key(sort_key: str) -> str:
    """A payment's place in the review queue: oldest import first, then file order."""
    created_ms = 10**13 - int(sort_key[:13])
    return f"{created_ms:013d}-{sort_key[14:]}"


def import_prefix(created_at: datetime) -> str:
    """What every sort key of an import starts with."""
    inverted = 10**13 - int(created_at.timestamp() * 1000)
    return f"{inverted:013d}-"


class MatcherStore:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db: Database = client[database]
        self.imports = self.db[IMPORTS]
        self.files = self.db[FILES]
        self.payments = self.db[PAYMENTS]
        self.items = self.db[ITEMS]
        self.customers = self.db[CUSTOMERS]

    async def ensure_indexes(self) -> None:
        await ensure_outbox_indexes(self.db)
        await ensure_processed_indexes(self.db)
        await self.imports.create_index(
            [("tenant_id", ASCENDING), ("sha256", ASCENDING)], name="file", unique=True
        )
        await self.imports.create_index([("tenant_id", ASCENDING), ("created_at", DESCENDING)], name="newest")
        await self.imports.create_index([("state", ASCENDING)], name="state")
        await self.files.create_index([("import_id", ASCENDING), ("n", ASCENDING)], name="import")
        # Few index entries per payment on purpose: a 50,000-payment file writes each of them.
        # ListPayments: newest import first, file order (an import's payments are one range of it).
        await self.payments.create_index([("tenant_id", ASCENDING), ("sort_key", ASCENDING)], name="list")
        # The review queue, oldest import first and in file order: only the payments in it are in
        # this index (`in_review` is their place in the queue, absent on every other payment).
        if "review" in await self.payments.index_information():  # its first form, before the queue order
            await self.payments.drop_index("review")
        await self.payments.create_index(
            [("tenant_id", ASCENDING), ("in_review", ASCENDING)],
            name="review_queue",
            partialFilterExpression={"in_review": {"$exists": True}},
        )
        # A returned payment names the original's bank identifiers ("end_to_end_id:…"); only the
        # formats that have such identifiers (camt) fill the field.
        await self.payments.create_index("bank_refs", name="bank_refs", sparse=True)
        await self.items.create_index([("tenant_id", ASCENDING), ("changed_at", ASCENDING)], name="changed")
        await self.customers.create_index(
            [("tenant_id", ASCENDING), ("changed_at", ASCENDING)], name="changed"
        )
        await self.customers.create_index([("tenant_id", ASCENDING), ("number", ASCENDING)], name="number")

    async def payment(self, tenant_id: str, pid: str) -> Doc | None:
        found = await self.payments.find_one({"_id": pid})
        return found if found is not None and found["tenant_id"] == tenant_id else None

    async def read_file(self, import_id: str) -> bytes:
        chunks = await self.files.find({"import_id": import_id}).sort("n", ASCENDING).to_list()
        return b"".join(bytes(c["data"]) for c in chunks)
