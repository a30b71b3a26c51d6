"""From a rendered document to its deliveries.

The renderer announces each form of a rendering on its own; when the last one is in, a `plan` timer
is written in the same transaction, so a crash between "all forms are here" and "the delivery is
planned" loses nothing. The plan timer reads the customer from the ledger (contact data never
travels in events), asks the registries, chooses the primary channel and queues the delivery with
its send timer — one primary delivery per document, whoever plans it.

Fallback timers (written by services/dispatcher/lifecycle.py) come here when they fire: the rule's
condition is checked again (opened meanwhile? delivered meanwhile?), the invoice must still be
unpaid and uncredited — in the projection and then in the ledger itself — and the document never
goes out twice on one channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast, get_args

from fordring.ledger.v1 import ledger_pb2 as lpb

from services.common import attributes as attr
from services.common.bus import event_traceparent
from services.common.clock import Clock
from services.common.errors import NotFound, Unavailable
from services.common.events import DocumentRendered, Event
from services.common.mongo import Doc, Session, in_transaction
from services.common.retry import Backoff
from services.common.telemetry import continued
from services.common.timers import Timer, Timers, timer_doc
from services.dispatcher.adapters.base import ChannelName, Contact, PostalAddress, Recipient
from services.dispatcher.channels import Channels
from services.dispatcher.domain import plan as planning
from services.dispatcher.domain.rules import DeliveryRules, FallbackRule
from services.dispatcher.lifecycle import FALLBACKS, PLAN, SENT, Lifecycle, Step, deviation
from services.dispatcher.recent import RecentLedger
from services.dispatcher.rules import RulesBook
from services.dispatcher.store import CLOSED, DispatcherStore, delivery_id

log = logging.getLogger(__name__)
CONSUMER = "dispatcher-documents"

_CHANNEL_OF_PB: dict[int, ChannelName] = {
    lpb.CHANNEL_EMAIL: "email",
    lpb.CHANNEL_SMS: "sms",
    lpb.CHANNEL_EHF: "ehf",
    lpb.CHANNEL_EFAKTURA: "efaktura",
    lpb.CHANNEL_VIPPS: "vipps",
    lpb.CHANNEL_PRINT: "print",
    lpb.CHANNEL_AVTALEGIRO: "avtalegiro",
}
CONTACTS = frozenset(get_args(Contact))
_STATUS_OF_PB = {
    value: name.removeprefix("INVOICE_STATUS_").lower() for name, value in lpb.InvoiceStatus.items()
}


def recipient_of(customer: lpb.Customer) -> Recipient:
    return Recipient(
        customer_id=customer.id,
        customer_number=customer.number,
        name=customer.name,
        kind="business" if customer.kind == lpb.CUSTOMER_KIND_BUSINESS else "consumer",
        language=customer.language or "nb",
        email=customer.email,
        phone=customer.phone,
        org_number=customer.org_number,
        address=PostalAddress(
            lines=tuple(customer.address.lines),
            postal_code=customer.address.postal_code,
            city=customer.address.city,
            country=customer.address.country,
        ),
    )


def plan_customer(customer: lpb.Customer) -> planning.Customer:
    address = customer.address
    return planning.Customer(
        kind="business" if customer.kind == lpb.CUSTOMER_KIND_BUSINESS else "consumer",
        has_email=bool(customer.email),
        has_phone=bool(customer.phone),
        has_address=bool(address.lines) and bool(address.postal_code or address.city),
        has_org_number=bool(customer.org_number),
        email_consent=customer.consents.email,
        sms_consent=customer.consents.sms,
        efaktura_consent=customer.consents.efaktura,
        avtalegiro_consent=customer.consents.avtalegiro,
        preferences=tuple(_CHANNEL_OF_PB[c] for c in customer.channel_preferences if c in _CHANNEL_OF_PB),
        flagged=frozenset(cast(Contact, f.contact) for f in customer.flags if f.contact in CONTACTS),
    )


def invoice_status(invoice: lpb.Invoice) -> str:
    return _STATUS_OF_PB.get(invoice.status, "open")


# Documents that only ask for money already owed: not sent once the invoice is paid, credited or
# written off (an invoice or credit note still is: it is the bookkeeping document).
DUNNING_KINDS = frozenset({"nudge", "reminder", "collection_notice"})
# A rendering the ledger cannot place is tried this many times (with backoff), then is a deviation.
MAX_PLAN_ATTEMPTS = 12


@dataclass(frozen=True)
class Planned:
    """What planning a rendering came to: a delivery, a deviation, nothing (a nudge or reminder for a
    paid invoice), or `later` (the ledger does not know it yet: why)."""

    rendering: Doc
    delivery: Doc | None = None
    deviation: Doc | None = None
    later: str | None = None


@dataclass(frozen=True)
class Choice:
    channel: ChannelName | None
    passed: dict[ChannelName, str]
    # Why nothing is sent any more: the invoice's status ("paid", "credited", …).
    closed: str = ""


class Planner:
    def __init__(
        self,
        store: DispatcherStore,
        timers: Timers,
        lifecycle: Lifecycle,
        channels: Channels,
        recent: RecentLedger,
        rules: RulesBook,
        clock: Clock,
        *,
        on_commit: Callable[[], None],
    ) -> None:
        self._store = store
        self._timers = timers
        self._life = lifecycle
        self._channels = channels
        self._recent = recent
        self._ledger = recent.ledger
        self._rules = rules
        self._clock = clock
        self._on_commit = on_commit
        self._reads = asyncio.Semaphore(16)

    # --- the renderer's announcements --------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        await self.on_batch([event])

    async def on_batch(self, events: list[Event]) -> dict[str, Exception]:
        """Collect the announced forms; plan each rendering whose forms are now all in; write the
        forms and the deliveries with their send timers in one transaction. The
        ledger being away raises (the batch comes again); a rendering the ledger cannot place yet
        gets a plan timer (tried again with backoff)."""
        todo = [e for e in events if isinstance(e, DocumentRendered)]
        if not todo:
            return {}
        await self._collect_and_plan(todo)
        self._timers.wake()
        self._on_commit()
        return {}

    async def _collect_and_plan(self, events: list[DocumentRendered]) -> None:
        # One invoice's events share a partition: no other consumer adds forms to these renderings.
        existing = await self._store.renderings_by_id(list({e.data.rendering_id for e in events}))
        merged: dict[str, Doc] = {}
        for event in events:
            data = event.data
            rendering = (
                merged.get(data.rendering_id)
                or existing.get(data.rendering_id)
                or _rendering(event, self._clock.now())
            )
            merged[data.rendering_id] = {
                **rendering,
                "forms": {**rendering.get("forms", {}), data.form: data.document_id},
            }
        complete = [
            r
            for r in merged.values()
            if not r.get("planned") and set(r["forms_available"]) <= set(r["forms"])
        ]
        await self._recent.warm((r["tenant_id"], r["customer_id"], r["invoice_id"]) for r in complete)
        planned = await asyncio.gather(*(self._plan(r) for r in complete))
        now = self._clock.now()

        async def work(s: Session) -> None:
            # No applied-event ids: applying an announcement again changes nothing (a form's
            # document id is set again, a planned rendering is not planned twice, deliveries and
            # timers have ids derived from what they are).
            await self._write_plans(s, list(merged.values()), planned, now)

        await in_transaction(self._store.client, work)

    async def _write_plans(
        self, s: Session, renderings: list[Doc], planned: list[Planned], now: datetime
    ) -> None:
        await self._store.save_renderings(
            s, renderings, {p.rendering["_id"] for p in planned if p.later is None}
        )
        await self._life.queue_many(s, [p.delivery for p in planned if p.delivery is not None], now)
        step = Step(deviations=[p.deviation for p in planned if p.deviation is not None])
        await self._life.write(s, step)
        await self._timers.schedule_many(
            [
                timer_doc(
                    f"plan:{p.rendering['_id']}",
                    PLAN,
                    now + timedelta(seconds=5),
                    {"rendering_id": p.rendering["_id"]},
                    tenant_id=p.rendering["tenant_id"],
                )
                for p in planned
                if p.later is not None
            ],
            session=s,
        )

    async def _plan(self, rendering: Doc, *, attempts: int = 0) -> Planned:
        """`_plan_rendering` in the invoice's own trace: the renderer's span that announced the
        rendering is the parent (the batch or timer run that got here is linked)."""
        with continued(
            "dispatcher.plan",
            rendering.get("traceparent", ""),
            {attr.INVOICE_ID: rendering["invoice_id"], attr.TENANT_ID: rendering["tenant_id"]},
        ):
            return await self._plan_rendering(rendering, attempts=attempts)

    async def _plan_rendering(self, rendering: Doc, *, attempts: int = 0) -> Planned:
        """The primary delivery of a complete rendering (or why there is none). Unavailable is
        raised; a rendering the ledger does not know (yet) is `later`."""
        tenant_id = rendering["tenant_id"]
        rules = await self._rules.get(tenant_id)
        try:
            async with self._reads:
                customer = await self._recent.customer(tenant_id, rendering["customer_id"])
                invoice = await self._recent.invoice(tenant_id, rendering["invoice_id"])
        except NotFound as exc:
            return Planned(rendering, later=str(exc))
        document = planning.Document(
            kind=rendering["kind"],
            forms=frozenset(rendering.get("forms", {})),
            payable=rendering["kind"] != "credit_note" and invoice.balance.minor_units > 0,
            hints=tuple(rendering.get("channels", ())),
        )
        now = self._clock.now()
        status = invoice_status(invoice)
        if rendering["kind"] in DUNNING_KINDS and status not in CLOSED:
            # The invoice read may be seconds old: a customer who has just paid is not reminded.
            status = await self._closed(tenant_id, rendering) or status
        if status in CLOSED and rendering["kind"] in DUNNING_KINDS:
            log.info(
                "dispatcher: %s for %s not sent: the invoice is %s",
                rendering["kind"],
                rendering["invoice_number"],
                status,
            )
            return Planned(rendering)
        choice = await self.choose(rules, customer, document)
        if choice.channel is None:
            reason = "; ".join(f"{c}: {why}" for c, why in choice.passed.items()) or "no channel"
            return Planned(
                rendering,
                deviation=deviation(
                    _as_delivery(rendering),
                    now,
                    kind="no_channel",
                    reason=reason,
                    action="operator task: no usable channel",
                ),
            )
        issued = {"issued_at": _issued_at(invoice)} if rendering["kind"] in ("invoice", "credit_note") else {}
        return Planned(
            rendering,
            delivery=new_delivery(
                {**rendering, **issued}, choice.channel, "primary", now, passed=choice.passed
            ),
        )

    # --- plan timers (renderings the ledger could not place at first) --------------------------

    async def on_plan_timers(self, timers: list[Timer]) -> None:
        await asyncio.gather(*(self._plan_later(t) for t in timers))
        self._on_commit()

    async def _plan_later(self, timer: Timer) -> None:
        rendering = await self._store.rendering(timer.payload["rendering_id"])
        if rendering is None or rendering.get("planned"):
            await self._timers.complete([timer.id])
            return
        try:
            planned = await self._plan(rendering)
        except Unavailable as exc:
            await self._timers.retry(timer, Backoff.delay_for(timer.attempts, cap=600), str(exc))
            return
        later = planned.later
        if later is not None:
            if timer.attempts >= MAX_PLAN_ATTEMPTS:
                planned = Planned(
                    rendering,
                    deviation=deviation(
                        _as_delivery(rendering),
                        self._clock.now(),
                        kind="no_channel",
                        reason=later,
                        action="operator task: the ledger does not know it",
                    ),
                )
            else:
                await self._timers.retry(timer, Backoff.delay_for(timer.attempts, cap=600), later)
                return
        now = self._clock.now()

        async def work(s: Session) -> None:
            if not await self._store.mark_planned(s, rendering["_id"]):
                await self._timers.complete([timer.id], session=s)
                return
            await self._write_plans(s, [rendering], [planned], now)
            await self._timers.complete([timer.id], session=s)

        await in_transaction(self._store.client, work)

    async def choose(
        self,
        rules: DeliveryRules,
        customer: lpb.Customer,
        document: planning.Document,
        *,
        used: set[str] | None = None,
        only: tuple[ChannelName, ...] | None = None,
    ) -> Choice:
        """The first usable channel, asking the registries (cached) only for the candidates."""
        wanted = plan_customer(customer)
        registered: dict[ChannelName, bool | None] = {}
        recipient = recipient_of(customer)
        while True:
            result = planning.plan(
                wanted, document, rules, registered=registered, used=used or set(), only=only
            )
            passed = dict(result.passed)
            for channel in result.candidates:
                if channel not in planning.REGISTERED or channel in registered:
                    return Choice(channel, passed)
                key = f"{customer.id}:{customer.org_number or customer.phone or customer.email}"
                registered[channel] = await self._channels.reachable(channel, recipient, key)
                break
            else:
                return Choice(None, passed)

    # --- fallback timers ---------------------------------------------------------------------

    async def on_fallback_timers(self, timers: list[Timer]) -> None:
        await asyncio.gather(*(self._fallback_one(t) for t in timers))
        self._on_commit()

    async def _fallback_one(self, timer: Timer) -> None:
        """A fallback timer: one delivery (a failure's rule, due at once), or a bucket of deliveries
        whose watch ("not opened in 3 days") falls due in the same moment. Each is decided on its
        own and idempotently (a fallback delivery's id is derived from what it is), so a bucket
        tried again after an outage does nothing twice."""
        bucket = timer.payload.get("items")
        ids = list(bucket or [timer.payload["delivery_id"]])
        try:
            for delivery_id in ids:
                await self._fall_back_for(timer, delivery_id, complete="" if bucket else timer.id)
        except Unavailable as exc:
            await self._timers.retry(timer, Backoff.delay_for(timer.attempts, cap=600), str(exc))
            return
        if bucket:
            await self._timers.complete_bucket(timer)
        else:
            await self._timers.complete([timer.id])

    async def _fall_back_for(self, timer: Timer, delivery_id: str, *, complete: str) -> None:
        source = await self._store.delivery(delivery_id)
        rules = await self._rules.get(timer.tenant_id)
        rule = next((r for r in rules.fallbacks if r.name == timer.payload["rule"]), None)
        if source is None or rule is None:
            return
        skip = await self._no_longer_needed(source, rule)
        if skip is not None:
            FALLBACKS.add(1, {"rule": rule.name, "outcome": skip})
            log.info("dispatcher: %s for %s not needed (%s)", rule.name, source["invoice_number"], skip)
            return
        tenant_id = source["tenant_id"]
        try:
            closed = await self._closed(tenant_id, source)
            if closed is not None:
                FALLBACKS.add(1, {"rule": rule.name, "outcome": f"skipped_{closed}"})
                log.info(
                    "dispatcher: %s for %s not sent: the invoice is %s",
                    rule.name,
                    source["invoice_number"],
                    closed,
                )
                if rule.when != "unopened":
                    # Nothing more to send, but a returned letter or a failed channel is still
                    # worth a look (the contact is flagged for cleaning all the same).
                    closed_choice = Choice(None, {}, closed=closed)
                    now = self._clock.now()
                    await in_transaction(
                        self._store.client,
                        lambda s: self._fall_back(s, source, rule, closed_choice, {}, now, complete),
                    )
                return
            async with self._reads:
                customer = await self._ledger.customer(tenant_id, source["customer_id"])
        except NotFound as exc:
            log.warning("dispatcher: %s for %s: %s", rule.name, source["invoice_number"], exc)
            return
        rendering = await self._store.rendering(source["rendering_id"]) or {}
        used = await self._store.channels_used(source["invoice_id"], source["rendering_id"])
        invoice_state = await self._store.invoice_state(source["invoice_id"]) or {}
        document = planning.Document(
            kind=source["kind"],
            forms=frozenset(rendering.get("forms", {})),
            payable=source["kind"] != "credit_note" and invoice_state.get("balance_minor", 1) > 0,
        )
        targets = tuple(t for t in rule.then if t != "operator")
        choice = (
            await self.choose(rules, customer, document, used=used, only=targets)
            if targets
            else Choice(None, {})
        )
        now = self._clock.now()
        await in_transaction(
            self._store.client, lambda s: self._fall_back(s, source, rule, choice, rendering, now, complete)
        )

    async def _fall_back(
        self,
        s: Session,
        source: Doc,
        rule: FallbackRule,
        choice: Choice,
        rendering: Doc,
        now: datetime,
        complete: str = "",
    ) -> None:
        step = Step()
        kind = {
            "failed": "returned" if source.get("code") == "returned" else "failed",
            "undelivered": "stuck",
        }.get(rule.when)
        why = source.get("reason") or {"unopened": "not opened", "undelivered": "no receipt"}.get(
            rule.when, rule.when
        )
        if choice.channel is not None:
            fallback = new_delivery(
                {**rendering, **_rendering_fields(source)},
                choice.channel,
                "fallback",
                now,
                rule=rule.name,
                passed=choice.passed,
            )
            if await self._store.delivery(fallback["_id"], s) is None:
                await self._life.queue(s, fallback, now)
                FALLBACKS.add(1, {"rule": rule.name, "outcome": "sent"})
            if kind is not None:
                step.deviations.append(
                    deviation(
                        source,
                        now,
                        kind=kind,
                        reason=why,
                        action=f"fell back to {choice.channel} ({rule.name})",
                    )
                )
        elif choice.closed:
            action = f"nothing sent: the invoice is {choice.closed}"
            step.deviations.append(deviation(source, now, kind=kind or "failed", reason=why, action=action))
        elif rule.when == "unopened":
            # Not a failure: the e-mail arrived; there is just no second channel to remind on.
            FALLBACKS.add(1, {"rule": rule.name, "outcome": "no_channel"})
        else:
            passed = "; ".join(f"{c}: {w}" for c, w in choice.passed.items())
            action = "operator task" + (f": no fallback channel ({passed})" if passed else "")
            step.deviations.append(
                deviation(source, now, kind=kind or "no_channel", reason=why, action=action)
            )
            FALLBACKS.add(1, {"rule": rule.name, "outcome": "operator"})
        await self._life.write(s, step)
        if complete:
            # A single delivery's timer is done with its effect (a crash cannot make a second
            # deviation); a bucket is completed when all of its deliveries are decided.
            await self._timers.complete([complete], session=s)

    async def _no_longer_needed(self, source: Doc, rule: FallbackRule) -> str | None:
        if rule.when == "unopened":
            if source["status"] == "opened":
                return "opened"
            if source["status"] not in SENT:
                return f"delivery {source['status']}"
            others = await self._store.of_invoice(source["tenant_id"], source["invoice_id"])
            if any(d.get("opened_at") and d["_id"] != source["_id"] for d in others):
                return "opened"
        elif (rule.when == "undelivered" and source["status"] != "accepted") or (
            rule.when == "failed" and source["status"] != "failed"
        ):
            return f"delivery {source['status']}"
        return None

    async def _closed(self, tenant_id: str, source: Doc) -> str | None:
        """Paid, credited or written off by now (`source`: a delivery or a rendering)? The projection
        first, then the ledger (the projection may lag a payment applied a moment ago). Credit notes
        have nothing to pay."""
        if source["kind"] == "credit_note":
            return None
        state = await self._store.invoice_state(source["invoice_id"])
        if state is not None and state.get("status") in CLOSED:
            return str(state["status"])
        invoice = await self._ledger.invoice(tenant_id, source["invoice_id"])
        status = invoice_status(invoice)
        return status if status in CLOSED else None

    # --- customer service ----------------------------------------------------------------------

    async def resend(self, tenant_id: str, invoice_id: str, channel: ChannelName, request_id: str) -> Doc:
        """The invoice's newest document again on `channel`, checked like any delivery (contact,
        consent, form) — a person asked, so "already sent on this channel" does not stop it."""
        rendering = await self._store.latest_rendering(tenant_id, invoice_id)
        if rendering is None:
            raise NotFound(f"nothing was rendered for invoice {invoice_id} yet")
        ident = delivery_id(rendering["_id"], channel, "resend", request_id)
        existing = await self._store.delivery(ident)
        if existing is not None:
            return existing
        rules = await self._rules.get(tenant_id)
        customer = await self._ledger.customer(tenant_id, rendering["customer_id"])
        invoice = await self._ledger.invoice(tenant_id, invoice_id)
        document = planning.Document(
            kind=rendering["kind"],
            forms=frozenset(rendering.get("forms", {})),
            payable=rendering["kind"] != "credit_note" and invoice.balance.minor_units > 0,
        )
        choice = await self.choose(rules, customer, document, only=(channel,))
        if choice.channel is None:
            raise ValueError(f"cannot resend on {channel}: {choice.passed.get(channel, 'not usable')}")
        now = self._clock.now()
        delivery = new_delivery(rendering, channel, "resend", now, request_id=request_id)

        async def work(s: Session) -> None:
            if await self._store.delivery(delivery["_id"], s) is None:
                await self._life.queue(s, delivery, now)

        await in_transaction(self._store.client, work)
        self._on_commit()
        return await self._store.delivery(delivery["_id"]) or delivery


def _rendering_fields(d: Doc) -> Doc:
    return {
        "_id": d["rendering_id"],
        "tenant_id": d["tenant_id"],
        "invoice_id": d["invoice_id"],
        "invoice_number": d["invoice_number"],
        "customer_id": d["customer_id"],
        "kind": d["kind"],
    }


def _rendering(event: DocumentRendered, now: datetime) -> Doc:
    data = event.data
    return {
        # When the dispatcher first heard of it.
        "seen_at": now,
        "_id": data.rendering_id,
        "tenant_id": event.tenant_id,
        "invoice_id": data.invoice_id,
        "invoice_number": data.invoice_number,
        "customer_id": data.customer_id,
        "kind": data.kind,
        "language": data.language,
        "forms_available": list(data.forms_available),
        "invoice_version": data.invoice_version,
        # A dunning step's channel hints (the renderer passes them on from ChargeAdded).
        "channels": list(data.channels),
        # The renderer's span that announced it, in the invoice's trace: planning continues it.
        "traceparent": event_traceparent(event),
        "forms": {},
        "planned": False,
    }


def _as_delivery(rendering: Doc) -> Doc:
    return {**rendering, "_id": "", "rendering_id": rendering["_id"], "channel": ""}


def new_delivery(
    rendering: Doc,
    channel: ChannelName,
    route: str,
    now: datetime,
    *,
    rule: str = "",
    passed: Mapping[ChannelName, str] | None = None,
    request_id: str = "",
) -> Doc:
    return {
        "_id": delivery_id(rendering["_id"], channel, route, request_id),
        "tenant_id": rendering["tenant_id"],
        "invoice_id": rendering["invoice_id"],
        "invoice_number": rendering["invoice_number"],
        "customer_id": rendering["customer_id"],
        "rendering_id": rendering["_id"],
        "kind": rendering["kind"],
        "channel": channel,
        "route": route,
        "rule": rule,
        "status": "queued",
        "attempt": 0,
        "attempts": [],
        "provider_ref": "",
        "code": "",
        "reason": "",
        "passed": dict(passed or {}),
        # The rendering's documents (form → document id): what the send fetches from the hotel.
        "forms": dict(rendering.get("forms", {})),
        "created_at": now,
        "next_attempt_at": now,
        # The invoice's trace, as planning had it: what happens to the delivery can continue it.
        "traceparent": rendering.get("traceparent", ""),
        # When the ledger issued the invoice (planning read it): issue → delivered on /metrics.
        **({"issued_at": rendering["issued_at"]} if rendering.get("issued_at") else {}),
    }


def _issued_at(invoice: lpb.Invoice) -> datetime | None:
    """When the ledger issued the invoice (None when it does not say)."""
    try:
        return datetime.fromisoformat(invoice.created_at) if invoice.created_at else None
    except ValueError:
        return None
