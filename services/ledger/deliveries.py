"""What the dispatcher reports (fordring.dispatcher.delivery.v1), applied to the ledger: each step of a
delivery in the invoice's history and its `delivery` summary ("sent by e-mail 09:14, opened 11:02"),
and a contact that proved unusable flagged on the customer for cleaning.

None of it changes what is owed: the invoice's status and version stay as they are (a dunning
proposal based on the version it saw is not refused because an e-mail was opened meanwhile). A
batch is applied in one transaction. Each report's event id is kept in the history entry it made:
a report found there was applied before and changes nothing (no separate processed record: the
invoice is written anyway, and a replica applying the same report at the same time conflicts on it
and, retried, finds it there).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from pymongo import UpdateOne

from services.common.events import (
    ContactFlagged,
    Delivered,
    DeliveryAttempted,
    DeliveryData,
    DeliveryFailed,
    Event,
    FallbackScheduled,
    Opened,
)
from services.common.mongo import Doc, Session, in_transaction
from services.ledger.store import LedgerStore

log = logging.getLogger(__name__)

DELIVERIES_CONSUMER: Final = "ledger-deliveries"
_CHANNEL_NAMES: Final = {
    "email": "e-mail",
    "sms": "SMS",
    "ehf": "EHF",
    "efaktura": "eFaktura",
    "vipps": "Vipps",
    "print": "post",
    "avtalegiro": "AvtaleGiro",
}
_DOCUMENTS: Final = {
    "invoice": "invoice",
    "credit_note": "credit note",
    "nudge": "payment nudge",
    "reminder": "reminder",
    "collection_notice": "debt collection notice",
}
# The deliveries an invoice's summary moved on from, newest last (a late report about one of them
# does not start it again).
_EARLIER: Final = 20
_DELIVERY_EVENTS = (
    DeliveryAttempted | Delivered | Opened | DeliveryFailed | FallbackScheduled | ContactFlagged
)


def _how(data: DeliveryData) -> str:
    return f"{_DOCUMENTS[data.document_kind]} by {_CHANNEL_NAMES[data.channel]}"


def _route(data: DeliveryData) -> str:
    route = {"primary": "", "fallback": " (fallback)", "resend": " (resent)"}[data.route]
    again = f", attempt {data.attempt}" if data.attempt > 1 else ""
    return f"{route}{again}"


def history_text(event: Event) -> tuple[str, str]:
    """The history entry's type and summary for a delivery event (no personal data)."""
    if isinstance(event, DeliveryAttempted):
        return "sent", f"{_how(event.data)} sent{_route(event.data)}"
    if isinstance(event, Delivered):
        return "delivered", f"{_how(event.data)} delivered{_route(event.data)}"
    if isinstance(event, Opened):
        return "opened", f"{_how(event.data)} opened"
    if isinstance(event, DeliveryFailed):
        outcome = "failed" if event.data.final else "not sent yet, will retry"
        why = f": {event.data.code}" if event.data.code else ""
        return "delivery_failed", f"{_how(event.data)} {outcome}{why} {event.data.reason}".rstrip()
    if isinstance(event, FallbackScheduled):
        d = event.data
        return (
            "fallback_scheduled",
            f"{_CHANNEL_NAMES[d.to_channel]} planned at {d.due_at:%Y-%m-%d %H:%M} UTC unless paid ({d.rule})",
        )
    if isinstance(event, ContactFlagged):
        return "contact_flagged", f"the customer's {event.data.contact} flagged: {event.data.reason}"
    raise TypeError(event.type)


def next_delivery(current: Doc | None, event: Event, at: datetime) -> Doc | None:
    """The invoice's delivery summary after `event` (None: the event does not change it).

    A delivery starts with `DeliveryAttempted`, or with `Delivered` alone when the provider reported
    it delivered at once (e-mail). A report about a delivery the summary moved on from (kept in
    `earlier`) is late: only an open still says something new."""
    if not isinstance(event, DeliveryAttempted | Delivered | Opened | DeliveryFailed):
        return None
    data = event.data
    summary = dict(current or {})
    if summary.get("delivery_id") != data.delivery_id:
        earlier: list[str] = list(summary.get("earlier", ()))
        starts = isinstance(event, DeliveryAttempted) or (
            isinstance(event, Delivered) and data.delivery_id not in earlier
        )
        if not starts:
            if isinstance(event, Opened) and not summary.get("opened_at"):
                summary["opened_at"] = at
                return summary
            return None
        if summary.get("delivery_id"):
            earlier = [*earlier, summary["delivery_id"]][-_EARLIER:]
        summary = {
            "delivery_id": data.delivery_id,
            "channel": data.channel,
            "deliveries": summary.get("deliveries", 0) + 1,
            "earlier": earlier,
        }
    if isinstance(event, DeliveryAttempted):
        summary.setdefault("sent_at", at)
        summary.setdefault("status", "sent")
    elif isinstance(event, Delivered):
        summary.setdefault("sent_at", at)
        summary["delivered_at"] = at
        if summary.get("status") != "opened":
            summary["status"] = "delivered"
    elif isinstance(event, Opened):
        summary.setdefault("opened_at", at)
        summary["status"] = "opened"
    elif data.final:
        summary["status"] = "failed"
        summary["failed_reason"] = f"{data.code}: {data.reason}".strip(": ")[:300]
    return summary


class DeliveryLog:
    """Applies the dispatcher's events to invoices and customers."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store

    async def on_event(self, event: Event) -> None:
        failed = await self.on_batch([event])
        if event.id in failed:
            raise failed[event.id]

    async def on_batch(self, events: list[Event]) -> dict[str, Exception]:
        ours = [e for e in events if isinstance(e, _DELIVERY_EVENTS)]
        if ours:
            await in_transaction(self._store.client, lambda s: self._apply(s, ours))
        return {}

    async def _apply(self, s: Session, events: Sequence[Event]) -> None:
        by_tenant: dict[str, set[str]] = defaultdict(set)
        for event in events:
            by_tenant[event.tenant_id].add(event.subject)
        invoices: dict[tuple[str, str], Doc] = {}
        # The reports each invoice's history already tells (by event id).
        applied: dict[tuple[str, str], set[str]] = {}
        # Point lookups on `_id` alone (an index lookup on every server), the tenant checked after.
        found = self._store.invoices.find(
            {"_id": {"$in": sorted({i for ids in by_tenant.values() for i in ids})}},
            projection={"delivery": 1, "status": 1, "version": 1, "tenant_id": 1, "history.event_id": 1},
            session=s,
        )
        async for doc in found:
            if doc["_id"] in by_tenant.get(doc["tenant_id"], ()):
                key = (doc["tenant_id"], doc["_id"])
                invoices[key] = doc
                applied[key] = {e.get("event_id", "") for e in doc.get("history", ())}
        history: dict[tuple[str, str], list[Doc]] = defaultdict(list)
        summaries: dict[tuple[str, str], Doc] = {}
        flags: list[tuple[ContactFlagged, UpdateOne]] = []
        for event in events:
            key = (event.tenant_id, event.subject)
            invoice = invoices.get(key)
            if invoice is None:
                log.warning("ledger: %s for an unknown invoice %s (tenant %s)", event.type, *key[::-1])
                continue
            if event.id in applied[key]:
                continue  # applied before (a redelivery), or twice in this batch
            applied[key].add(event.id)
            type_, text = history_text(event)
            history[key].append(
                {
                    "event_id": event.id,
                    "type": type_,
                    "at": event.occurred_at,
                    "actor": "dispatcher",
                    "trace_id": "",
                    "status_before": invoice["status"],
                    "status_after": invoice["status"],
                    "version": invoice["version"],
                    "summary": text[:500],
                }
            )
            summary = next_delivery(summaries.get(key, invoice.get("delivery")), event, event.occurred_at)
            if summary is not None:
                summaries[key] = summary
            if isinstance(event, ContactFlagged):
                flags.append((event, _flag(event)))
        updates = []
        for key, entries in history.items():
            change: Doc = {"$push": {"history": {"$each": entries}}}
            if key in summaries:
                change["$set"] = {"delivery": summaries[key]}
            # The invoice was found under this tenant above: `_id` alone keeps it a point update.
            updates.append(UpdateOne({"_id": key[1]}, change))
        if updates:
            await self._store.invoices.bulk_write(updates, ordered=False, session=s)
        if flags:
            owners = {
                d["_id"]: d["tenant_id"]
                async for d in self._store.customers.find(
                    {"_id": {"$in": sorted({e.data.customer_id for e, _ in flags})}},
                    projection={"tenant_id": 1},
                    session=s,
                )
            }
            ours = [
                update for event, update in flags if owners.get(event.data.customer_id) == event.tenant_id
            ]
            if ours:
                await self._store.customers.bulk_write(ours, ordered=False, session=s)


def _flag(event: ContactFlagged) -> UpdateOne:
    """The customer's contact flagged, once per contact until the ERP sends a new value."""
    d = event.data
    return UpdateOne(
        {"_id": d.customer_id, "flags.contact": {"$ne": d.contact}},
        {
            "$push": {
                "flags": {
                    "contact": d.contact,
                    "reason": d.reason[:300],
                    "at": event.occurred_at,
                    "invoice_id": d.invoice_id,
                    "channel": d.channel,
                    "delivery_id": d.delivery_id,
                }
            },
            "$set": {"flagged": True},
        },
    )
