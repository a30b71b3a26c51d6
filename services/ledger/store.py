"""The ledger's MongoDB: collections, indexes, and the queries the use cases need."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence, Set
from datetime import datetime
from typing import Any, Final

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import OperationFailure

from services.common.bus import PROCESSED, ensure_processed_indexes
from services.common.errors import NotFound
from services.common.mongo import Client, Database, Doc, Session
from services.common.outbox import OUTBOX, ensure_outbox_indexes
from services.common.tenancy import Tenant, hash_api_key

TENANTS: Final = "tenants"
# Every version of every tenant's creditor profile, never changed once written (services/ledger/profiles.py).
TENANT_PROFILES: Final = "tenant_profiles"
CUSTOMERS: Final = "customers"
INVOICES: Final = "invoices"
PAYMENTS: Final = "payments"
JOURNAL: Final = "journal"
COUNTERS: Final = "counters"

_CUSTOMER_NS = uuid.UUID("6f1c8c2e-5b7a-4a53-9c1e-0f6b1d2a9e01")


def customer_id_for(tenant_id: str, number: str) -> str:
    """Customer ids are derived from (tenant, customer number), so every replica agrees on them."""
    return str(uuid.uuid5(_CUSTOMER_NS, f"{tenant_id}:{number}"))


class LedgerStore:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db: Database = client[database]
        self.tenants = self.db[TENANTS]
        self.profiles = self.db[TENANT_PROFILES]
        self.customers = self.db[CUSTOMERS]
        self.invoices = self.db[INVOICES]
        self.payments = self.db[PAYMENTS]
        self.journal = self.db[JOURNAL]
        self.counters = self.db[COUNTERS]
        self.outbox = self.db[OUTBOX]
        self.processed = self.db[PROCESSED]

    async def ensure_indexes(self) -> None:
        await self.tenants.create_index("api_keys.hash", unique=True, sparse=True)
        await self.profiles.create_index([("tenant_id", ASCENDING), ("version", ASCENDING)], unique=True)
        await self.customers.create_index([("tenant_id", ASCENDING), ("number", ASCENDING)], unique=True)
        # The customers to clean (ListFlaggedCustomers), in number order.
        await self.customers.create_index(
            [("tenant_id", ASCENDING), ("flagged", ASCENDING), ("number", ASCENDING)]
        )
        inv = self.invoices
        await inv.create_index(
            [("tenant_id", ASCENDING), ("kind", ASCENDING), ("external_id", ASCENDING)], unique=True
        )
        await inv.create_index([("tenant_id", ASCENDING), ("invoice_number", ASCENDING)], unique=True)
        # Only comparison operators in the partial filter: `$type` would keep the embedded server's
        # planner from using the index for {tenant_id, kid} (a string only compares with strings, so
        # `$gt: ""` alone means a non-empty string, as before).
        await self._replace_index(
            inv,
            [("tenant_id", ASCENDING), ("kid", ASCENDING)],
            name="tenant_id_1_kid_1",
            unique=True,
            partialFilterExpression={"kid": {"$gt": ""}},
        )
        # For looking KIDs up (`$in` included): a partial index serves only queries that repeat its
        # filter, and the embedded server's planner takes none for `$in`.
        await inv.create_index([("tenant_id", ASCENDING), ("kid", ASCENDING)], name="kid_lookup")
        # Listing in windows of `seq` (services/ledger/listing.py), each with one equality.
        for field in (None, "customer_id", "status", "kind"):
            keys = [("tenant_id", ASCENDING), *([(field, ASCENDING)] if field else []), ("seq", ASCENDING)]
            await inv.create_index(keys)
        # The overdue sweep: a tenant's invoices in one status due before a day.
        await inv.create_index(
            [("tenant_id", ASCENDING), ("status", ASCENDING), ("due_date", ASCENDING), ("_id", ASCENDING)]
        )
        await self.payments.create_index(
            [("tenant_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True
        )
        await self.journal.create_index([("tenant_id", ASCENDING), ("invoice_id", ASCENDING)])
        await ensure_outbox_indexes(self.db)
        await ensure_processed_indexes(self.db)
        await self._number_unsequenced()

    @staticmethod
    async def _replace_index(
        collection: Any, keys: list[tuple[str, int]], *, name: str, **options: Any
    ) -> None:
        """Create an index, replacing one of the same name made with other options (an older version)."""
        try:
            await collection.create_index(keys, name=name, **options)
        except OperationFailure:
            await collection.drop_index(name)
            await collection.create_index(keys, name=name, **options)

    async def _number_unsequenced(self) -> None:
        """Give invoices stored before `seq` existed their place in their tenant's sequence (once)."""
        if await self.counters.find_one({"_id": "migration:seq"}):
            return
        async for doc in self.invoices.find({"seq": {"$exists": False}}, projection={"tenant_id": 1}).sort(
            "_id", ASCENDING
        ):
            seq = await self.take_numbers(None, doc["tenant_id"], "seq", 1)
            await self.invoices.update_one(
                {"_id": doc["_id"], "seq": {"$exists": False}}, {"$set": {"seq": seq}}
            )
        await self.counters.update_one({"_id": "migration:seq"}, {"$set": {"done": True}}, upsert=True)

    async def last_seq(self, tenant_id: str) -> int:
        """The last `seq` given in the tenant's sequence (0 when none)."""
        doc = await self.counters.find_one({"_id": f"{tenant_id}:seq"})
        return int(doc["value"]) if doc else 0

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

    async def create_tenant(self, tenant: Tenant, now: datetime, *, session: Session | None = None) -> None:
        settings = tenant.model_dump(exclude={"id", "name", "key_name"})
        await self.tenants.insert_one(
            {"_id": tenant.id, "name": tenant.name, "settings": settings, "created_at": now, "api_keys": []},
            session=session,
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
        if customer_id:
            # A point lookup on `_id` alone (with the tenant beside it a server may pick a
            # tenant-prefixed index and read every customer of the tenant), then the tenant checked.
            doc = await self.customers.find_one({"_id": customer_id}, session=session)
            return doc if doc is not None and doc["tenant_id"] == tenant_id else None
        return await self.customers.find_one({"tenant_id": tenant_id, "number": number}, session=session)

    async def flagged_customers(self, tenant_id: str, *, after_number: str, limit: int) -> list[Doc]:
        """Customers with a flagged contact, by number, after `after_number`."""
        query: Doc = {"tenant_id": tenant_id, "flagged": True, "number": {"$gt": after_number}}
        cursor = self.customers.find(query).sort([("number", ASCENDING)]).limit(limit)
        return [doc async for doc in cursor]

    async def invoice(self, tenant_id: str, **ref: str) -> Doc | None:
        """Find by invoice_id, invoice_number, external_id (+kind) or kid."""
        if set(ref) == {"invoice_id"}:
            return await self.invoice_by_id(tenant_id, ref["invoice_id"])
        query = {("_id" if key == "invoice_id" else key): value for key, value in ref.items()}
        return await self.invoices.find_one({"tenant_id": tenant_id, **query})

    async def invoice_by_id(
        self, tenant_id: str, invoice_id: str, *, session: Session | None = None
    ) -> Doc | None:
        """A point lookup on `_id` alone (an index lookup on every server), then the tenant checked:
        another tenant's invoice is not found."""
        doc = await self.invoices.find_one({"_id": invoice_id}, session=session)
        return doc if doc is not None and doc["tenant_id"] == tenant_id else None

    async def customers_by_ids(self, tenant_id: str, customer_ids: Sequence[str]) -> list[Doc]:
        docs = await self.customers.find({"_id": {"$in": list(customer_ids)}}).to_list()
        return [d for d in docs if d["tenant_id"] == tenant_id]

    async def search_customers(self, tenant_id: str, text: str, *, limit: int) -> list[Doc]:
        """The tenant's customers numbered `text`, with it as org number, or with it in their name."""
        compact = re.sub(r"[\s.-]", "", text)
        query = {
            "tenant_id": tenant_id,
            "$or": [
                {"number": text},
                {"org_number": compact},
                {"name": {"$regex": re.escape(text), "$options": "i"}},
            ],
        }
        return await self.customers.find(query).sort("number", ASCENDING).limit(limit).to_list()

    async def invoices_by_ids(self, tenant_id: str, invoice_ids: Sequence[str]) -> list[Doc]:
        docs = await self.invoices.find(
            {"_id": {"$in": list(invoice_ids)}}, projection={"history": 0}
        ).to_list()
        return [d for d in docs if d["tenant_id"] == tenant_id]

    async def open_items_of(self, tenant_id: str, customer_id: str) -> list[Doc]:
        """Due date, balance and currency of each of the customer's open invoices (for totals)."""
        cursor = self.invoices.find(
            {
                "tenant_id": tenant_id,
                "customer_id": customer_id,
                "kind": "invoice",
                "balance_minor": {"$gt": 0},
            },
            projection={"_id": 1, "due_date": 1, "balance_minor": 1, "currency": 1},
        ).sort("_id", ASCENDING)
        return await cursor.to_list()

    async def due_before(
        self, tenant_id: str, status: str, today: str, *, after: tuple[str, str] | None, limit: int
    ) -> list[Doc]:
        """A tenant's invoices in `status` due before `today`, oldest due first, after the (due date,
        id) of the previous page (index: tenant_id, status, due_date, _id)."""
        query: Doc = {"tenant_id": tenant_id, "status": status, "due_date": {"$lt": today}}
        if after is not None:
            due, last_id = after
            query["$or"] = [{"due_date": {"$gt": due}}, {"due_date": due, "_id": {"$gt": last_id}}]
        cursor = (
            self.invoices.find(query, projection={"_id": 1, "due_date": 1, "origin_traceparent": 1})
            .sort([("due_date", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return await cursor.to_list()

    async def all_tenants(self) -> AsyncIterator[Tenant]:
        async for doc in self.tenants.find({}, projection={"api_keys": 0}).sort("_id", ASCENDING):
            yield tenant_from_doc(doc)

    # --- writes (inside the caller's transaction) ------------------------------------------------

    async def take_numbers(self, session: Session | None, tenant_id: str, series: str, count: int) -> int:
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
        # The tenant is checked first and the update is on `_id` alone: with the tenant beside `_id`
        # a server may choose a tenant-prefixed index and read every customer of the tenant.
        if await self.customer(tenant_id, customer_id=customer_id, session=session) is None:
            raise NotFound(f"no customer {customer_id}")
        doc = await self.customers.find_one_and_update(
            {"_id": customer_id},
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
