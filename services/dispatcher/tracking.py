"""What happens after a send: the providers' receipts, the customer opening the invoice link, and
the ledger's view of the invoice (paid? credited?) kept as a projection.

A receipt is applied once: its provider and event id are recorded in the transaction that applies
it, so a replayed webhook changes nothing. An open is the customer following the invoice link from
an e-mail or SMS: it marks the newest delivery that carried the link, and the "not opened" fallback
of every delivery of that invoice stands down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from opentelemetry import metrics

from services.common.clock import Clock
from services.common.events import Event
from services.common.mongo import Doc, Session, in_transaction
from services.dispatcher.adapters.base import Receipt
from services.dispatcher.channels import Channels
from services.dispatcher.lifecycle import Lifecycle, Step
from services.dispatcher.rules import RulesBook
from services.dispatcher.store import DELIVERIES, RENDERINGS, DispatcherStore

log = logging.getLogger(__name__)
_meter = metrics.get_meter("fordring.dispatcher")
PAID = _meter.create_counter(
    "fordring_delivered_invoices_paid",
    description="Invoices paid, by the channel that delivered them and whether on or before the due date",
)
DAYS_TO_PAY = _meter.create_histogram(
    "fordring_delivery_to_payment_days",
    description="Days from an invoice's delivery to its payment, by channel",
    explicit_bucket_boundaries_advisory=[0.5, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90],
)
INVOICES_CONSUMER = "dispatcher-invoices"
# Channels whose message carries the invoice link.
LINKED = ("email", "sms", "efaktura")


class NotYetSent(Exception):
    """A positive receipt for a delivery whose send is not recorded yet: to be posted again."""


@dataclass(frozen=True)
class Applied:
    applied: int = 0
    replayed: int = 0
    unknown: int = 0


class Tracker:
    def __init__(
        self,
        store: DispatcherStore,
        lifecycle: Lifecycle,
        channels: Channels,
        rules: RulesBook,
        clock: Clock,
        *,
        on_commit: Callable[[], None],
    ) -> None:
        self._store = store
        self._life = lifecycle
        self._channels = channels
        self._rules = rules
        self._clock = clock
        self._on_commit = on_commit

    # --- receipts ----------------------------------------------------------------------------

    async def apply_receipts(self, provider: str, receipts: list[Receipt]) -> Applied:
        applied = replayed = unknown = 0
        adapter = self._channels.by_provider[provider]
        for receipt in receipts:
            d = None
            if receipt.delivery_id:
                d = await self._store.delivery(receipt.delivery_id)
            if d is None and receipt.provider_ref:
                d = await self._store.by_provider_ref(receipt.provider_ref, adapter.channel)
            if d is None:
                unknown += 1
                log.warning(
                    "dispatcher: a %s receipt for an unknown delivery (%s)", provider, receipt.event_id
                )
            else:
                await self._rules.get(d["tenant_id"])
            outcome = await self._apply_one(provider, receipt, d)
            if outcome is None:
                replayed += 1
            elif d is not None:
                applied += 1
        self._on_commit()
        return Applied(applied, replayed, unknown)

    async def _apply_one(self, provider: str, receipt: Receipt, d: Doc | None) -> bool | None:
        now = self._clock.now()
        return await in_transaction(self._store.client, lambda s: self._apply(s, provider, receipt, d, now))

    async def _apply(
        self, s: Session, provider: str, r: Receipt, d: Doc | None, now: datetime
    ) -> bool | None:
        """None when the receipt was applied before (a replay)."""
        if not await self._store.take_receipt(s, provider, r.event_id, now):
            return None
        if d is None:
            return False
        current = await self._store.delivery(d["_id"], s) or d
        if current["status"] == "queued" and r.status in ("delivered", "opened", "paid"):
            # The provider reports on a send whose outcome this replica is still recording: the
            # provider is asked to post it again in a moment (nothing is applied or kept now).
            raise NotYetSent(d["_id"])
        step = Step()
        match r.status:
            case "delivered":
                step = await self._life.delivered(s, current, now)
            case "opened":
                step = await self._life.opened(s, current, now)
            case "paid":
                await self._store.update_delivery(s, current["_id"], {"paid_at": r.occurred_at})
                step = await self._life.delivered(s, current, now)
            case "failed" | "bounced" | "rejected" | "returned":
                step = await self._life.failed(
                    s, current, now, code=r.status, reason=r.reason or r.status, contact=r.contact
                )
        await self._life.write(s, step)
        return True

    # --- opens -------------------------------------------------------------------------------

    async def opened(self, invoice_id: str) -> Doc | None:
        """The customer followed the invoice's link: the newest delivery that carried it is opened.
        Returns that delivery (None when the invoice had no such delivery: still a valid link)."""
        found = (
            await self._store.db[DELIVERIES]
            .find(
                {
                    "invoice_id": invoice_id,
                    "channel": {"$in": list(LINKED)},
                    "status": {"$in": ["accepted", "delivered", "opened"]},
                }
            )
            .sort("sent_at", -1)
            .limit(1)
            .to_list()
        )
        if not found:
            return None
        d = found[0]
        if d["status"] == "opened":
            return d
        await self._rules.get(d["tenant_id"])
        now = self._clock.now()

        async def work(s: Session) -> None:
            current = await self._store.delivery(d["_id"], s) or d
            await self._life.write(s, await self._life.opened(s, current, now))

        await in_transaction(self._store.client, work)
        self._on_commit()
        return d

    async def tenant_of(self, invoice_id: str) -> str | None:
        """Whose invoice this is (a link on a printed letter: no delivery carried it by e-mail)."""
        found = await self._store.db[RENDERINGS].find_one(
            {"invoice_id": invoice_id}, projection={"tenant_id": 1}
        )
        return str(found["tenant_id"]) if found else None

    # --- the ledger's invoices -----------------------------------------------------------------

    async def on_invoice_event(self, event: Event) -> None:
        await self.on_invoice_batch([event])

    async def on_invoice_batch(self, events: list[Event]) -> dict[str, Exception]:
        # Versions order the states: an event seen again (or late) changes nothing, so no applied
        # event ids are kept for this projection.
        todo = [e for e in events if getattr(e.data, "invoice", None) is not None]
        if not todo:
            return {}

        states = [(e.tenant_id, e.data.invoice, e.occurred_at) for e in todo]  # type: ignore[union-attr]
        paid = await in_transaction(self._store.client, lambda s: self._store.project_invoices(s, states))
        if paid:
            await self._count_payments(paid)
        return {}

    async def _count_payments(self, paid: list[tuple[str, datetime, str]]) -> None:
        """Channel effectiveness as metrics: for each invoice paid now, the channels that delivered
        it — paid on or before the due date or not, and how many days after delivery."""
        when = {invoice_id: (at, due) for invoice_id, at, due in paid}
        delivered = (
            await self._store.db[DELIVERIES]
            .find(
                {"invoice_id": {"$in": list(when)}, "kind": "invoice", "delivered_at": {"$ne": None}},
                projection={"invoice_id": 1, "channel": 1, "delivered_at": 1},
            )
            .to_list()
        )
        for d in delivered:
            at, due = when[d["invoice_id"]]
            on_time = bool(due) and at.date() <= date.fromisoformat(due)
            PAID.add(1, {"channel": d["channel"], "before_due": "yes" if on_time else "no"})
            DAYS_TO_PAY.record(
                max(0.0, (at - d["delivered_at"]).total_seconds() / 86400), {"channel": d["channel"]}
            )
