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

from pymongo import ASCENDING, DESCENDING, ReturnDocument

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
        await deliveries.create_index(
            [("tenant_id", ASCENDING), ("invoice_id", ASCENDING), ("created_at", ASCENDING)], name="invoice"
        )
        await deliveries.create_index([("rendering_id", ASCENDING)], name="rendering")
        await deliveries.create_index([("invoice_id", ASCENDING), ("sent_at", DESCENDING)], name="opens")
        await self.db[RENDERINGS].create_index([("invoice_id", ASCENDING)], name="invoice")
        await deliveries.create_index([("provider_ref", ASCENDING)], name="provider_ref")
        await deliveries.create_index(
            [("tenant_id", ASCENDING), ("created_at", ASCENDING)], name="tenant_time"
        )
        await self.db[DEVIATIONS].create_index([("tenant_id", ASCENDING), ("_id", DESCENDING)], name="tenant")
        await self.db[INVOICES].create_index([("tenant_id", ASCENDING), ("number", ASCENDING)], name="number")

    # --- renderings -------------------------------------------------------------------------

    async def add_form(self, s: Session, tenant_id: str, data: Any) -> Doc:
        """Record one announced form of a rendering; the rendering as it is now."""
        doc = await self.db[RENDERINGS].find_one_and_update(
            {"_id": data.rendering_id},
            {
                "$set": {f"forms.{data.form}": data.document_id},
                "$setOnInsert": {
                    "tenant_id": tenant_id,
                    "invoice_id": data.invoice_id,
                    "invoice_number": data.invoice_number,
                    "customer_id": data.customer_id,
                    "kind": data.kind,
                    "language": data.language,
                    "forms_available": list(data.forms_available),
                    "invoice_version": data.invoice_version,
                    "planned": False,
                },
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=s,
        )
        assert doc is not None
        return doc

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

    async def delivery(self, delivery_id: str, s: Session | None = None) -> Doc | None:
        return await self.db[DELIVERIES].find_one({"_id": delivery_id}, session=s)

    async def deliveries_by_id(self, ids: Sequence[str]) -> dict[str, Doc]:
        found = await self.db[DELIVERIES].find({"_id": {"$in": list(ids)}}).to_list()
        return {d["_id"]: d for d in found}

    async def by_provider_ref(self, provider_ref: str, channel: str) -> Doc | None:
        return await self.db[DELIVERIES].find_one({"provider_ref": provider_ref, "channel": channel})

    async def of_invoice(self, tenant_id: str, invoice_id: str) -> list[Doc]:
        return (
            await self.db[DELIVERIES]
            .find({"tenant_id": tenant_id, "invoice_id": invoice_id})
            .sort("created_at", ASCENDING)
            .to_list()
        )

    async def channels_used(self, rendering_id: str, s: Session | None = None) -> set[str]:
        found = (
            await self.db[DELIVERIES]
            .find(
                {"rendering_id": rendering_id, "route": {"$ne": "resend"}},
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

    async def project_invoice(self, s: Session, tenant_id: str, summary: Any, at: datetime) -> None:
        """Keep the newest state of an invoice (events may come again or late: by version)."""
        invoices = self.db[INVOICES]
        changes: Doc = {
            "tenant_id": tenant_id,
            "number": summary.invoice_number,
            "kind": summary.kind,
            "status": summary.status,
            "due_date": summary.due_date,
            "balance_minor": summary.balance_minor,
            "version": summary.version,
        }
        current = await invoices.find_one({"_id": summary.invoice_id}, session=s)
        if current is not None and current.get("version", 0) >= summary.version:
            return
        if summary.status in ("paid", "overpaid") and not (current or {}).get("paid_at"):
            changes["paid_at"] = at
        await invoices.update_one({"_id": summary.invoice_id}, {"$set": changes}, upsert=True, session=s)

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
