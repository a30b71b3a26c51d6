"""The dispatcher's database (its own; nobody else reads it).

- `renderings`: the forms of each rendering as the renderer announces them (one event per form),
  until every form is there and the rendering is planned.
- `deliveries`: one document on one channel: its status, every attempt, the provider's reference.
  Ids are derived from what the delivery is (`delivery_id`), so planning twice plans once.
- `deviations`: what needs a person (failed with nothing left to try, stuck, returned, no channel).
- `invoices`: a projection of the ledger's invoice events (status, due date, paid on) for the
  "never after paid" checks and the channel statistics.
- `receipts`: provider receipts applied, by provider and event id (a replay changes nothing).
- `rules`: a tenant's delivery rules, when it has its own.
- `timers` (services/common/timers.py), `outbox`, `processed_events`: the shared machinery.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne

from services.common.bus import ensure_processed_indexes
from services.common.mongo import Client, Database, Doc, Session
from services.common.outbox import ensure_outbox_indexes

RENDERINGS = "renderings"
DELIVERIES = "deliveries"
DEVIATIONS = "deviations"
INVOICES = "invoices"
RECEIPTS = "receipts"
RULES = "rules"

_NAMESPACE = uuid.UUID("5b0c6d7e-8a44-4c55-9a3f-1d2e3f405162")
# Statuses after which nothing more happens to a delivery on its channel.
FINAL = frozenset({"failed", "cancelled"})
# Invoice statuses after which no fallback and no reminder goes out.
CLOSED = frozenset({"paid", "overpaid", "credited", "written_off"})


def delivery_id(rendering_id: str, channel: str, route: str = "", request_id: str = "") -> str:
    """The same document on the same channel is one delivery (a resend names its request)."""
    name = (
        f"{rendering_id}/{channel}" if route != "resend" else f"{rendering_id}/{channel}/resend/{request_id}"
    )
    return str(uuid.uuid5(_NAMESPACE, name))


class DispatcherStore:
    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.db: Database = client[database]

    async def ensure_indexes(self) -> None:
        await ensure_outbox_indexes(self.db)
        await ensure_processed_indexes(self.db)
        deliveries = self.db[DELIVERIES]
        # Few indexes on purpose: each is work on every write, and deliveries are written often.
        # An invoice's deliveries (ListDeliveries, opens, the channels a document went out on).
        await deliveries.create_index([("invoice_id", ASCENDING), ("sent_at", DESCENDING)], name="opens")
        await self.db[RENDERINGS].create_index([("invoice_id", ASCENDING)], name="invoice")
        await deliveries.create_index([("provider_ref", ASCENDING)], name="provider_ref")
        await deliveries.create_index(
            [("tenant_id", ASCENDING), ("created_at", ASCENDING)], name="tenant_time"
        )
        await self.db[DEVIATIONS].create_index([("tenant_id", ASCENDING), ("_id", DESCENDING)], name="tenant")
        await self.db[INVOICES].create_index([("tenant_id", ASCENDING), ("number", ASCENDING)], name="number")

    # --- renderings -------------------------------------------------------------------------

    async def renderings_by_id(self, ids: Sequence[str]) -> dict[str, Doc]:
        found = await self.db[RENDERINGS].find({"_id": {"$in": list(ids)}}).to_list()
        return {d["_id"]: d for d in found}

    async def save_renderings(self, s: Session, renderings: Sequence[Doc], planned: set[str]) -> None:
        """Each rendering's forms as collected, and `planned` for those planned now (one write)."""
        ops = []
        for r in renderings:
            fields = {k: v for k, v in r.items() if k not in ("_id", "forms", "planned")}
            changes: Doc = {f"forms.{form}": document_id for form, document_id in r["forms"].items()}
            if r["_id"] in planned:
                changes["planned"] = True
            insert = {**fields, **({} if r["_id"] in planned else {"planned": False})}
            ops.append(UpdateOne({"_id": r["_id"]}, {"$set": changes, "$setOnInsert": insert}, upsert=True))
        if ops:
            await self.db[RENDERINGS].bulk_write(ops, ordered=False, session=s)

    async def rendering(self, rendering_id: str) -> Doc | None:
        return await self.db[RENDERINGS].find_one({"_id": rendering_id})

    async def mark_planned(self, s: Session, rendering_id: str) -> bool:
        """True for the first to plan it (a replica that planned it meanwhile wins)."""
        result = await self.db[RENDERINGS].update_one(
            {"_id": rendering_id, "planned": False}, {"$set": {"planned": True}}, session=s
        )
        return result.modified_count == 1

    async def latest_rendering(self, tenant_id: str, invoice_id: str) -> Doc | None:
        """The newest complete rendering of an invoice's documents (resends send this)."""
        found = (
            await self.db[RENDERINGS]
            .find({"tenant_id": tenant_id, "invoice_id": invoice_id, "planned": True})
            .sort("_id", DESCENDING)
            .limit(1)
            .to_list()
        )
        return found[0] if found else None

    # --- deliveries -------------------------------------------------------------------------

    async def insert_delivery(self, s: Session, doc: Doc) -> bool:
        """False when it exists (checked first: a duplicate key would abort the transaction)."""
        if await self.db[DELIVERIES].find_one({"_id": doc["_id"]}, projection={"_id": 1}, session=s):
            return False
        await self.db[DELIVERIES].insert_one(doc, session=s)
        return True

    async def insert_deliveries(self, s: Session, docs: Sequence[Doc]) -> list[Doc]:
        """Insert those that do not exist yet (checked first: a duplicate key aborts a transaction);
        the ones inserted."""
        if not docs:
            return []
        found = (
            await self.db[DELIVERIES]
            .find({"_id": {"$in": [d["_id"] for d in docs]}}, projection={"_id": 1}, session=s)
            .to_list()
        )
        have = {d["_id"] for d in found}
        new = [d for d in docs if d["_id"] not in have]
        if new:
            await self.db[DELIVERIES].insert_many(new, session=s)
        return new

    async def still_queued(self, s: Session, ids: Sequence[str]) -> set[str]:
        """Which of these deliveries are still queued (read in the caller's transaction)."""
        if not ids:
            return set()
        found = (
            await self.db[DELIVERIES]
            .find({"_id": {"$in": list(ids)}, "status": "queued"}, projection={"_id": 1}, session=s)
            .to_list()
        )
        return {d["_id"] for d in found}

    async def update_deliveries(
        self, s: Session, updates: Sequence[tuple[str, Doc, Doc, Doc | None]]
    ) -> None:
        """Many `update_delivery` in one write: (id, when, $set, attempt to log)."""
        ops = []
        for delivery_id, when, changes, attempt in updates:
            update: Doc = {"$set": changes}
            if attempt is not None:
                update["$push"] = {"attempts": attempt}
            ops.append(UpdateOne({"_id": delivery_id, **when}, update))
        if ops:
            await self.db[DELIVERIES].bulk_write(ops, ordered=False, session=s)

    async def delivery(self, delivery_id: str, s: Session | None = None) -> Doc | None:
        return await self.db[DELIVERIES].find_one({"_id": delivery_id}, session=s)

    async def deliveries_by_id(self, ids: Sequence[str]) -> dict[str, Doc]:
        found = await self.db[DELIVERIES].find({"_id": {"$in": list(ids)}}).to_list()
        return {d["_id"]: d for d in found}

    async def by_provider_ref(self, provider_ref: str, channel: str) -> Doc | None:
        return await self.db[DELIVERIES].find_one({"provider_ref": provider_ref, "channel": channel})

    async def of_invoice(self, tenant_id: str, invoice_id: str) -> list[Doc]:
        # By invoice alone (its index), the tenant checked after: with the tenant in the filter a
        # server may choose the tenant's time index and read all the tenant's deliveries.
        found = await self.db[DELIVERIES].find({"invoice_id": invoice_id}).to_list()
        return sorted(
            (d for d in found if d["tenant_id"] == tenant_id), key=lambda d: (d["created_at"], d["_id"])
        )

    async def channels_used(self, invoice_id: str, rendering_id: str, s: Session | None = None) -> set[str]:
        found = (
            await self.db[DELIVERIES]
            .find(
                {"invoice_id": invoice_id, "rendering_id": rendering_id, "route": {"$ne": "resend"}},
                projection={"channel": 1},
                session=s,
            )
            .to_list()
        )
        return {d["channel"] for d in found}

    async def update_delivery(
        self,
        s: Session | None,
        delivery_id: str,
        changes: Doc,
        *,
        attempt: Doc | None = None,
        when: Doc | None = None,
    ) -> bool:
        """Apply `changes` ($set) and log `attempt`, if the delivery still matches `when`."""
        update: Doc = {"$set": changes}
        if attempt is not None:
            update["$push"] = {"attempts": attempt}
        result = await self.db[DELIVERIES].update_one({"_id": delivery_id, **(when or {})}, update, session=s)
        return result.modified_count == 1

    async def in_window(self, tenant_id: str, start: datetime, end: datetime) -> list[Doc]:
        return (
            await self.db[DELIVERIES]
            .find(
                {"tenant_id": tenant_id, "created_at": {"$gte": start, "$lt": end}},
                projection={"attempts": 0, "passed": 0, "documents": 0},
            )
            .to_list()
        )

    # --- deviations -------------------------------------------------------------------------

    async def add_deviation(self, s: Session, doc: Doc) -> None:
        await self.db[DEVIATIONS].insert_one(doc, session=s)

    async def deviations(self, tenant_id: str, limit: int, before: str = "") -> list[Doc]:
        query: Doc = {"tenant_id": tenant_id}
        if before:
            query["_id"] = {"$lt": before}
        return await self.db[DEVIATIONS].find(query).sort("_id", DESCENDING).limit(limit).to_list()

    # --- the invoice projection -------------------------------------------------------------

    async def project_invoices(
        self, s: Session, items: Sequence[tuple[str, Any, datetime]]
    ) -> list[tuple[str, datetime, str]]:
        """Keep the newest state of each invoice (tenant, InvoiceSummary, when): events may come
        again or late, so a version older than the one kept changes nothing. One read, one write."""
        newest: dict[str, tuple[str, Any, datetime]] = {}
        for tenant_id, summary, at in items:
            kept = newest.get(summary.invoice_id)
            if kept is None or kept[1].version < summary.version:
                newest[summary.invoice_id] = (tenant_id, summary, at)
        if not newest:
            return []
        current = {
            d["_id"]: d
            for d in await self.db[INVOICES]
            .find({"_id": {"$in": list(newest)}}, projection={"version": 1, "paid_at": 1}, session=s)
            .to_list()
        }
        ops = []
        # Invoices paid now (first seen paid): (id, when, due date), for the channel statistics.
        paid: list[tuple[str, datetime, str]] = []
        for invoice_id, (tenant_id, summary, at) in newest.items():
            before = current.get(invoice_id, {})
            if before.get("version", 0) >= summary.version:
                continue
            changes: Doc = {
                "tenant_id": tenant_id,
                "number": summary.invoice_number,
                "kind": summary.kind,
                "status": summary.status,
                "due_date": summary.due_date,
                "balance_minor": summary.balance_minor,
                "version": summary.version,
            }
            if summary.status in ("paid", "overpaid") and not before.get("paid_at"):
                changes["paid_at"] = at
                paid.append((invoice_id, at, summary.due_date))
            ops.append(UpdateOne({"_id": invoice_id}, {"$set": changes}, upsert=True))
        if ops:
            await self.db[INVOICES].bulk_write(ops, ordered=False, session=s)
        return paid

    async def invoice_state(self, invoice_id: str) -> Doc | None:
        return await self.db[INVOICES].find_one({"_id": invoice_id})

    async def invoice_states(self, ids: Sequence[str]) -> dict[str, Doc]:
        found = await self.db[INVOICES].find({"_id": {"$in": list(ids)}}).to_list()
        return {d["_id"]: d for d in found}

    # --- receipts and rules -----------------------------------------------------------------

    async def take_receipt(self, s: Session, provider: str, event_id: str, at: datetime) -> bool:
        """False when this receipt was applied before (a replay). Looked up first: a duplicate key
        inside a transaction would abort it (two copies racing: one commits, the other is retried
        by the provider and then seen here)."""
        key = f"{provider}:{event_id}"
        if await self.db[RECEIPTS].find_one({"_id": key}, projection={"_id": 1}, session=s) is not None:
            return False
        await self.db[RECEIPTS].insert_one({"_id": key, "at": at}, session=s)
        return True

    async def rules(self, tenant_id: str) -> Doc | None:
        return await self.db[RULES].find_one({"_id": tenant_id})

    async def set_rules(self, tenant_id: str, rules: Doc, at: datetime) -> None:
        await self.db[RULES].replace_one({"_id": tenant_id}, {"rules": rules, "updated_at": at}, upsert=True)
