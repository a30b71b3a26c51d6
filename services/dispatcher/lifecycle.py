"""A delivery's life, written where it happens: each step changes the delivery, announces it on
fordring.dispatcher.delivery.v1 and (de)schedules its timers in the caller's transaction, so what
the ledger hears, what the dispatcher did and what it will do next never disagree.

queued → accepted (the provider took it; a receipt will follow) → delivered → opened
       ↘ failed (refused, bounced, rejected, returned, retries exhausted)   ↘ cancelled (paid first)
A step never goes back: a late "delivered" after "opened" changes nothing. A send the provider
reports delivered at once (e-mail) goes from queued to delivered, announced once, as `Delivered`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from opentelemetry import metrics

from services.common.events import (
    DELIVERY_TOPIC,
    ContactFlagged,
    ContactFlaggedData,
    Delivered,
    DeliveryAttempted,
    DeliveryData,
    DeliveryFailed,
    Event,
    FallbackScheduled,
    FallbackScheduledData,
    Opened,
)
from services.common.ids import new_id
from services.common.mongo import Doc, Session
from services.common.outbox import OUTBOX, outbox_doc
from services.common.timers import Bucket, Timers, bucket_due, item_timer_doc
from services.dispatcher.adapters.base import Contact
from services.dispatcher.domain.rules import DeliveryRules, FallbackRule
from services.dispatcher.store import FINAL, DispatcherStore

log = logging.getLogger(__name__)
_meter = metrics.get_meter("fordring.dispatcher")
DELIVERIES = _meter.create_counter(
    "fordring_deliveries",
    description="Delivery steps by channel and result (accepted, delivered, opened, failed…)",
)
ISSUED_TO_DELIVERED = _meter.create_histogram(
    "fordring_issued_to_delivered_seconds",
    description="From an invoice's issue in the ledger to its primary delivery's arrival, by channel",
    unit="s",
)
FALLBACKS = _meter.create_counter(
    "fordring_fallbacks", description="Fallback rules by rule and outcome (scheduled, sent, skipped_paid, …)"
)

SEND = "send"
FALLBACK = "fallback"
PLAN = "plan"
BATCH = "batch"
# Deliveries per send timer made by planning (a replica claims a few such timers at a time).
SEND_ITEMS = 32
# Statuses in which the delivery was handed to the provider and not given up on.
SENT = frozenset({"accepted", "delivered", "opened"})
_ORDER = {"queued": 0, "accepted": 1, "delivered": 2, "opened": 3}


def fallback_timer_id(delivery_id: str, rule: str) -> str:
    return f"fallback:{delivery_id}:{rule}"


def send_timer_id(delivery_id: str) -> str:
    return f"send:{delivery_id}"


@dataclass
class Step:
    """What one transaction writes besides the delivery itself: announcements and deviations."""

    events: list[Event] = field(default_factory=list)
    deviations: list[Doc] = field(default_factory=list)


class Lifecycle:
    def __init__(
        self,
        store: DispatcherStore,
        timers: Timers,
        *,
        delay_scale: float,
        rules_of: Callable[[str], DeliveryRules],
        on_flag: Callable[[str, str, str, datetime, str], None] = lambda *_: None,
    ) -> None:
        self._store = store
        self._timers = timers
        self._scale = delay_scale
        # The tenant's rules as last read (the caller refreshed them before the transaction).
        self._rules_of = rules_of
        # A contact proved bad (tenant, customer, contact, when, why): known here before the ledger.
        self._on_flag = on_flag

    def delay(self, rule: FallbackRule) -> timedelta:
        return rule.after * self._scale

    @staticmethod
    def data(d: Doc, **over: Any) -> DeliveryData:
        fields: dict[str, Any] = {
            "delivery_id": d["_id"],
            "invoice_id": d["invoice_id"],
            "invoice_number": d["invoice_number"],
            "customer_id": d["customer_id"],
            "document_kind": d["kind"],
            "rendering_id": d["rendering_id"],
            "channel": d["channel"],
            "route": d["route"],
            "attempt": d.get("attempt", 1),
            "provider_ref": d.get("provider_ref", ""),
        }
        fields.update(over)
        return DeliveryData(**fields)

    @staticmethod
    def event(kind: Any, d: Doc, now: datetime, data: Any) -> Event:
        event: Event = kind(tenant_id=d["tenant_id"], subject=d["invoice_id"], occurred_at=now, data=data)
        return event

    async def write(self, s: Session, step: Step) -> None:
        if step.events:
            await self._store.db[OUTBOX].insert_many(
                [outbox_doc(e, DELIVERY_TOPIC) for e in step.events], session=s
            )
        for deviation in step.deviations:
            await self._store.add_deviation(s, deviation)

    # --- steps ---------------------------------------------------------------------------------

    async def queue(self, s: Session, d: Doc, now: datetime) -> None:
        """A new delivery and the timer that sends it."""
        await self._store.insert_delivery(s, d)
        await self._timers.schedule(
            send_timer_id(d["_id"]), SEND, now, {"delivery_id": d["_id"]}, tenant_id=d["tenant_id"], session=s
        )

    async def queue_many(self, s: Session, deliveries: list[Doc], now: datetime) -> None:
        """New deliveries and their send timers, in two writes: a timer per SEND_ITEMS deliveries
        (`item_timer_doc`; a timer document each would be written three times per delivery: made,
        claimed, done)."""
        new = await self._store.insert_deliveries(s, deliveries)
        by_tenant: dict[str, list[str]] = {}
        for d in new:
            by_tenant.setdefault(d["tenant_id"], []).append(d["_id"])
        await self._timers.insert_many(
            [
                item_timer_doc(
                    f"send:items:{new_id()}", SEND, now, ids[at : at + SEND_ITEMS], tenant_id=tenant
                )
                for tenant, ids in by_tenant.items()
                for at in range(0, len(ids), SEND_ITEMS)
            ],
            session=s,
        )

    async def sent_many(self, s: Session, items: list[tuple[Doc, str, str, str, int]], now: datetime) -> Step:
        """The provider took these deliveries (delivery, state, provider ref, detail, attempt), in a
        few writes: the sender's hot path. A delivery a receipt overtook (a bounce posted before the
        send was recorded) keeps what the receipt made of it, and nothing is announced for it."""
        step = Step()
        updates: list[tuple[str, Doc, Doc, Doc | None]] = []
        buckets: dict[str, Bucket] = {}
        # This call's own watch timers: a timer every batch adds to would grow by a batch each time,
        # and the server rewrites (and compares, for $addToSet) the whole list on every addition.
        batch = new_id()
        still = await self._store.still_queued(s, [queued["_id"] for queued, *_ in items])
        for queued, state, provider_ref, detail, attempt in items:
            if queued["_id"] not in still:
                continue
            changes: Doc = {
                "status": state,
                "provider_ref": provider_ref,
                "sent_at": now,
                "attempt": attempt,
                "next_attempt_at": None,
            }
            if state == "delivered":
                changes["delivered_at"] = now
            record = {"number": attempt, "at": now, "result": state, "code": "", "detail": detail[:300]}
            updates.append((queued["_id"], {"status": "queued"}, changes, record))
            d = {**queued, **changes}
            if state == "delivered":
                # Handed over and arrived in one step (an SMTP server's 250): one announcement,
                # `Delivered`, which says it was sent too; `DeliveryAttempted` is a send that waits
                # for its receipt.
                step.events.append(self.event(Delivered, d, now, self.data(d)))
                issued_to_delivered(d, now)
            else:
                step.events.append(self.event(DeliveryAttempted, d, now, self.data(d)))
            rules = self._rules_of(d["tenant_id"])
            watch = rules.rules_for(d["channel"], "unopened", d["kind"])
            if state == "accepted":
                watch += rules.rules_for(d["channel"], "undelivered", d["kind"])
            for rule in watch:
                # A batch's watches due in the same moment share a timer (one write per batch, not
                # one per delivery); the rule is checked per delivery when it fires.
                delay = self.delay(rule)
                number, due = bucket_due(now + delay, max(0.1, min(60.0, delay.total_seconds() / 20)))
                timer_id = f"watch:{d['tenant_id']}:{rule.name}:{number}:{batch}"
                bucket = buckets.get(timer_id) or Bucket(
                    FALLBACK, due, (), {"rule": rule.name}, d["tenant_id"]
                )
                buckets[timer_id] = replace(bucket, items=(*bucket.items, d["_id"]))
            DELIVERIES.add(1, {"channel": d["channel"], "result": state})
        await self._store.update_deliveries(s, updates)
        await self._timers.add_to_buckets(buckets, session=s)
        return step

    async def retry(
        self, s: Session, d: Doc, now: datetime, *, attempt: int, code: str, detail: str, at: datetime
    ) -> None:
        record = {"number": attempt, "at": now, "result": "retry", "code": code, "detail": detail[:300]}
        await self._store.update_delivery(
            s,
            d["_id"],
            {"attempt": attempt, "next_attempt_at": at},
            attempt=record,
            when={"status": "queued"},
        )
        DELIVERIES.add(1, {"channel": d["channel"], "result": "retry"})

    async def delivered(self, s: Session, d: Doc, now: datetime) -> Step:
        step = Step()
        if _ORDER.get(d["status"], 99) >= _ORDER["delivered"]:
            return step
        changes = {"status": "delivered", "delivered_at": now}
        if await self._store.update_delivery(s, d["_id"], changes, when={"status": d["status"]}):
            d = {**d, **changes}
            step.events.append(self.event(Delivered, d, now, self.data(d)))
            issued_to_delivered(d, now)
            DELIVERIES.add(1, {"channel": d["channel"], "result": "delivered"})
        return step

    async def opened(self, s: Session, d: Doc, now: datetime) -> Step:
        step = Step()
        if d["status"] not in SENT or d["status"] == "opened":
            return step
        changes: Doc = {"status": "opened", "opened_at": now}
        if not d.get("delivered_at"):
            changes["delivered_at"] = now
        if await self._store.update_delivery(s, d["_id"], changes, when={"status": d["status"]}):
            # Opened before a receipt said delivered (an SMS tapped at once): it was delivered too.
            announce_delivered = not d.get("delivered_at")
            d = {**d, **changes}
            if announce_delivered:
                step.events.append(self.event(Delivered, d, now, self.data(d)))
                issued_to_delivered(d, now)
            step.events.append(self.event(Opened, d, now, self.data(d)))
            DELIVERIES.add(1, {"channel": d["channel"], "result": "opened"})
        return step

    async def cancelled(self, s: Session, d: Doc, now: datetime, reason: str) -> Step:
        await self._store.update_delivery(
            s,
            d["_id"],
            {"status": "cancelled", "reason": reason, "next_attempt_at": None},
            when={"status": {"$nin": list(FINAL)}},
        )
        DELIVERIES.add(1, {"channel": d["channel"], "result": "cancelled"})
        return Step()

    async def failed(
        self,
        s: Session,
        d: Doc,
        now: datetime,
        *,
        code: str,
        reason: str,
        contact: Contact | None,
        attempt: int | None = None,
    ) -> Step:
        """Given up on this channel: announced, the contact flagged when it proved bad, and the
        tenant's "failed" rules scheduled at once (the fallback decides its channel when it fires,
        seeing whether the invoice was paid meanwhile). Without a rule: a deviation for a person."""
        step = Step()
        if d["status"] in FINAL:
            return step
        changes: Doc = {
            "status": "failed",
            "failed_at": now,
            "code": code,
            "reason": reason[:500],
            "next_attempt_at": None,
        }
        record = None
        if attempt is not None:
            changes["attempt"] = attempt
            record = {"number": attempt, "at": now, "result": "failed", "code": code, "detail": reason[:300]}
        if not await self._store.update_delivery(
            s, d["_id"], changes, attempt=record, when={"status": d["status"]}
        ):
            return step
        d = {**d, **changes}
        step.events.append(
            self.event(DeliveryFailed, d, now, self.data(d, code=code, reason=reason[:500], final=True))
        )
        if contact is not None:
            self._on_flag(d["tenant_id"], d["customer_id"], contact, now, reason[:200])
            step.events.append(
                self.event(
                    ContactFlagged,
                    d,
                    now,
                    ContactFlaggedData(
                        customer_id=d["customer_id"],
                        invoice_id=d["invoice_id"],
                        delivery_id=d["_id"],
                        contact=contact,
                        channel=d["channel"],
                        reason=reason[:500],
                    ),
                )
            )
        rules = self._rules_of(d["tenant_id"]).rules_for(d["channel"], "failed", d["kind"])
        for rule in rules[:1]:
            await self._schedule(s, step, d, rule, now)
        if not rules:
            step.deviations.append(
                deviation(
                    d,
                    now,
                    kind="returned" if code == "returned" else "failed",
                    reason=reason,
                    action="operator task: no fallback rule",
                )
            )
        DELIVERIES.add(1, {"channel": d["channel"], "result": "failed"})
        return step

    async def _schedule(self, s: Session, step: Step, d: Doc, rule: FallbackRule, due: datetime) -> None:
        added = await self._timers.schedule(
            fallback_timer_id(d["_id"], rule.name),
            FALLBACK,
            due,
            {"delivery_id": d["_id"], "rule": rule.name},
            tenant_id=d["tenant_id"],
            session=s,
        )
        if added:
            self._announce_fallback(step, d, rule, due)

    def _announce_fallback(self, step: Step, d: Doc, rule: FallbackRule, due: datetime) -> None:
        """A failure's fallback is announced when it is scheduled. The watches every sent delivery
        gets ("not opened in 3 days") are not: most never fire; the fallback delivery, when one is
        made, is announced like any delivery (route "fallback", its rule)."""
        target = next((t for t in rule.then if t != "operator"), None)
        if target is not None and rule.when == "failed":
            step.events.append(
                self.event(
                    FallbackScheduled,
                    d,
                    due,
                    FallbackScheduledData(
                        delivery_id=d["_id"],
                        invoice_id=d["invoice_id"],
                        invoice_number=d["invoice_number"],
                        customer_id=d["customer_id"],
                        document_kind=d["kind"],
                        from_channel=d["channel"],
                        to_channel=target,
                        rule=rule.name,
                        due_at=due,
                    ),
                )
            )
            FALLBACKS.add(1, {"rule": rule.name, "outcome": "scheduled"})


def deviation(d: Doc, now: datetime, *, kind: str, reason: str, action: str) -> Doc:
    return {
        "_id": new_id(),
        "tenant_id": d["tenant_id"],
        "invoice_id": d["invoice_id"],
        "invoice_number": d["invoice_number"],
        "delivery_id": d.get("_id", ""),
        "channel": d.get("channel", ""),
        "document_kind": d.get("kind", ""),
        "kind": kind,
        "reason": reason[:500],
        "action": action[:300],
        "created_at": now,
    }


def issued_to_delivered(d: Doc, now: datetime) -> None:
    """An invoice's (or credit note's) primary document reached the customer: how long after its issue
    (the dashboard's issue → delivered). Reminders and resends are not counted."""
    issued = d.get("issued_at")
    if d.get("kind") in ("invoice", "credit_note") and d.get("route") == "primary" and issued:
        ISSUED_TO_DELIVERED.record(max(0.0, (now - issued).total_seconds()), {"channel": d["channel"]})
