"""The ledger's use cases. Each change writes the invoice (with its history entry), the journal
postings and the outgoing events in one MongoDB transaction."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from pymongo.errors import DuplicateKeyError

from services.common.bus import record_processed
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    FordringError,
    InvalidArgument,
    NotFound,
    Violations,
)
from services.common.events import (
    CUSTOMER_TOPIC,
    INVOICE_TOPIC,
    ChargeAdded,
    ChargeAddedData,
    CreditNoteIssued,
    CreditNoteIssuedData,
    CustomerCreditChanged,
    CustomerCreditChangedData,
    CustomerUpserted,
    CustomerUpsertedData,
    DunningActionTaken,
    Event,
    InvoiceOverdue,
    InvoiceOverdueData,
    InvoiceWrittenOff,
    InvoiceWrittenOffData,
    PaymentApplied,
    PaymentAppliedData,
    PaymentMatched,
    ProposalRejected,
    ProposalRejectedData,
)
from services.common.ids import new_id
from services.common.money import UnknownCurrency, check_currency
from services.common.mongo import Doc, Session, in_transaction
from services.common.outbox import add_to_outbox
from services.ledger.documents import (
    Ctx,
    changed_invoice,
    customer_fields,
    history_entry,
    journal_entry,
    position_of,
    summary,
)
from services.ledger.domain import journal
from services.ledger.domain.customer import CustomerData, validate_customer
from services.ledger.domain.invoice import (
    IssueCreditNote,
    check_credit_note,
    line_doc,
    line_from_doc,
    parse_date,
)
from services.ledger.domain.status import (
    DunningStage,
    InvoiceStatus,
    check_can_credit,
    check_can_receive_payment,
    check_can_write_off,
    dunning_rejection,
    dunning_stage_after,
)
from services.ledger.store import ConcurrentChange, LedgerStore, customer_id_for

log = logging.getLogger(__name__)
T = TypeVar("T")

PROPOSALS_CONSUMER = "ledger"
_HISTORY_TYPE = {
    "reminder": "reminded",
    "collection_notice": "collection_notice",
    "collection_handoff": "collection_handoff",
    "late_interest": "interest_added",
    "compensation": "compensation_added",
}


@dataclass(frozen=True)
class AllocationRequest:
    invoice_id: str
    invoice_number: str
    amount_minor: int


@dataclass(frozen=True)
class RecordPayment:
    idempotency_key: str
    amount_minor: int
    currency: str
    paid_on: str
    customer_number: str
    allocations: tuple[AllocationRequest, ...]
    reference: str = ""
    payer_account: str = ""

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.__dict__, default=str, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class PaymentResult:
    payment_id: str
    invoices: list[Doc]
    unallocated_minor: int
    currency: str
    created: bool


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


class Ledger:
    def __init__(self, store: LedgerStore, on_commit: Callable[[], None]) -> None:
        self.store = store
        self._on_commit = on_commit
        self._series_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def _txn(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """One transaction, retried when an invoice changed under us (optimistic concurrency)."""
        for _ in range(5):
            try:
                result = await in_transaction(self.store.client, work)
            except ConcurrentChange:
                continue
            self._on_commit()
            return result
        raise FailedPrecondition(
            "the invoice kept changing while we wrote; try again", reason="CONCURRENT_CHANGE"
        )

    async def _load(self, session: Session, ctx: Ctx, invoice_id: str) -> Doc:
        doc = await self.store.invoices.find_one(
            {"_id": invoice_id, "tenant_id": ctx.tenant.id}, session=session
        )
        if doc is None:
            raise NotFound(f"no invoice {invoice_id}")
        return doc

    async def resolve_invoice(self, ctx: Ctx, *, invoice_id: str = "", invoice_number: str = "") -> Doc:
        ref = {"invoice_id": invoice_id} if invoice_id else {"invoice_number": invoice_number}
        if not (invoice_id or invoice_number):
            raise InvalidArgument([FieldViolation("invoice_ref", "give invoice_id or invoice_number")])
        doc = await self.store.invoice(ctx.tenant.id, **ref)
        if doc is None:
            raise NotFound(f"no invoice {invoice_id or invoice_number}")
        return doc

    # --- customers -------------------------------------------------------------------------------

    async def upsert_customer(self, ctx: Ctx, data: CustomerData) -> tuple[Doc, bool]:
        v = Violations()
        customer = validate_customer(data, v)
        v.raise_if_any()
        cid = customer_id_for(ctx.tenant.id, customer.number)
        fields = customer_fields(customer)

        async def work(s: Session) -> tuple[Doc, bool]:
            found = await self.store.customers.find_one({"_id": cid}, session=s)
            if found is not None and all(found.get(k) == val for k, val in fields.items()):
                return found, False
            version = (found or {}).get("version", 0) + 1
            doc = {
                **(
                    found
                    or {"_id": cid, "tenant_id": ctx.tenant.id, "created_at": ctx.now, "credit_balances": {}}
                ),
                **fields,
                "version": version,
                "updated_at": ctx.now,
            }
            await self.store.customers.replace_one({"_id": cid}, doc, upsert=True, session=s)
            event: Event = CustomerUpserted(
                tenant_id=ctx.tenant.id,
                subject=cid,
                occurred_at=ctx.now,
                data=CustomerUpsertedData(
                    customer_id=cid,
                    customer_number=customer.number,
                    kind=customer.kind,
                    language=customer.language,
                    channel_preferences=list(customer.channel_preferences),
                    email_consent=customer.email_consent,
                    sms_consent=customer.sms_consent,
                    version=version,
                ),
            )
            await add_to_outbox(self.store.db, s, [(event, CUSTOMER_TOPIC)])
            return doc, found is None

        return await self._txn(work)

    # --- credit notes ----------------------------------------------------------------------------

    async def issue_credit_note(self, ctx: Ctx, cmd: IssueCreditNote) -> tuple[Doc, Doc, bool]:
        tenant = ctx.tenant
        fingerprint = cmd.fingerprint()
        existing = await self.store.invoice(tenant.id, kind="credit_note", external_id=cmd.idempotency_key)
        if existing is not None:
            if existing["request_hash"] != fingerprint:
                raise AlreadyExists(
                    f"idempotency key {cmd.idempotency_key!r} was already used for credit note "
                    f"{existing['invoice_number']} with a different payload"
                )
            invoice = await self.store.invoice(tenant.id, invoice_id=existing["credits_invoice_id"])
            assert invoice is not None
            return existing, invoice, False
        invoice = await self.resolve_invoice(
            ctx, invoice_id=cmd.invoice_id, invoice_number=cmd.invoice_number
        )
        if invoice["kind"] != "invoice":
            raise InvalidArgument(
                [FieldViolation("invoice_ref", "a credit note credits an invoice, not a credit note")]
            )
        position = position_of(invoice)
        draft = check_credit_note(
            cmd,
            invoice_lines=tuple(line_from_doc(d) for d in invoice["lines"]),
            invoice_issue_date=date.fromisoformat(invoice["issue_date"]),
            already_credited=position.credited,
            left_to_credit=position.left_to_credit,
            jurisdiction=tenant.jurisdiction,
            today=ctx.today,
        )
        amount = draft.totals.gross_minor

        async def work(s: Session) -> tuple[Doc, Doc]:
            inv = await self._load(s, ctx, invoice["_id"])
            pos = position_of(inv)
            check_can_credit(InvoiceStatus(inv["status"]), pos, amount)
            to_customer_credit = max(0, amount - pos.balance)
            if cmd.credit_note_number:
                number = cmd.credit_note_number
            else:
                seq = await self.store.take_numbers(s, tenant.id, "credit_note", 1)
                number = f"{tenant.credit_note_prefix}{seq}"
            cn_id = new_id()
            event_id = new_id()
            totals = draft.totals
            credit_note: Doc = {
                **{
                    k: inv[k]
                    for k in (
                        "tenant_id",
                        "customer_id",
                        "customer_number",
                        "customer_name",
                        "customer_kind",
                        "currency",
                        "buyer_reference",
                        "order_reference",
                        "contract_reference",
                        "language",
                    )
                },
                "_id": cn_id,
                "kind": "credit_note",
                "external_id": cmd.idempotency_key,
                "request_hash": fingerprint,
                "invoice_number": number,
                "kid": "",
                "issue_date": draft.issue_date.isoformat(),
                "due_date": draft.issue_date.isoformat(),
                "lines": [line_doc(ln) for ln in draft.lines],
                "vat_breakdown": [
                    {
                        "vat_rate": str(x.rate),
                        "taxable_amount_minor": x.taxable_minor,
                        "vat_amount_minor": x.vat_minor,
                    }
                    for x in totals.vat_breakdown
                ],
                "net_minor": totals.net_minor,
                "vat_minor": totals.vat_minor,
                "gross_minor": amount,
                "charges": [],
                "charges_minor": 0,
                "allocations": [],
                "paid_minor": 0,
                "credited_minor": amount,
                "written_off_minor": 0,
                "overpaid_minor": 0,
                "balance_minor": 0,
                "status": str(InvoiceStatus.CREDITED),
                "dunning_stage": 0,
                "version": 1,
                "credits_invoice_id": inv["_id"],
                "credit_note_ids": [],
                "reason": cmd.reason,
                "created_at": ctx.now,
                "updated_at": ctx.now,
                "origin_traceparent": ctx.traceparent,
                "origin_trace_id": ctx.trace_id,
                "history": [
                    history_entry(
                        ctx,
                        event_id=event_id,
                        type_="issued",
                        before="",
                        after=str(InvoiceStatus.CREDITED),
                        version=1,
                        text=f"credit note {number} for invoice {inv['invoice_number']}: {cmd.reason}",
                    )
                ],
            }
            new = changed_invoice(
                inv,
                ctx,
                event_id=event_id,
                type_="credited",
                text=f"credit note {number}: {amount} {inv['currency']} credited ({cmd.reason})",
                credited_minor=pos.credited + amount,
                overpaid_minor=pos.overpaid + to_customer_credit,
                credit_note_ids=[*inv.get("credit_note_ids", []), cn_id],
            )
            await self.store.invoices.insert_one(credit_note, session=s)
            await self.store.replace_invoice(s, new, inv["version"])
            await self.store.add_journal(
                s,
                [
                    journal_entry(
                        ctx,
                        invoice_id=inv["_id"],
                        kind="credit_note_issued",
                        currency=inv["currency"],
                        ref=cn_id,
                        postings=journal.credit_note_issued(
                            totals.net_minor, totals.vat_minor, to_customer_credit=to_customer_credit
                        ),
                    )
                ],
            )
            events: list[tuple[Event, str]] = [
                (
                    CreditNoteIssued(
                        id=event_id,
                        tenant_id=tenant.id,
                        subject=inv["_id"],
                        occurred_at=ctx.now,
                        data=CreditNoteIssuedData(
                            credit_note=summary(credit_note), invoice=summary(new), amount_minor=amount
                        ),
                    ),
                    INVOICE_TOPIC,
                )
            ]
            if to_customer_credit:
                events.append(
                    await self._credit_customer(
                        s, ctx, new, to_customer_credit, f"credit note {number} on a paid invoice"
                    )
                )
            await add_to_outbox(self.store.db, s, events)
            return credit_note, new

        async with self._series_locks[f"{tenant.id}:credit_note"]:
            try:
                cn, inv = await self._txn(work)
            except DuplicateKeyError:
                return await self.issue_credit_note(ctx, cmd)  # a retry raced us: replay it
        return cn, inv, True

    async def _credit_customer(
        self, s: Session, ctx: Ctx, inv: Doc, amount: int, reason: str
    ) -> tuple[Event, str]:
        balance = await self.store.change_credit_balance(
            s, inv["customer_id"], inv["currency"], amount, ctx.now
        )
        return CustomerCreditChanged(
            tenant_id=ctx.tenant.id,
            subject=inv["customer_id"],
            occurred_at=ctx.now,
            data=CustomerCreditChangedData(
                customer_id=inv["customer_id"],
                customer_number=inv["customer_number"],
                currency=inv["currency"],
                credit_balance_minor=balance,
                change_minor=amount,
                reason=reason,
            ),
        ), CUSTOMER_TOPIC

    # --- payments --------------------------------------------------------------------------------

    async def record_payment(self, ctx: Ctx, cmd: RecordPayment) -> PaymentResult:
        v = Violations()
        if not cmd.idempotency_key.strip():
            v.add("idempotency_key", "required")
        if cmd.amount_minor <= 0:
            v.add("amount.minor_units", "must be positive")
        try:
            check_currency(cmd.currency)
        except UnknownCurrency as exc:
            v.add("amount.currency", str(exc))
        parse_date(cmd.paid_on, "paid_on", v)
        for i, a in enumerate(cmd.allocations):
            if not (a.invoice_id or a.invoice_number):
                v.add(f"allocations[{i}]", "give invoice_id or invoice_number")
            if a.amount_minor <= 0:
                v.add(f"allocations[{i}].amount_minor", "must be positive")
        allocated = sum(a.amount_minor for a in cmd.allocations)
        if allocated > cmd.amount_minor:
            v.add("allocations", f"allocations ({allocated}) exceed the payment ({cmd.amount_minor})")
        if not cmd.allocations and not cmd.customer_number:
            v.add("customer_number", "required when nothing is allocated (the money becomes credit balance)")
        v.raise_if_any()
        fingerprint = cmd.fingerprint()
        replayed = await self._replay_payment(ctx, cmd.idempotency_key, fingerprint)
        if replayed is not None:
            return replayed
        targets: list[tuple[str, int]] = []
        for i, a in enumerate(cmd.allocations):
            try:
                doc = await self.resolve_invoice(
                    ctx, invoice_id=a.invoice_id, invoice_number=a.invoice_number
                )
            except NotFound as exc:
                raise InvalidArgument([FieldViolation(f"allocations[{i}]", exc.message)]) from None
            targets.append((doc["_id"], a.amount_minor))
        customer_id = ""
        if cmd.customer_number:
            customer = await self.store.customer(ctx.tenant.id, number=cmd.customer_number)
            if customer is None:
                raise InvalidArgument(
                    [FieldViolation("customer_number", f"no customer {cmd.customer_number!r}")]
                )
            customer_id = customer["_id"]
        payment_id = new_id()
        try:
            invoices, unallocated = await self._txn(
                lambda s: self._apply_payment(
                    s,
                    ctx,
                    payment_id=payment_id,
                    idempotency_key=cmd.idempotency_key,
                    fingerprint=fingerprint,
                    amount=cmd.amount_minor,
                    currency=cmd.currency,
                    paid_on=cmd.paid_on,
                    method="manual",
                    targets=targets,
                    customer_id=customer_id,
                    reference=cmd.reference,
                    payer_account=cmd.payer_account,
                    source_event_id="",
                )
            )
        except DuplicateKeyError:
            replayed = await self._replay_payment(ctx, cmd.idempotency_key, fingerprint)
            assert replayed is not None
            return replayed
        return PaymentResult(payment_id, invoices, unallocated, cmd.currency, True)

    async def _replay_payment(self, ctx: Ctx, key: str, fingerprint: str) -> PaymentResult | None:
        found = await self.store.payments.find_one({"tenant_id": ctx.tenant.id, "idempotency_key": key})
        if found is None:
            return None
        if found["request_hash"] != fingerprint:
            raise AlreadyExists(f"idempotency key {key!r} was already used for another payment")
        ids = [a["invoice_id"] for a in found["allocations"]]
        invoices = await self.store.invoices.find({"_id": {"$in": ids}}, projection={"history": 0}).to_list()
        return PaymentResult(found["_id"], invoices, found["unallocated_minor"], found["currency"], False)

    async def _apply_payment(
        self,
        s: Session,
        ctx: Ctx,
        *,
        payment_id: str,
        idempotency_key: str,
        fingerprint: str,
        amount: int,
        currency: str,
        paid_on: str,
        method: str,
        targets: Sequence[tuple[str, int]],
        customer_id: str,
        reference: str,
        payer_account: str,
        source_event_id: str,
    ) -> tuple[list[Doc], int]:
        """Apply one payment to invoices; what is not owed becomes the customer's credit balance."""
        merged: dict[str, int] = defaultdict(int)
        for invoice_id, amt in targets:
            merged[invoice_id] += amt
        events: list[tuple[Event, str]] = []
        changed: list[Doc] = []
        allocations: list[Doc] = []
        applied_total = 0
        for invoice_id, amt in merged.items():
            inv = await self._load(s, ctx, invoice_id)
            if inv["kind"] != "invoice":
                raise FailedPrecondition(f"{inv['invoice_number']} is a credit note", reason="NOT_AN_INVOICE")
            if inv["currency"] != currency:
                raise FailedPrecondition(
                    f"invoice {inv['invoice_number']} is in {inv['currency']}, the payment in {currency}",
                    reason="CURRENCY_MISMATCH",
                )
            check_can_receive_payment(InvoiceStatus(inv["status"]))
            pos = position_of(inv)
            applied = min(amt, pos.balance)
            over = amt - applied
            event_id = new_id()
            new = changed_invoice(
                inv,
                ctx,
                event_id=event_id,
                type_="payment_applied",
                text=f"payment of {amt} {currency} ({method})"
                + (f", {over} beyond what was owed" if over else ""),
                paid_minor=pos.paid + applied,
                overpaid_minor=pos.overpaid + over,
                allocations=[
                    *inv.get("allocations", []),
                    {"payment_id": payment_id, "amount_minor": amt, "paid_on": paid_on, "method": method},
                ],
            )
            await self.store.replace_invoice(s, new, inv["version"])
            changed.append(new)
            applied_total += applied
            customer_id = customer_id or inv["customer_id"]
            allocations.append({"invoice_id": invoice_id, "amount_minor": amt, "applied_minor": applied})
            events.append(
                (
                    PaymentApplied(
                        id=event_id,
                        tenant_id=ctx.tenant.id,
                        subject=invoice_id,
                        occurred_at=ctx.now,
                        data=PaymentAppliedData(
                            payment_id=payment_id,
                            invoice=summary(new),
                            amount_minor=amt,
                            paid_on=paid_on,
                            method=method,
                            source_event_id=source_event_id,
                        ),
                    ),
                    INVOICE_TOPIC,
                )
            )
        unallocated = amount - applied_total
        if unallocated and not customer_id:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "customer_number",
                        "required: part of the payment is not owed "
                        "on any invoice and becomes the customer's credit balance",
                    )
                ]
            )
        if unallocated:
            anchor = (
                changed[0]
                if changed
                else {
                    "customer_id": customer_id,
                    "currency": currency,
                    "customer_number": await self._customer_number(s, customer_id),
                }
            )
            events.append(await self._credit_customer(s, ctx, anchor, unallocated, f"payment {payment_id}"))
        await self.store.payments.insert_one(
            {
                "_id": payment_id,
                "tenant_id": ctx.tenant.id,
                "idempotency_key": idempotency_key,
                "request_hash": fingerprint,
                "amount_minor": amount,
                "currency": currency,
                "paid_on": paid_on,
                "method": method,
                "reference": reference,
                "payer_account": payer_account,
                "customer_id": customer_id,
                "allocations": allocations,
                "unallocated_minor": unallocated,
                "source_event_id": source_event_id,
                "created_at": ctx.now,
            },
            session=s,
        )
        await self.store.add_journal(
            s,
            [
                journal_entry(
                    ctx,
                    invoice_id=changed[0]["_id"] if changed else "",
                    kind="payment_received",
                    currency=currency,
                    ref=payment_id,
                    postings=journal.payment_received(applied_total, unallocated),
                )
            ],
        )
        await add_to_outbox(self.store.db, s, events)
        return changed, unallocated

    async def _customer_number(self, s: Session, customer_id: str) -> str:
        doc = await self.store.customers.find_one({"_id": customer_id}, projection={"number": 1}, session=s)
        if doc is None:
            raise NotFound(f"no customer {customer_id}")
        return str(doc["number"])

    # --- write-off -------------------------------------------------------------------------------

    async def write_off(
        self, ctx: Ctx, *, invoice_id: str, invoice_number: str, key: str, reason: str
    ) -> tuple[Doc, bool]:
        v = Violations()
        if not key.strip():
            v.add("idempotency_key", "required")
        if not reason.strip():
            v.add("reason", "required")
        v.raise_if_any()
        invoice = await self.resolve_invoice(ctx, invoice_id=invoice_id, invoice_number=invoice_number)
        if invoice.get("write_off_key") == key:
            return invoice, False

        async def work(s: Session) -> Doc:
            inv = await self._load(s, ctx, invoice["_id"])
            pos = position_of(inv)
            check_can_write_off(InvoiceStatus(inv["status"]), pos)
            event_id = new_id()
            new = changed_invoice(
                inv,
                ctx,
                event_id=event_id,
                type_="written_off",
                text=f"{pos.balance} {inv['currency']} written off: {reason}",
                written_off_minor=pos.written_off + pos.balance,
                write_off_key=key,
            )
            await self.store.replace_invoice(s, new, inv["version"])
            await self.store.add_journal(
                s,
                [
                    journal_entry(
                        ctx,
                        invoice_id=inv["_id"],
                        kind="written_off",
                        currency=inv["currency"],
                        postings=journal.written_off(pos.balance),
                    )
                ],
            )
            await add_to_outbox(
                self.store.db,
                s,
                [
                    (
                        InvoiceWrittenOff(
                            id=event_id,
                            tenant_id=ctx.tenant.id,
                            subject=inv["_id"],
                            occurred_at=ctx.now,
                            data=InvoiceWrittenOffData(
                                invoice=summary(new), amount_minor=pos.balance, reason=reason
                            ),
                        ),
                        INVOICE_TOPIC,
                    )
                ],
            )
            return new

        return await self._txn(work), True

    # --- proposals from the matcher and the dunning service --------------------------------------

    async def apply_payment_matched(self, ctx: Ctx, event: PaymentMatched) -> None:
        data = event.data
        try:
            await self._txn(lambda s: self._payment_matched(s, ctx, event))
        except DuplicateKeyError:
            # The same payment id came in another event: it is applied already (idempotent by payment).
            log.info("payment %s from event %s was applied before", data.payment_id, event.id)
        except (FailedPrecondition, NotFound, InvalidArgument) as exc:
            invoice_id = data.allocations[0].invoice_id if data.allocations else ""
            await self._reject(
                ctx, event, invoice_id, getattr(exc, "reason", type(exc).__name__.upper()), exc.message
            )

    async def _payment_matched(self, s: Session, ctx: Ctx, event: PaymentMatched) -> None:
        data = event.data
        await record_processed(self.store.db, s, PROPOSALS_CONSUMER, event.id, ctx.now)
        await self._apply_payment(
            s,
            ctx,
            payment_id=data.payment_id,
            idempotency_key=f"matcher:{data.payment_id}",
            fingerprint=_fingerprint(data.model_dump()),
            amount=data.amount_minor,
            currency=data.currency,
            paid_on=data.paid_on,
            method=data.method,
            targets=[(a.invoice_id, a.amount_minor) for a in data.allocations],
            customer_id=data.customer_id,
            reference=data.reference,
            payer_account=data.payer_account,
            source_event_id=event.id,
        )

    async def apply_dunning_action(self, ctx: Ctx, event: DunningActionTaken) -> None:
        async def work(s: Session) -> None:
            data = event.data
            await record_processed(self.store.db, s, PROPOSALS_CONSUMER, event.id, ctx.now)
            inv = await self.store.invoices.find_one(
                {"_id": data.invoice_id, "tenant_id": ctx.tenant.id}, session=s
            )
            if inv is None:
                await self._add_rejection(
                    s, ctx, event, data.invoice_id, "UNKNOWN_INVOICE", f"no invoice {data.invoice_id}", None
                )
                return
            stage = DunningStage(inv.get("dunning_stage", 0))
            pos = position_of(inv)
            rejection = dunning_rejection(
                data.action,
                status=InvoiceStatus(inv["status"]),
                version=inv["version"],
                based_on_version=data.based_on_version,
                stage=stage,
                balance=pos.balance,
            )
            if rejection is not None:
                await self._add_rejection(s, ctx, event, inv["_id"], *rejection, inv)
                return
            charges = [*inv.get("charges", [])]
            entries = []
            for kind, amount, interest in (
                ("fee", data.fee_minor, False),
                ("interest", data.interest_minor, True),
            ):
                if amount:
                    charges.append(
                        {
                            "id": new_id(),
                            "kind": f"{data.action}_{kind}",
                            "amount_minor": amount,
                            "description": data.description or data.action.replace("_", " "),
                            "added_at": ctx.now,
                            "action_id": data.action_id,
                        }
                    )
                    entries.append(
                        journal_entry(
                            ctx,
                            invoice_id=inv["_id"],
                            kind=f"{kind}_added",
                            currency=inv["currency"],
                            ref=data.action_id,
                            postings=journal.charge_added(amount, interest=interest),
                        )
                    )
            added = data.fee_minor + data.interest_minor
            event_id = new_id()
            new = changed_invoice(
                inv,
                ctx,
                event_id=event_id,
                type_=_HISTORY_TYPE[data.action],
                text=f"{data.action.replace('_', ' ')}"
                + (f", {added} {inv['currency']} added" if added else "")
                + (f", deadline {data.deadline}" if data.deadline else ""),
                charges=charges,
                charges_minor=pos.charges + added,
                dunning_stage=int(dunning_stage_after(data.action, stage)),
            )
            await self.store.replace_invoice(s, new, inv["version"])
            await self.store.add_journal(s, entries)
            await add_to_outbox(
                self.store.db,
                s,
                [
                    (
                        ChargeAdded(
                            id=event_id,
                            tenant_id=ctx.tenant.id,
                            subject=inv["_id"],
                            occurred_at=ctx.now,
                            data=ChargeAddedData(
                                invoice=summary(new),
                                action_id=data.action_id,
                                action=data.action,
                                charge_minor=added,
                                source_event_id=event.id,
                            ),
                        ),
                        INVOICE_TOPIC,
                    )
                ],
            )

        await self._txn(work)

    async def _reject(self, ctx: Ctx, event: Event, invoice_id: str, reason: str, detail: str) -> None:
        async def work(s: Session) -> None:
            await record_processed(self.store.db, s, PROPOSALS_CONSUMER, event.id, ctx.now)
            inv = await self.store.invoices.find_one({"_id": invoice_id}, session=s) if invoice_id else None
            await self._add_rejection(s, ctx, event, invoice_id, reason, detail, inv)

        await self._txn(work)

    async def _add_rejection(
        self, s: Session, ctx: Ctx, event: Event, invoice_id: str, reason: str, detail: str, inv: Doc | None
    ) -> None:
        """A proposal is never applied blindly: the refusal is announced, and kept in the history."""
        log.info("rejected %s %s for invoice %s: %s", event.type, event.id, invoice_id, detail)
        rejected: Event = ProposalRejected(
            tenant_id=ctx.tenant.id,
            subject=invoice_id or event.subject,
            occurred_at=ctx.now,
            data=ProposalRejectedData(
                proposal_event_id=event.id,
                proposal_type=event.type,
                invoice_id=invoice_id,
                reason=reason,
                detail=detail,
                current_version=inv["version"] if inv else None,
                current_status=inv["status"] if inv else None,
            ),
        )
        if inv is not None:
            entry = history_entry(
                ctx,
                event_id=rejected.id,
                type_="proposal_rejected",
                before=inv["status"],
                after=inv["status"],
                version=inv["version"],
                text=f"{event.type} not applied: {reason} ({detail})",
            )
            await self.store.invoices.update_one(
                {"_id": inv["_id"]}, {"$push": {"history": entry}}, session=s
            )
        await add_to_outbox(self.store.db, s, [(rejected, INVOICE_TOPIC)])

    # --- time passes -----------------------------------------------------------------------------

    async def mark_overdue(self, ctx: Ctx, invoice_id: str) -> bool:
        """Move one invoice past its due date to overdue (announced, so dunning can start)."""

        async def work(s: Session) -> bool:
            inv = await self._load(s, ctx, invoice_id)
            if inv["status"] not in (InvoiceStatus.OPEN, InvoiceStatus.PART_PAID):
                return False
            if date.fromisoformat(inv["due_date"]) >= ctx.today:
                return False
            event_id = new_id()
            new = changed_invoice(
                inv,
                ctx,
                event_id=event_id,
                type_="overdue",
                text=f"not paid by the due date {inv['due_date']}",
            )
            await self.store.replace_invoice(s, new, inv["version"])
            await add_to_outbox(
                self.store.db,
                s,
                [
                    (
                        InvoiceOverdue(
                            id=event_id,
                            tenant_id=ctx.tenant.id,
                            subject=inv["_id"],
                            occurred_at=ctx.now,
                            data=InvoiceOverdueData(invoice=summary(new)),
                        ),
                        INVOICE_TOPIC,
                    )
                ],
            )
            return True

        try:
            return await self._txn(work)
        except FordringError:
            log.exception("could not mark %s overdue", invoice_id)
            return False
