"""Sending: the send timers of queued deliveries, a batch at a time.

Each delivery is built from what the ledger and the invoice hotel hold now (the customer's contact
data is read, never stored here), handed to its channel's adapter with the delivery id as the
idempotency key, and the outcomes of the whole batch are written in one transaction. A crash after
a send and before that transaction leaves the timers leased; when the lease runs out another
replica sends again under the same key and the provider answers "duplicate": the customer gets it
once. Provider errors retry with capped backoff up to `max_attempts`, then the delivery fails and
the tenant's fallback rules take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from fordring.ledger.v1 import ledger_pb2 as lpb
from opentelemetry import metrics

from services.common import attributes as attr
from services.common.clock import Clock, parse_iso_date
from services.common.directory import DirectoryClient
from services.common.errors import NotFound, Unavailable
from services.common.links import invoice_link
from services.common.mongo import Doc, Session, in_slices, in_transaction
from services.common.retry import Backoff
from services.common.telemetry import traced
from services.common.timers import Timer, Timers, timer_doc
from services.dispatcher.adapters.base import ChannelError, Creditor, Outgoing, Payment, SendResult
from services.dispatcher.adapters.renderer import RendererClient
from services.dispatcher.channels import Channels
from services.dispatcher.lifecycle import Lifecycle, Step, send_timer_id
from services.dispatcher.planning import DUNNING_KINDS, invoice_status, recipient_of
from services.dispatcher.recent import RecentLedger
from services.dispatcher.rules import RulesBook
from services.dispatcher.store import CLOSED, DispatcherStore

log = logging.getLogger(__name__)
_meter = metrics.get_meter("fordring.dispatcher")
PROVIDER_SECONDS = _meter.create_histogram(
    "fordring_provider_seconds", description="Time a provider took to take (or refuse) a send", unit="s"
)
# The renderer's forms each channel hands its provider.
NEEDED: dict[str, tuple[str, ...]] = {
    "email": ("email", "pdf"),
    "sms": ("sms",),
    "ehf": ("ehf",),
    "efaktura": ("pdf",),
    "vipps": (),
    "print": ("pdf",),
    "avtalegiro": (),
}


# Send outcomes are recorded at least this often (count, seconds) while a batch is sent.
RECORD_EVERY = 32
RECORD_SECONDS = 0.1


@dataclass(frozen=True)
class Outcome:
    timer: Timer
    delivery: Doc
    what: Literal["sent", "retry", "failed", "cancelled", "stale", "later"]
    result: SendResult | None = None
    error: ChannelError | None = None
    note: str = ""
    # The delivery's id (also when it was not found).
    item: str = ""


# A send timer's deliveries: one (`delivery_id`) or many (`items`, made by planning).
_ITEMS = "items"


def _items(timer: Timer) -> list[str]:
    return (
        [str(i) for i in timer.payload[_ITEMS]] if _ITEMS in timer.payload else [timer.payload["delivery_id"]]
    )


class Sender:
    def __init__(
        self,
        store: DispatcherStore,
        timers: Timers,
        lifecycle: Lifecycle,
        channels: Channels,
        ledger: RecentLedger,
        renderer: RendererClient,
        directory: DirectoryClient,
        rules: RulesBook,
        clock: Clock,
        *,
        public_url: str,
        link_secret: str,
        concurrency: int,
        max_attempts: int,
        retry_first: float,
        retry_cap: float,
        on_commit: Callable[[], None],
    ) -> None:
        self._store = store
        self._timers = timers
        self._life = lifecycle
        self._channels = channels
        self._ledger = ledger
        self._renderer = renderer
        self._directory = directory
        self._rules = rules
        self._clock = clock
        self._public_url = public_url
        self._link_secret = link_secret
        self._slots = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._retry_first = retry_first
        self._retry_cap = retry_cap
        self._on_commit = on_commit

    async def on_send_timers(self, timers: list[Timer]) -> None:
        """Send the deliveries of these timers: one delivery each (`send:<delivery id>`: resends,
        fallbacks, retries) or the deliveries planning queued together (`payload["items"]`)."""
        work = [(t, delivery_id) for t in timers for delivery_id in _items(t)]
        deliveries: dict[str, Doc] = {}
        for ids in in_slices(sorted({delivery_id for _, delivery_id in work})):
            deliveries.update(await self._store.deliveries_by_id(ids))
        cache: dict[str, Awaitable[Any]] = {}
        for tenant_id in {d["tenant_id"] for d in deliveries.values()}:
            await self._rules.get(tenant_id)
        documents = await self._prefetch(list(deliveries.values()))
        await self._ledger.warm(
            (d["tenant_id"], d["customer_id"], d["invoice_id"]) for d in deliveries.values()
        )
        with traced("dispatcher.send_batch", attributes={attr.BATCH_SIZE: len(work)}):
            attempts = [
                asyncio.ensure_future(self._attempt_item(t, item, deliveries.get(item), cache, documents))
                for t, item in work
            ]
            # Outcomes are written as they come, a few at a time: what a crash leaves unrecorded
            # (and sends again, under the same idempotency key) is the sends of the last moment,
            # not the whole batch.
            done: list[Outcome] = []
            # Each timer's deliveries not recorded yet; a timer with none left is done.
            left = {t.id: set(_items(t)) for t in timers}
            recorded: set[str] = set()
            keep = asyncio.create_task(self._keep_leases(timers, recorded))
            last = time.monotonic()
            try:
                for finished in asyncio.as_completed(attempts):
                    done.append(await finished)
                    if len(done) >= RECORD_EVERY or time.monotonic() - last >= RECORD_SECONDS:
                        await self._record_now(done, left)
                        recorded.update(timer_id for timer_id, items in left.items() if not items)
                        done, last = [], time.monotonic()
                await self._record_now(done, left)
            finally:
                keep.cancel()
                # The database went away: the sends not yet recorded come again after the lease.
                for attempt in attempts:
                    attempt.cancel()
        self._timers.wake()

    async def _keep_leases(self, timers: list[Timer], recorded: set[str]) -> None:
        """While slow providers hold a batch, its timers stay ours (none is sent twice meanwhile)."""
        while True:
            await asyncio.sleep(self._timers.lease_seconds / 3)
            with contextlib.suppress(Exception):  # the lease runs out: the sends come again, deduped
                await self._timers.extend([t.id for t in timers if t.id not in recorded])

    async def _record_now(self, outcomes: list[Outcome], left: dict[str, set[str]]) -> None:
        """The outcomes in one transaction, with their timers done (or their deliveries taken out of
        them); `left` is updated once it committed."""
        if not outcomes:
            return
        now = self._clock.now()
        taken: dict[str, list[str]] = {}
        for o in outcomes:
            if _ITEMS in o.timer.payload:
                taken.setdefault(o.timer.id, []).append(o.item)

        async def work(s: Session) -> None:
            await self._record(s, outcomes, now)
            timers = {o.timer.id: o.timer for o in outcomes}
            for timer_id, items in taken.items():
                last = left[timer_id] <= set(items)
                await self._timers.take_items(timers[timer_id], items, last=last, session=s)

        await in_transaction(self._store.client, work)
        for o in outcomes:
            left[o.timer.id].discard(o.item)
        self._on_commit()

    async def _attempt_item(
        self,
        timer: Timer,
        item: str,
        d: Doc | None,
        cache: dict[str, Awaitable[Any]],
        documents: dict[str, bytes],
    ) -> Outcome:
        return replace(await self._attempt(timer, d, cache, documents), item=item)

    async def _again(self, s: Session, o: Outcome, delay: float, why: str) -> None:
        """Send this delivery again after `delay` seconds: its own timer, or a timer of its own when
        it came in a timer of many (the others are not held back)."""
        if _ITEMS not in o.timer.payload:
            await self._timers.retry(o.timer, delay, why, session=s)
            return
        doc = timer_doc(
            send_timer_id(o.item),
            o.timer.kind,
            self._clock.now() + timedelta(seconds=delay),
            {"delivery_id": o.item},
            tenant_id=o.timer.tenant_id,
        )
        doc.update(attempts=o.timer.attempts + 1, last_error=why[:500])
        await self._timers.schedule_many([doc], session=s)

    async def _prefetch(self, deliveries: list[Doc]) -> dict[str, bytes]:
        """The documents the batch sends, a call per tenant (each send would cost the invoice hotel
        a call and two reads); what fails here is fetched by the send itself."""
        wanted: dict[str, set[str]] = {}
        for d in deliveries:
            if d.get("status") != "queued":
                continue
            forms = d.get("forms") or {}
            for form in NEEDED.get(d["channel"], ()):
                if form in forms:
                    wanted.setdefault(d["tenant_id"], set()).add(forms[form])
        found: dict[str, bytes] = {}
        for tenant_id, ids in wanted.items():
            # In slices of 100 (`in_slices`): the invoice hotel reads them with `$in`, which the
            # embedded server matches against the whole list for every document it finds.
            for some in in_slices(sorted(ids)):
                with contextlib.suppress(Unavailable):
                    found.update(await self._renderer.documents(tenant_id, some))
        return found

    async def _attempt(
        self, timer: Timer, d: Doc | None, cache: dict[str, Awaitable[Any]], documents: dict[str, bytes]
    ) -> Outcome:
        if d is None or d["status"] != "queued":
            return Outcome(timer, d or {}, "stale")
        async with self._slots:
            try:
                out, cancel = await self._outgoing(d, cache, documents)
            except (Unavailable, NotFound) as exc:
                return Outcome(timer, d, "later", note=str(exc))
            if cancel:
                return Outcome(timer, d, "cancelled", note=cancel)
            adapter = self._channels.adapters.get(d["channel"])
            if adapter is None:
                error = ChannelError(
                    f"no {d['channel']} provider is configured", retryable=False, code="no_provider"
                )
                return Outcome(timer, d, "failed", error=error)
            started = time.perf_counter()
            try:
                result = await adapter.send(out)
            except ChannelError as exc:
                what: Literal["retry", "failed"] = (
                    "retry" if exc.retryable and out.attempt < self._max_attempts else "failed"
                )
                if exc.retryable and what == "failed":
                    exc = ChannelError(
                        f"gave up after {out.attempt} attempts: {exc.reason}",
                        retryable=False,
                        code=exc.code or "retries_exhausted",
                    )
                return Outcome(timer, d, what, error=exc)
            except Exception as exc:  # an adapter bug must not stop the queue: retried, then failed
                log.exception("dispatcher: the %s adapter failed unexpectedly", d["channel"])
                error = ChannelError(f"{type(exc).__name__}: {exc}", retryable=True, code="adapter_error")
                return Outcome(
                    timer, d, "retry" if out.attempt < self._max_attempts else "failed", error=error
                )
            finally:
                PROVIDER_SECONDS.record(time.perf_counter() - started, {"channel": d["channel"]})
            return Outcome(timer, d, "sent", result=result)

    async def _outgoing(
        self, d: Doc, cache: dict[str, Awaitable[Any]], prefetched: dict[str, bytes]
    ) -> tuple[Outgoing, str]:
        """The delivery as its adapter needs it, and why not to send it (paid meanwhile), if so."""
        tenant_id = d["tenant_id"]

        def once(key: str, make: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
            if key not in cache:
                cache[key] = asyncio.ensure_future(make())
            return cache[key]

        forms: dict[str, str] = d.get("forms") or (await self._store.rendering(d["rendering_id"]) or {}).get(
            "forms", {}
        )
        invoice: lpb.Invoice = await once(
            f"i:{d['invoice_id']}", lambda: self._ledger.invoice(tenant_id, d["invoice_id"])
        )
        status = invoice_status(invoice)
        if status in CLOSED and (d["kind"] in DUNNING_KINDS or d["route"] == "fallback"):
            return _placeholder(d), f"the invoice is {status}"
        customer: lpb.Customer = await once(
            f"c:{d['customer_id']}", lambda: self._ledger.customer(tenant_id, d["customer_id"])
        )
        profile = await once(
            f"p:{tenant_id}:{invoice.profile_version}",
            lambda: self._directory.profile(tenant_id, invoice.profile_version),
        )
        wanted = [form for form in NEEDED.get(d["channel"], ()) if form in forms]
        missing = [form for form in wanted if forms[form] not in prefetched]
        fetched = await asyncio.gather(*(self._renderer.document(tenant_id, forms[form]) for form in missing))
        documents = {form: prefetched[forms[form]] for form in wanted if form not in missing}
        documents.update(zip(missing, fetched, strict=True))
        payment = None
        if d["kind"] != "credit_note" and invoice.balance.minor_units > 0:
            payment = Payment(
                amount_minor=invoice.balance.minor_units,
                currency=invoice.balance.currency or invoice.currency,
                due_date=parse_iso_date(invoice.due_date),
                kid=invoice.kid,
                payment_link=invoice_link(self._public_url, d["invoice_id"], self._link_secret),
            )
        creditor = Creditor(
            tenant_id=tenant_id,
            legal_name=profile.legal_name,
            org_number=profile.org_number,
            jurisdiction=profile.jurisdiction,
            email=profile.email,
            phone=profile.phone,
            bank_account=profile.bank_account,
            # AvtaleGiro claims are paid to the account the creditor's agreement with Nets is on.
            settings={"avtalegiro.agreement": profile.bank_account} if profile.bank_account else {},
        )
        out = Outgoing(
            delivery_id=d["_id"],
            tenant_id=tenant_id,
            invoice_id=d["invoice_id"],
            invoice_number=d["invoice_number"],
            kind=d["kind"],
            channel=d["channel"],
            recipient=recipient_of(customer),
            creditor=creditor,
            documents=documents,
            payment=payment,
            attempt=int(d.get("attempt", 0)) + 1,
        )
        return out, ""

    async def _record(self, s: Session, outcomes: list[Outcome], now: datetime) -> None:
        step = Step()
        done: list[Timer] = []
        sent: list[tuple[Doc, str, str, str, int]] = []
        for o in outcomes:
            d = o.delivery
            attempt = int(d.get("attempt", 0)) + 1
            match o.what:
                case "stale":
                    done.append(o.timer)
                case "later":
                    await self._again(s, o, Backoff.delay_for(o.timer.attempts, first=2.0, cap=300), o.note)
                case "cancelled":
                    _merge(step, await self._life.cancelled(s, d, now, o.note))
                    done.append(o.timer)
                case "sent":
                    assert o.result is not None
                    sent.append((d, o.result.state, o.result.provider_ref, o.result.detail, attempt))
                    done.append(o.timer)
                case "retry":
                    assert o.error is not None
                    delay = min(self._retry_cap, self._retry_first * 2 ** (attempt - 1))
                    await self._life.retry(
                        s,
                        d,
                        now,
                        attempt=attempt,
                        code=o.error.code,
                        detail=o.error.reason,
                        at=now + timedelta(seconds=delay),
                    )
                    await self._again(s, o, delay, o.error.code or o.error.reason)
                case "failed":
                    assert o.error is not None
                    _merge(
                        step,
                        await self._life.failed(
                            s,
                            d,
                            now,
                            code=o.error.code or "refused",
                            reason=o.error.reason,
                            contact=o.error.contact,
                            attempt=attempt,
                        ),
                    )
                    done.append(o.timer)
        _merge(step, await self._life.sent_many(s, sent, now))
        await self._life.write(s, step)
        # Timers of many deliveries are taken care of by the caller (`_record_now`).
        await self._timers.complete([t.id for t in done if _ITEMS not in t.payload], session=s)

    # --- batches (print, AvtaleGiro) ---------------------------------------------------------

    async def on_batch_timers(self, timers: list[Timer], every: float) -> None:
        for timer in timers:
            adapter = next(
                (a for a in self._channels.batching() if a.channel == timer.payload.get("channel")), None
            )
            if adapter is not None:
                closed = await adapter.close_batch()
                if closed:
                    log.info("dispatcher: %s batch %s handed over", adapter.channel, closed)
            now = self._clock.now()

            async def again(s: Session, timer: Timer = timer, now: datetime = now) -> None:
                await self._timers.complete([timer.id], session=s)
                await self._timers.schedule(
                    timer.id, timer.kind, now + timedelta(seconds=every), timer.payload, session=s
                )

            await in_transaction(self._store.client, again)


def _merge(into: Step, step: Step) -> None:
    into.events.extend(step.events)
    into.deviations.extend(step.deviations)


def _placeholder(d: Doc) -> Outgoing:
    """Never sent: stands for a delivery cancelled before it was built."""
    return Outgoing(
        delivery_id=d["_id"],
        tenant_id=d["tenant_id"],
        invoice_id=d["invoice_id"],
        invoice_number=d["invoice_number"],
        kind=d["kind"],
        channel=d["channel"],
        recipient=recipient_of(lpb.Customer(id=d["customer_id"])),
        creditor=Creditor(tenant_id=d["tenant_id"], legal_name="", org_number=""),
        documents={},
    )


__all__ = ["NEEDED", "Outcome", "Sender", "send_timer_id"]
