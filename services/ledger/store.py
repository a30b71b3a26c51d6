"""The ledger's MongoDB: collections, indexes, and the queries the use cases need."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Sequence, Set
from datetime import datetime, timedelta
from typing import Any, Final

from pymongo import ASCENDING, DESCENDING, ReturnDocument

from services.common.bus import PROCESSED, ensure_processed_indexes
from services.common.errors import NotFound
from services.common.mongo import Client, Database, Doc, Session
from services.common.outbox import OUTBOX, ensure_outbox_indexes
from services.common.tenancy import Tenant, hash_api_key

TENANTS: Final = "tenants"
CUSTOMERS: Final = "customers"
INVOICES: Final = "invoices"
PAYMENTS: Final = "payments"
JOURNAL: Final = "journal"
COUNTERS: Final = "counters"

_CUSTOMER_NS = uuid.UUID("6f1c8c2e-5b7a-4a53-9c1e-0f6b1d2a9e01")


def customer_id_for(tenant_id: str, number: str) -> str:
    """Customer ids are derived from (tenant, customer number), so every replica agrees on them."""
    return str(uuid.uuid5(_CUSTOMER_NS, f"{tenant_id}:{number}"))


def encode_page_token(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode()


def decode_page_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("page_token is not one this server issued") from exc


class LedgerStore:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db: Database = client[database]
        self.tenants = self.db[TENANTS]
        self.customers = self.db[CUSTOMERS]
        self.invoices = self.db[INVOICES]
        self.payments = self.db[PAYMENTS]
        self.journal = self.db[JOURNAL]
        self.counters = self.db[COUNTERS]
        self.outbox = self.db[OUTBOX]
        self.processed = self.db[PROCESSED]

    async def ensure_indexes(self, *, outbox_retention: timedelta, processed_retention: timedelta) -> None:
        await self.tenants.create_index("api_keys.hash", unique=True, sparse=True)
        await self.customers.create_index([("tenant_id", ASCENDING), ("number", ASCENDING)], unique=True)
        inv = self.invoices
        await inv.create_index(
            [("tenant_id", ASCENDING), ("kind", ASCENDING), ("external_id", ASCENDING)], unique=True
        )
        await inv.create_index([("tenant_id", ASCENDING), ("invoice_number", ASCENDING)], unique=True)
        await inv.create_index(
            [("tenant_id", ASCENDING), ("kid", ASCENDING)],
            unique=True,
            partialFilterExpression={"kid": {"$type": "string", "$gt": ""}},
        )
        await inv.create_index([("tenant_id", ASCENDING), ("customer_id", ASCENDING), ("_id", ASCENDING)])
        await inv.create_index([("tenant_id", ASCENDING), ("status", ASCENDING), ("due_date", ASCENDING)])
        await self.payments.create_index(
            [("tenant_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True
        )
        await self.journal.create_index([("tenant_id", ASCENDING), ("invoice_id", ASCENDING)])
        await ensure_outbox_indexes(self.db, retention=outbox_retention)
        await ensure_processed_indexes(self.db, retention=processed_retention)

    # --- tenants -------------------------------------------------------------------------------

    async def tenant_by_key(self, api_key: str) -> Tenant | None:
        key_hash = hash_api_key(api_key)
        doc = await self.tenants.find_one({"api_keys.hash": key_hash})
        if doc is None:
            return None
        key_name = next((k["name"] for k in doc["api_keys"] if k["hash"] == key_hash), "")
        return tenant_from_doc(doc, key_name)

    async def ensure_tenant(self, tenant: Tenant, api_key: str, key_name: str, now: datetime) -> None:
        """Create the tenant if missing and make sure the key is one of its keys (idempotent)."""
        settings = tenant.model_dump(exclude={"id", "name", "key_name"})
        await self.tenants.update_one(
            {"_id": tenant.id},
            {"$setOnInsert": {"name": tenant.name, "settings": settings, "created_at": now, "api_keys": []}},
            upsert=True,
        )
        await self.tenants.update_one(
            {"_id": tenant.id, "api_keys.hash": {"$ne": hash_api_key(api_key)}},
            {"$push": {"api_keys": {"name": key_name, "hash": hash_api_key(api_key), "created_at": now}}},
        )

    async def create_tenant(self, tenant: Tenant, now: datetime) -> None:
        settings = tenant.model_dump(exclude={"id", "name", "key_name"})
        await self.tenants.insert_one(
            {"_id": tenant.id, "name": tenant.name, "settings": settings, "created_at": now, "api_keys": []}
        )

    async def add_api_key(self, tenant_id: str, api_key: str, key_name: str, now: datetime) -> bool:
        """Add a key under a name not yet used by the tenant; False if the tenant or name is wrong."""
        result = await self.tenants.update_one(
            {"_id": tenant_id, "api_keys.name": {"$ne": key_name}},
            {"$push": {"api_keys": {"name": key_name, "hash": hash_api_key(api_key), "created_at": now}}},
        )
        return result.modified_count == 1

    async def revoke_api_key(self, tenant_id: str, key_name: str) -> bool:
        result = await self.tenants.update_one(
            {"_id": tenant_id}, {"$pull": {"api_keys": {"name": key_name}}}
        )
        return result.modified_count == 1

    # --- reads ---------------------------------------------------------------------------------

    async def customer(
        self, tenant_id: str, *, customer_id: str = "", number: str = "", session: Session | None = None
    ) -> Doc | None:
        query: Doc = {"tenant_id": tenant_id}
        query.update({"_id": customer_id} if customer_id else {"number": number})
        return await self.customers.find_one(query, session=session)

    async def invoice(self, tenant_id: str, **ref: str) -> Doc | None:
        """Find by invoice_id, invoice_number, external_id (+kind) or kid."""
        query: Doc = {"tenant_id": tenant_id}
        for key, value in ref.items():
            query["_id" if key == "invoice_id" else key] = value
        return await self.invoices.find_one(query)

    async def list_invoices(
        self,
        tenant_id: str,
        *,
        statuses: Sequence[str] = (),
        customer_id: str = "",
        due_after: str = "",
        due_before: str = "",
        kind: str = "",
        after_id: str = "",
        limit: int = 50,
    ) -> list[Doc]:
        query: Doc = {"tenant_id": tenant_id}
        if statuses:
            query["status"] = {"$in": list(statuses)}
        if customer_id:
            query["customer_id"] = customer_id
        due: Doc = {}
        if due_after:
            due["$gte"] = due_after
        if due_before:
            due["$lte"] = due_before
        if due:
            query["due_date"] = due
        if kind:
            query["kind"] = kind
        if after_id:
            query["_id"] = {"$gt": after_id}
        cursor = self.invoices.find(query, projection={"history": 0}).sort("_id", ASCENDING).limit(limit)
        return await cursor.to_list()

    async def open_invoices_of(self, tenant_id: str, customer_id: str) -> list[Doc]:
        cursor = self.invoices.find(
            {
                "tenant_id": tenant_id,
                "customer_id": customer_id,
                "kind": "invoice",
                "balance_minor": {"$gt": 0},
            },
            projection={"history": 0},
        ).sort("due_date", ASCENDING)
        return await cursor.to_list()

    async def due_before(self, today: str, statuses: Sequence[str], limit: int) -> list[Doc]:
        cursor = (
            self.invoices.find(
                {"status": {"$in": list(statuses)}, "kind": "invoice", "due_date": {"$lt": today}},
                projection={"_id": 1, "tenant_id": 1, "origin_traceparent": 1},
            )
            .sort("due_date", DESCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    # --- writes (inside the caller's transaction) ------------------------------------------------

    async def take_numbers(self, session: Session, tenant_id: str, series: str, count: int) -> int:
        """Reserve `count` consecutive numbers of a gapless series; returns the first.

        Inside the transaction: if it aborts, the numbers were never taken.
        """
        doc = await self.counters.find_one_and_update(
            {"_id": f"{tenant_id}:{series}"},
            {"$inc": {"value": count}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        assert doc is not None  # an upsert always returns the document
        return int(doc["value"]) - count + 1

    async def take_free(
        self,
        session: Session,
        tenant_id: str,
        series: str,
        count: int,
        *,
        field: str,
        render: Callable[[int], str],
        reserved: Set[str] = frozenset(),
    ) -> list[str]:
        """`count` values of a gapless series that no invoice or credit note uses yet.

        ERPs that number their own invoices may supply a number (or KID) the counter reaches later:
        the counter then skips it, so one supplied value never blocks the series, and the series as a
        whole stays gapless (the skipped value is in use). `reserved` are values supplied in the same
        batch, not stored yet.
        """
        values: list[str] = []
        while len(values) < count:
            need = count - len(values)
            first = await self.take_numbers(session, tenant_id, series, need)
            candidates = [render(first + i) for i in range(need)]
            used = await self.invoices.find(
                {"tenant_id": tenant_id, field: {"$in": candidates}}, projection={field: 1}, session=session
            ).to_list()
            taken = {d[field] for d in used} | set(reserved)
            values.extend(c for c in candidates if c not in taken)
        return values

    async def replace_invoice(self, session: Session, doc: Doc, expected_version: int) -> None:
        result = await self.invoices.replace_one(
            {"_id": doc["_id"], "version": expected_version}, doc, session=session
        )
        if result.matched_count != 1:
            raise ConcurrentChange(doc["_id"])

    async def add_journal(self, session: Session, entries: Sequence[Doc]) -> None:
        if entries:
            await self.journal.insert_many(list(entries), session=session)

    async def change_credit_balance(
        self, session: Session, tenant_id: str, customer_id: str, currency: str, delta: int, now: datetime
    ) -> Doc:
        """The customer (of this tenant) after its credit balance changed by `delta`."""
        doc = await self.customers.find_one_and_update(
            {"_id": customer_id, "tenant_id": tenant_id},
            {"$inc": {f"credit_balances.{currency}": delta, "version": 1}, "$set": {"updated_at": now}},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if doc is None:
            raise NotFound(f"no customer {customer_id}")
        return doc


def tenant_from_doc(doc: Doc, key_name: str = "") -> Tenant:
    return Tenant(id=doc["_id"], name=doc["name"], key_name=key_name, **doc["settings"])


class ConcurrentChange(Exception):
    """Someone changed the invoice between our read and our write (optimistic concurrency)."""

    def __init__(self, invoice_id: str) -> None:
        super().__init__(f"invoice {invoice_id} changed concurrently")


def project(doc: Doc, fields: Sequence[str]) -> dict[str, Any]:
    return {k: doc[k] for k in fields if k in doc}
