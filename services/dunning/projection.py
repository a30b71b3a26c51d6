"""What the dunning service keeps of the other services' events, and the timers it moves by them.

From the ledger (invoice topic): each invoice's state, newest version wins; the payments and credit
notes that reduced it, with their dates (interest); the steps the ledger applied (ChargeAdded) or
refused (ProposalRejected). From the matcher (payment topic): payments not yet applied, which hold
every invoice they may pay until the ledger applies them, an operator decides them, or they turn out
to be something else. Every write is a `$set` keyed by what it is about, so an event applied twice
changes nothing; the one thing made once, a hand-off's export record and its CollectionHandoff event,
is keyed by the action id and written in one transaction.

Each case that changed gets its timer brought forward to its next look (Stepper.timer_ops): a paid
invoice's timer is deleted, a held one is looked at again the moment its hold ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import UpdateOne

from services.common.clock import Clock
from services.common.events import (
    DUNNING_TOPIC,
    ChargeAdded,
    CollectionHandoff,
    CollectionHandoffData,
    CreditNoteIssued,
    Delivered,
    DeliveryFailed,
    Event,
    HandoffCharge,
    HandoffNotice,
    InvoiceSummary,
    PaymentApplied,
    PaymentReceived,
    PaymentResolved,
    PaymentUnapplied,
    ProposalRejected,
)
from services.common.mongo import Doc, Session, in_slices, in_transaction
from services.common.outbox import outbox_doc
from services.dunning.cases import summary_fields
from services.dunning.domain.calendar import TIMEZONES
from services.dunning.stepping import Stepper, Tenants
from services.dunning.store import DunningStore

log = logging.getLogger(__name__)


class Projection:
    def __init__(
        self,
        store: DunningStore,
        stepper: Stepper,
        tenants: Tenants,
        clock: Clock,
        *,
        rejected_recheck: float,
        on_commit: Any = lambda: None,
        wake: Any = lambda: None,
    ) -> None:
        self._store = store
        self._stepper = stepper
        self._tenants = tenants
        self._clock = clock
        self._rejected_recheck = rejected_recheck
        self._on_commit = on_commit
        self._wake = wake

    # --- the ledger's invoice events -------------------------------------------------------

    async def on_invoice_batch(self, events: list[Event]) -> dict[str, Exception]:
        await self.apply_invoice_events(events)
        return {}

    async def on_invoice_event(self, event: Event) -> None:
        await self.apply_invoice_events([event])

    async def apply_invoice_events(self, events: Sequence[Event]) -> None:
        now = self._clock.now()
        latest: dict[str, tuple[str, InvoiceSummary]] = {}
        sets: dict[str, Doc] = {}
        unsets: dict[str, Doc] = {}
        applied_payments: list[tuple[str, str]] = []
        handoffs: list[ChargeAdded] = []
        rejections: list[ProposalRejected] = []

        def put(invoice_id: str, field: str, value: Any) -> None:
            sets.setdefault(invoice_id, {})[field] = value

        for event in events:
            if isinstance(event, ProposalRejected):
                rejections.append(event)
                continue
            summary: Any = getattr(event.data, "invoice", None)
            if not isinstance(summary, InvoiceSummary) or summary.kind != "invoice":
                continue
            iid = summary.invoice_id
            known = latest.get(iid)
            if known is None or known[1].version <= summary.version:
                latest[iid] = (event.tenant_id, summary)
            if isinstance(event, PaymentApplied):
                put(
                    iid,
                    f"payments.{event.data.payment_id}",
                    {"on": event.data.paid_on, "amount": event.data.amount_minor},
                )
                applied_payments.append((event.tenant_id, event.data.payment_id))
            elif isinstance(event, PaymentUnapplied):
                unsets.setdefault(iid, {})[f"payments.{event.data.payment_id}"] = ""
            elif isinstance(event, CreditNoteIssued):
                note = event.data.credit_note
                put(
                    iid,
                    f"credits.{note.invoice_id}",
                    {"on": note.issue_date, "amount": event.data.amount_minor},
                )
            elif isinstance(event, ChargeAdded):
                await self._charge_added(event, put, now)
                if event.data.action == "collection_handoff":
                    handoffs.append(event)
        # The newest state of each invoice, where it is newer than the stored one.
        stored = await self._versions(list(latest))
        ops: list[UpdateOne] = []
        for iid in {*latest, *sets, *unsets}:
            change: Doc = {"$set": {"changed_at": now, **sets.get(iid, {})}}
            if iid in latest:
                tenant_id, summary = latest[iid]
                if stored.get(iid, -1) <= summary.version:
                    change["$set"].update(summary_fields(tenant_id, summary))
                    if summary.status in ("paid", "overpaid"):
                        change["$set"].update(_settled(summary, sets.get(iid, {})))
            if iid in unsets:
                change["$unset"] = unsets[iid]
            ops.append(UpdateOne({"_id": iid}, change, upsert=iid in latest))
        if ops:
            await self._store.cases.bulk_write(ops, ordered=False)
        changed = set(latest) | set(sets) | set(unsets)
        if applied_payments:
            changed |= await self._payments_applied(applied_payments)
        for event in rejections:
            changed |= await self._rejected(event, now)
        for event in handoffs:
            await self._handed_off(event, now)
        await self.retime(changed)

    async def _versions(self, ids: list[str]) -> dict[str, int]:
        stored: dict[str, int] = {}
        for some in in_slices(ids):
            async for d in self._store.cases.find({"_id": {"$in": some}}, projection={"version": 1}):
                stored[d["_id"]] = d.get("version", -1)
        return stored

    async def _charge_added(self, event: ChargeAdded, put: Any, now: datetime) -> None:
        """The ledger applied a dunning action: ours is marked applied; one proposed elsewhere (by an
        operator, another system) becomes a step of the case as the ledger recorded it."""
        data = event.data
        iid = data.invoice.invoice_id
        case = await self._store.cases.find_one({"_id": iid}, projection={f"steps.{data.action_id}": 1})
        step = (case or {}).get("steps", {}).get(data.action_id)
        prefix = f"steps.{data.action_id}"
        put(iid, f"{prefix}.state", "applied")
        put(iid, f"{prefix}.applied_at", now)
        put(iid, "rejections", 0)
        if step is None:
            info = await self._tenants.of(event.tenant_id)
            on = event.occurred_at.astimezone(TIMEZONES[info.jurisdiction]).date().isoformat()
            put(iid, f"{prefix}.kind", data.action)
            put(iid, f"{prefix}.on", on)
            put(iid, f"{prefix}.at", event.occurred_at)
            put(iid, f"{prefix}.deadline", data.deadline)
            put(
                iid,
                f"{prefix}.fee",
                data.charge_minor if data.action in ("reminder", "collection_notice") else 0,
            )
            put(iid, f"{prefix}.interest", data.charge_minor if data.action == "late_interest" else 0)
            put(iid, f"{prefix}.channels", list(data.channels))
            put(iid, f"{prefix}.index", -1)

    async def _rejected(self, event: ProposalRejected, now: datetime) -> set[str]:
        data = event.data
        if data.proposal_type == "PaymentMatched" and data.payment_id:
            # The ledger refused the matcher's proposal: the payment goes to the matcher's review queue,
            # and holds its invoices as one in review.
            return await self._set_pending(data.payment_id, "review", only_held=True)
        if data.proposal_type != "DunningActionTaken" or not data.invoice_id:
            return set()
        case = await self._store.cases.find_one({"_id": data.invoice_id})
        if case is None:
            return set()
        for aid, step in case.get("steps", {}).items():
            if step.get("event_id") == data.proposal_event_id and step.get("state") == "proposed":
                tries = int(case.get("rejections", 0)) + 1
                retry = now + timedelta(seconds=self._rejected_recheck * min(2 ** (tries - 1), 64))
                await self._store.cases.update_one(
                    {"_id": data.invoice_id, f"steps.{aid}.state": "proposed"},
                    {
                        "$set": {
                            f"steps.{aid}.state": "rejected",
                            f"steps.{aid}.detail": f"{data.reason}: {data.detail}",
                            "rejections": tries,
                            "retry_after": retry,
                            "changed_at": now,
                        },
                        "$push": {
                            "skipped": {
                                "$each": [f"{step['kind']} refused by the ledger: {data.reason}"],
                                "$slice": -20,
                            }
                        },
                    },
                )
                return {data.invoice_id}
        return set()

    async def _handed_off(self, event: ChargeAdded, now: datetime) -> None:
        """The claim is the collection agency's: one export record and one CollectionHandoff (keyed by
        the action, made once)."""
        data = event.data
        iid = data.invoice.invoice_id
        case = await self._store.cases.find_one({"_id": iid})
        if case is None:
            return
        info = await self._tenants.of(event.tenant_id)
        tz = TIMEZONES[info.jurisdiction]
        day = event.occurred_at.astimezone(tz).date().isoformat()
        steps = sorted(case.get("steps", {}).values(), key=lambda s: s.get("on", ""))
        summary = data.invoice
        handoff = CollectionHandoffData(
            action_id=data.action_id,
            invoice_id=iid,
            invoice_number=summary.invoice_number,
            customer_id=summary.customer_id,
            customer_number=summary.customer_number,
            customer_kind=summary.customer_kind,
            jurisdiction=info.jurisdiction,
            currency=summary.currency,
            due_date=summary.due_date,
            principal_minor=summary.gross_minor - summary.credited_minor,
            paid_minor=summary.paid_minor,
            charges_minor=summary.charges_minor,
            balance_minor=summary.balance_minor,
            interest_to_date_minor=data.interest_to_date_minor,
            handed_off_on=day,
            notices=[
                HandoffNotice(
                    action=s["kind"],
                    sent_on=s.get("on", ""),
                    deadline=s.get("deadline", ""),
                    fee_minor=s.get("fee", 0),
                )
                for s in steps
                if s.get("state") == "applied" and s.get("kind") in ("nudge", "reminder", "collection_notice")
            ],
            charges=[
                HandoffCharge(
                    kind=kind,
                    amount_minor=int(s.get(field, 0)),
                    description=s["kind"],
                    added_at=s.get("on", ""),
                )
                for s in steps
                if s.get("state") == "applied"
                for kind, field in (
                    ("fee", "fee"),
                    ("interest", "interest"),
                    ("compensation", "compensation"),
                )
                if s.get(field)
            ],
        )
        out = CollectionHandoff(tenant_id=event.tenant_id, subject=iid, occurred_at=now, data=handoff)

        async def work(s: Session) -> None:
            if await self._store.exports.find_one({"_id": data.action_id}, session=s) is not None:
                return
            await self._store.exports.insert_one(
                {
                    "_id": data.action_id,
                    "tenant_id": event.tenant_id,
                    "day": day,
                    "invoice_id": iid,
                    "claim": handoff.model_dump(mode="json"),
                    "at": now,
                },
                session=s,
            )
            await self._store.db["outbox"].insert_one(outbox_doc(out, DUNNING_TOPIC), session=s)

        await in_transaction(self._store.client, work)
        self._on_commit()

    # --- the matcher's payment events -------------------------------------------------------

    async def on_payment_batch(self, events: list[Event]) -> dict[str, Exception]:
        await self.apply_payment_events(events)
        return {}

    async def on_payment_event(self, event: Event) -> None:
        await self.apply_payment_events([event])

    async def apply_payment_events(self, events: Sequence[Event]) -> None:
        changed: set[str] = set()
        for event in events:
            if isinstance(event, PaymentReceived):
                changed |= await self._received(event)
            elif isinstance(event, PaymentResolved):
                changed |= await self._resolved(event)
        await self.retime(changed)

    async def _received(self, event: PaymentReceived) -> set[str]:
        data = event.data
        info = await self._tenants.of(event.tenant_id)
        day = event.occurred_at.astimezone(TIMEZONES[info.jurisdiction]).date().isoformat()
        await self._store.bank_days.update_one(
            {"_id": event.tenant_id}, {"$max": {"last_day": day}}, upsert=True
        )
        if data.status == "reversal" or data.direction == "debit" or not data.candidate_invoice_ids:
            return set()
        status = "review" if data.status == "review" else "unapplied"
        await self._store.payments.update_one(
            {"_id": data.payment_id},
            {
                "$setOnInsert": {"tenant_id": event.tenant_id, "status": status, "at": event.occurred_at},
                "$addToSet": {"invoice_ids": {"$each": list(data.candidate_invoice_ids)}},
            },
            upsert=True,
        )
        return await self._set_pending(data.payment_id, status)

    async def _resolved(self, event: PaymentResolved) -> set[str]:
        data = event.data
        if data.resolution == "allocated":
            # A PaymentMatched follows: the allocated invoices stay held until the ledger applies it.
            doc = await self._store.payments.find_one_and_update(
                {"_id": data.payment_id},
                {"$set": {"status": "unapplied", "resolved_to": list(data.invoice_ids)}},
            )
            changed = await self._set_pending(data.payment_id, "unapplied")
            others = [i for i in (doc or {}).get("invoice_ids", []) if i not in data.invoice_ids]
            return changed | await self._unset_pending(data.payment_id, others)
        await self._store.payments.update_one(
            {"_id": data.payment_id}, {"$set": {"status": "done", "done_at": self._clock.now()}}
        )
        doc = await self._store.payments.find_one({"_id": data.payment_id})
        return await self._unset_pending(data.payment_id, (doc or {}).get("invoice_ids", []))

    async def _payments_applied(self, applied: Iterable[tuple[str, str]]) -> set[str]:
        changed: set[str] = set()
        for tenant_id, payment_id in dict.fromkeys(applied):
            doc = await self._store.payments.find_one_and_update(
                {"_id": payment_id},
                {
                    "$set": {"status": "done", "done_at": self._clock.now()},
                    "$setOnInsert": {"tenant_id": tenant_id, "invoice_ids": []},
                },
                upsert=True,
            )
            changed |= await self._unset_pending(payment_id, (doc or {}).get("invoice_ids", []))
        return changed

    async def _set_pending(self, payment_id: str, status: str, *, only_held: bool = False) -> set[str]:
        doc = await self._store.payments.find_one({"_id": payment_id})
        if doc is None or doc.get("status") == "done":
            # Applied or decided before this event came (the topics are read independently).
            return set()
        if only_held:
            await self._store.payments.update_one({"_id": payment_id}, {"$set": {"status": status}})
        ids = list(doc.get("resolved_to") or doc.get("invoice_ids", []))
        if ids:
            await self._store.cases.bulk_write(
                [
                    UpdateOne(
                        {"_id": iid},
                        {
                            "$set": {f"pending.{payment_id}": status},
                            "$setOnInsert": {"tenant_id": doc["tenant_id"]},
                        },
                        upsert=True,
                    )
                    for iid in ids
                ],
                ordered=False,
            )
        return set(ids)

    async def _unset_pending(self, payment_id: str, invoice_ids: Sequence[str]) -> set[str]:
        if invoice_ids:
            await self._store.cases.update_many(
                {"_id": {"$in": list(invoice_ids)}}, {"$unset": {f"pending.{payment_id}": ""}}
            )
        return set(invoice_ids)

    # --- the dispatcher's delivery events ----------------------------------------------------

    async def on_delivery_batch(self, events: list[Event]) -> dict[str, Exception]:
        await self.apply_delivery_events(events)
        return {}

    async def on_delivery_event(self, event: Event) -> None:
        await self.apply_delivery_events([event])

    async def apply_delivery_events(self, events: Sequence[Event]) -> None:
        """An invoice delivered as an AvtaleGiro claim or an eFaktura is drawn from the payer's account
        on its due date: no step goes until that draw's outcome is in the bank files. A final failure
        (the agreement was cancelled, the bank refused it) lifts the hold."""
        ops: list[UpdateOne] = []
        touched: set[str] = set()
        for event in events:
            if not isinstance(event, Delivered | DeliveryFailed):
                continue
            data = event.data
            if data.channel not in ("avtalegiro", "efaktura") or data.document_kind != "invoice":
                continue
            field = f"debits.{data.delivery_id}"
            touched.add(data.invoice_id)
            if isinstance(event, Delivered):
                change: Doc = {
                    "$set": {field: {"channel": data.channel}},
                    "$setOnInsert": {"tenant_id": event.tenant_id},
                }
                ops.append(UpdateOne({"_id": data.invoice_id}, change, upsert=True))
            elif data.final:
                ops.append(UpdateOne({"_id": data.invoice_id}, {"$unset": {field: ""}}))
        if ops:
            await self._store.cases.bulk_write(ops, ordered=False)
            await self.retime(touched)

    # --- timers ------------------------------------------------------------------------------

    async def retime(self, invoice_ids: Iterable[str]) -> None:
        """Bring the changed cases' timers to their next look (or delete them: the case is done)."""
        ids = list(invoice_ids)
        if not ids:
            return
        cases: list[Doc] = []
        for some in in_slices(ids):
            cases.extend(await self._store.cases.find({"_id": {"$in": some}}).to_list())
        now = self._clock.now()
        ops = await self._stepper.timer_ops(cases, now)
        if ops:
            await self._stepper.timers.collection.bulk_write(ops, ordered=False)
            self._wake()


def _settled(summary: InvoiceSummary, sets: Doc) -> Doc:
    """When a paid invoice was settled and how late (the payer history)."""
    days: list[str] = [v["on"] for k, v in sets.items() if k.startswith("payments.")]
    if not days:
        return {}
    settled_on = max(days)
    late = (datetime.fromisoformat(settled_on) - datetime.fromisoformat(summary.due_date)).days
    return {"settled_on": settled_on, "days_late": max(0, late)}
