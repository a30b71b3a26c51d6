"""RecordPayment, and applying a payment to invoices (also when the matcher proposes it)."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Violations,
)
from services.common.events import Event, PaymentApplied, PaymentAppliedData
from services.common.ids import new_id
from services.common.money import UnknownCurrency, check_currency
from services.common.mongo import Doc, Session
from services.common.text import check_text
from services.ledger.changes import Changes, invoice_event
from services.ledger.documents import Ctx, changed_invoice, journal_entry, position_of, summary
from services.ledger.domain import journal
from services.ledger.domain.invoice import MAX_AMOUNT_MINOR, MAX_LINES, check_length, parse_date
from services.ledger.domain.status import InvoiceStatus, check_can_receive_payment


def request_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, default=str, sort_keys=True).encode()).hexdigest()


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
        return request_hash(self.__dict__)


@dataclass(frozen=True)
class PaymentResult:
    payment_id: str
    invoices: list[Doc]
    unallocated_minor: int
    currency: str
    created: bool


@dataclass(frozen=True)
class Payment:
    """One payment to apply, recorded by the ERP or proposed by the matcher."""

    payment_id: str
    idempotency_key: str
    fingerprint: str
    amount_minor: int
    currency: str
    paid_on: str
    method: str
    # (invoice id, amount) pairs; an invoice named twice gets the sum.
    targets: tuple[tuple[str, int], ...]
    # Whose credit balance takes what no invoice owes; empty: the invoices' customer (if only one).
    customer_id: str
    reference: str
    payer_account: str
    source_event_id: str
    # (invoice id, the invoice version the proposer saw), for proposals that name one.
    based_on_versions: tuple[tuple[str, int], ...] = ()


MAX_KEY = 128
MAX_PAYMENT_TEXT = 200


def check_payment(
    violations: Violations,
    *,
    key: str,
    amount_minor: int,
    currency: str,
    paid_on: str,
    allocations: Sequence[int],
    reference: str,
    payer_account: str,
    amount_field: str = "amount.minor_units",
    currency_field: str = "amount.currency",
) -> None:
    """What every payment must satisfy, recorded by the ERP or proposed by the matcher: a positive
    amount in a known currency on a real date, allocations that are positive and sum to no more than
    the payment, and bounded texts."""
    if not key.strip():
        violations.add("idempotency_key", "required")
    check_length(key, "idempotency_key", MAX_KEY, violations)
    if amount_minor <= 0:
        violations.add(amount_field, "must be positive")
    elif amount_minor > MAX_AMOUNT_MINOR:
        violations.add(amount_field, f"at most {MAX_AMOUNT_MINOR}")
    if len(allocations) > MAX_LINES:
        violations.add("allocations", f"at most {MAX_LINES} allocations")
    try:
        check_currency(currency)
    except UnknownCurrency as exc:
        violations.add(currency_field, str(exc))
    parse_date(paid_on, "paid_on", violations)
    for i, amount in enumerate(allocations):
        if amount <= 0:
            violations.add(f"allocations[{i}].amount_minor", "must be positive")
    allocated = sum(allocations)
    if allocated > amount_minor > 0:
        violations.add("allocations", f"allocations ({allocated}) exceed the payment ({amount_minor})")
    check_text(reference, "reference", MAX_PAYMENT_TEXT, violations)
    check_text(payer_account, "payer_account", 64, violations)


def _check_record_payment(cmd: RecordPayment) -> None:
    v = Violations()
    check_payment(
        v,
        key=cmd.idempotency_key,
        amount_minor=cmd.amount_minor,
        currency=cmd.currency,
        paid_on=cmd.paid_on,
        allocations=[a.amount_minor for a in cmd.allocations],
        reference=cmd.reference,
        payer_account=cmd.payer_account,
    )
    for i, a in enumerate(cmd.allocations):
        if not (a.invoice_id or a.invoice_number):
            v.add(f"allocations[{i}]", "give invoice_id or invoice_number")
        check_length(a.invoice_id, f"allocations[{i}].invoice_id", 64, v)
        check_length(a.invoice_number, f"allocations[{i}].invoice_number", 64, v)
    check_length(cmd.customer_number, "customer_number", 64, v)
    if not cmd.allocations and not cmd.customer_number:
        v.add("customer_number", "required when nothing is allocated (the money becomes credit balance)")
    v.raise_if_any()


async def record_payment(changes: Changes, ctx: Ctx, cmd: RecordPayment) -> PaymentResult:
    _check_record_payment(cmd)
    fingerprint = cmd.fingerprint()
    replayed = await _replay(changes, ctx, cmd.idempotency_key, fingerprint)
    if replayed is not None:
        return replayed
    targets: list[tuple[str, int]] = []
    for i, a in enumerate(cmd.allocations):
        try:
            doc = await changes.resolve_invoice(ctx, invoice_id=a.invoice_id, invoice_number=a.invoice_number)
        except NotFound as exc:
            raise InvalidArgument([FieldViolation(f"allocations[{i}]", exc.message)]) from None
        targets.append((doc["_id"], a.amount_minor))
    customer_id = ""
    if cmd.customer_number:
        customer = await changes.store.customer(ctx.tenant.id, number=cmd.customer_number)
        if customer is None:
            raise InvalidArgument([FieldViolation("customer_number", f"no customer {cmd.customer_number!r}")])
        customer_id = customer["_id"]
    payment = Payment(
        payment_id=new_id(),
        idempotency_key=cmd.idempotency_key,
        fingerprint=fingerprint,
        amount_minor=cmd.amount_minor,
        currency=cmd.currency,
        paid_on=cmd.paid_on,
        method="manual",
        targets=tuple(targets),
        customer_id=customer_id,
        reference=cmd.reference,
        payer_account=cmd.payer_account,
        source_event_id="",
    )
    # Calls with the same key wait for each other in this replica; across replicas the unique index
    # on the key decides, and the loser answers with what the winner stored.
    async with changes.key_lock(ctx.tenant.id, "payment", cmd.idempotency_key):
        replayed = await _replay(changes, ctx, cmd.idempotency_key, fingerprint)
        if replayed is not None:
            return replayed
        try:
            invoices, unallocated = await changes.run(lambda s: apply_payment(changes, s, ctx, payment))
        except (DuplicateKeyError, PaymentExists):
            replayed = await _replay(changes, ctx, cmd.idempotency_key, fingerprint)
            assert replayed is not None  # the duplicate key is the payment that raced us
            return replayed
    return PaymentResult(payment.payment_id, invoices, unallocated, cmd.currency, True)


class PaymentExists(Exception):
    """Inside the transaction: a payment with this key is stored already (answer with it)."""


async def _replay(changes: Changes, ctx: Ctx, key: str, fingerprint: str) -> PaymentResult | None:
    found = await changes.store.payments.find_one({"tenant_id": ctx.tenant.id, "idempotency_key": key})
    if found is None:
        return None
    if found["request_hash"] != fingerprint:
        raise AlreadyExists(f"idempotency key {key!r} was already used for another payment")
    ids = [a["invoice_id"] for a in found["allocations"]]
    invoices = await changes.store.invoices_by_ids(ctx.tenant.id, ids)
    return PaymentResult(found["_id"], invoices, found["unallocated_minor"], found["currency"], False)


class UnknownTarget(NotFound):
    """An invoice or customer a payment names is not the tenant's; `reason` says which."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class NoPayer(InvalidArgument):
    """Part of the payment is owed on no invoice, and nobody is named to hold it as credit."""

    reason = "NO_PAYER"


@dataclass(frozen=True)
class PaymentPlan:
    """What applying one payment changes, computed from the invoices as they are (no I/O)."""

    # (the invoice as it was, the invoice after the payment), in the order the payment names them.
    changed: tuple[tuple[Doc, Doc], ...]
    # The payment record's allocations: what each invoice was given and how much of it it owed.
    allocations: tuple[Doc, ...]
    entries: tuple[Doc, ...]
    # PaymentApplied per invoice (a CustomerCreditChanged follows when `unallocated`).
    events: tuple[tuple[Event, str], ...]
    unallocated: int
    # Who paid: the customer the payment names, else the invoices' one customer ("" when several);
    # its credit balance takes `unallocated`.
    payer: str

    @property
    def invoices(self) -> list[Doc]:
        return [after for _, after in self.changed]


def credited_since(inv: Doc, version: int) -> bool:
    """Whether a credit note reached the invoice after `version` (needs the history when anything
    was credited at all)."""
    if inv["version"] <= version or not inv.get("credited_minor", 0):
        return False
    return any(e.get("type") == "credited" and e.get("version", 0) > version for e in inv.get("history", ()))


def check_payable(inv: Doc, currency: str, based_on_version: int | None = None) -> None:
    """Money is applied only to an invoice (not a credit note) in its own currency that can still
    receive it, and never to one credited after the version the proposer saw."""
    if inv["kind"] != "invoice":
        raise FailedPrecondition(f"{inv['invoice_number']} is a credit note", reason="NOT_AN_INVOICE")
    if inv["currency"] != currency:
        raise FailedPrecondition(
            f"invoice {inv['invoice_number']} is in {inv['currency']}, the payment in {currency}",
            reason="CURRENCY_MISMATCH",
        )
    check_can_receive_payment(InvoiceStatus(inv["status"]))
    if based_on_version is not None and credited_since(inv, based_on_version):
        raise FailedPrecondition(
            f"based on version {based_on_version}; invoice {inv['invoice_number']} was credited since "
            f"(it is at version {inv['version']})",
            reason="STALE",
        )


def plan_payment(ctx: Ctx, payment: Payment, invoice: Callable[[str], Doc | None]) -> PaymentPlan:
    """Apply one payment to the invoices `invoice` finds (this tenant's, as they are now); what is not
    owed becomes the payer's credit balance. Raises when the payment cannot be applied as a whole."""
    merged: dict[str, int] = defaultdict(int)
    for invoice_id, amt in payment.targets:
        merged[invoice_id] += amt
    based_on: dict[str, int] = {}
    for invoice_id, version in payment.based_on_versions:
        based_on[invoice_id] = min(version, based_on.get(invoice_id, version))
    changed: list[tuple[Doc, Doc]] = []
    events: list[tuple[Event, str]] = []
    entries: list[Doc] = []
    allocations: list[Doc] = []
    applied_total = 0
    for invoice_id, amt in merged.items():
        inv = invoice(invoice_id)
        if inv is None:
            raise UnknownTarget(f"no invoice {invoice_id}", reason="UNKNOWN_INVOICE")
        check_payable(inv, payment.currency, based_on.get(invoice_id))
        new, applied, event = _applied(ctx, payment, inv, amt)
        changed.append((inv, new))
        applied_total += applied
        allocations.append(
            {
                "invoice_id": invoice_id,
                "amount_minor": amt,
                "applied_minor": applied,
                # What was credited and written off on the invoice then: a returned payment is taken
                # back automatically only while these have not changed (services/ledger/reversals.py).
                "invoice_credited_minor": new.get("credited_minor", 0),
                "invoice_written_off_minor": new.get("written_off_minor", 0),
            }
        )
        events.append(event)
        if applied:
            # Each invoice's share is booked against that invoice's receivable.
            entries.append(
                journal_entry(
                    ctx,
                    invoice_id=invoice_id,
                    kind="payment_received",
                    currency=payment.currency,
                    ref=payment.payment_id,
                    postings=journal.payment_received(applied, 0),
                )
            )
    unallocated = payment.amount_minor - applied_total
    # What no invoice owes belongs to the payer the payment names; failing that, the customer of
    # the invoices it pays (when they all have one customer).
    payer = payment.customer_id or _sole_customer([new for _, new in changed])
    if unallocated and not payer:
        raise NoPayer(
            [
                FieldViolation(
                    "customer_number",
                    "required: part of the payment is not owed on any invoice and becomes a "
                    "customer's credit balance, and the invoices paid belong to several customers",
                )
            ]
        )
    if unallocated:
        entries.append(
            journal_entry(
                ctx,
                invoice_id="",
                customer_id=payer,
                kind="payment_received",
                currency=payment.currency,
                ref=payment.payment_id,
                postings=journal.payment_received(0, unallocated),
            )
        )
    return PaymentPlan(tuple(changed), tuple(allocations), tuple(entries), tuple(events), unallocated, payer)


def payment_doc(ctx: Ctx, payment: Payment, plan: PaymentPlan) -> Doc:
    """The payment as stored (`_id`: its id; the matcher's own id for a proposal)."""
    return {
        "_id": payment.payment_id,
        "tenant_id": ctx.tenant.id,
        "idempotency_key": payment.idempotency_key,
        "request_hash": payment.fingerprint,
        "amount_minor": payment.amount_minor,
        "currency": payment.currency,
        "paid_on": payment.paid_on,
        "method": payment.method,
        "reference": payment.reference,
        "payer_account": payment.payer_account,
        "customer_id": plan.payer,
        "allocations": list(plan.allocations),
        "unallocated_minor": plan.unallocated,
        "source_event_id": payment.source_event_id,
        "created_at": ctx.now,
    }


def credit_reason(payment_id: str) -> str:
    return f"payment {payment_id}"


async def apply_payment(changes: Changes, s: Session, ctx: Ctx, payment: Payment) -> tuple[list[Doc], int]:
    """Apply one payment to invoices; what is not owed becomes the customer's credit balance.
    Returns the changed invoices and what was not applied to them."""
    tenant_id = ctx.tenant.id
    if await changes.store.payments.find_one(
        {"tenant_id": tenant_id, "idempotency_key": payment.idempotency_key}, projection={"_id": 1}, session=s
    ):
        raise PaymentExists(payment.idempotency_key)
    loaded: dict[str, Doc | None] = {}
    for invoice_id, _ in payment.targets:
        if invoice_id not in loaded:
            loaded[invoice_id] = await changes.store.invoice_by_id(tenant_id, invoice_id, session=s)
    plan = plan_payment(ctx, payment, loaded.get)
    for before, after in plan.changed:
        await changes.store.replace_invoice(s, after, before["version"])
    events = list(plan.events)
    if plan.unallocated:
        try:
            credited = await changes.credit_payer(
                s, ctx, plan.payer, payment.currency, plan.unallocated, credit_reason(payment.payment_id)
            )
        except NotFound:
            raise UnknownTarget(f"no customer {plan.payer}", reason="UNKNOWN_CUSTOMER") from None
        events.append(credited)
    await changes.store.payments.insert_one(payment_doc(ctx, payment, plan), session=s)
    await changes.record(s, journal=plan.entries, events=events)
    return plan.invoices, plan.unallocated


def _sole_customer(invoices: Sequence[Doc]) -> str:
    customers = {inv["customer_id"] for inv in invoices}
    return customers.pop() if len(customers) == 1 else ""


def _applied(ctx: Ctx, payment: Payment, inv: Doc, amount: int) -> tuple[Doc, int, tuple[Event, str]]:
    """The invoice after `amount` of the payment, how much of it the invoice owed, and the event."""
    currency, method = payment.currency, payment.method
    pos = position_of(inv)
    applied = min(amount, pos.balance)
    over = amount - applied
    event_id = new_id()
    new = changed_invoice(
        inv,
        ctx,
        event_id=event_id,
        type_="payment_applied",
        text=f"payment of {amount} {currency} ({method})"
        + (f", {over} beyond what was owed" if over else ""),
        paid_minor=pos.paid + applied,
        overpaid_minor=pos.overpaid + over,
        allocations=[
            *inv.get("allocations", []),
            {
                "payment_id": payment.payment_id,
                "amount_minor": amount,
                "paid_on": payment.paid_on,
                "method": method,
            },
        ],
    )
    data = PaymentAppliedData(
        payment_id=payment.payment_id,
        invoice=summary(new),
        amount_minor=amount,
        paid_on=payment.paid_on,
        method=method,
        source_event_id=payment.source_event_id,
    )
    return new, applied, invoice_event(ctx, event_id, inv["_id"], PaymentApplied, data)
