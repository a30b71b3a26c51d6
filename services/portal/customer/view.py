"""The invoice page's content, from what the services answer: pure (no I/O, "now" passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from fordring.dispatcher.v1 import dispatcher_pb2 as dispatcher_pb
from fordring.ledger.v1 import ledger_pb2 as ledger_pb
from fordring.ledger.v1 import notes_pb2 as notes_pb
from fordring.ledger.v1 import tenants_pb2 as tenants_pb

from services.common.money import format_money
from services.portal.i18n import Translator

# The ledger's history the customer may see, by entry type (the rest is bookkeeping: rejected
# proposals, interest accruals, ...); reminders and notices are told by their history entry.
CUSTOMER_HISTORY = {
    "issued": "history.issued",
    "payment_applied": "history.payment",
    "payment_returned": "history.payment_returned",
    "credited": "history.credited",
    "nudged": "history.nudged",
    "reminded": "history.reminded",
    "collection_notice": "history.collection_notice",
    "collection_handoff": "history.collection_handoff",
    "due_date_changed": "history.due_date_changed",
    "disputed": "history.disputed",
    "dispute_resolved": "history.dispute_resolved",
    "written_off": "history.written_off",
}
STATUS = {
    ledger_pb.INVOICE_STATUS_OPEN: "open",
    ledger_pb.INVOICE_STATUS_PART_PAID: "part_paid",
    ledger_pb.INVOICE_STATUS_PAID: "paid",
    ledger_pb.INVOICE_STATUS_OVERPAID: "paid",
    ledger_pb.INVOICE_STATUS_CREDITED: "credited",
    ledger_pb.INVOICE_STATUS_OVERDUE: "overdue",
    ledger_pb.INVOICE_STATUS_REMINDED: "reminded",
    ledger_pb.INVOICE_STATUS_COLLECTION_NOTICE: "collection_notice",
    ledger_pb.INVOICE_STATUS_IN_COLLECTION: "in_collection",
    ledger_pb.INVOICE_STATUS_WRITTEN_OFF: "written_off",
}
# The channels a customer may ask for (the dispatcher's names) and the consent each one is.
CHANNELS = ("avtalegiro", "efaktura", "email", "sms")


@dataclass(frozen=True)
class Line:
    description: str
    quantity: str
    unit_price: str
    vat_rate: str
    amount: str


@dataclass(frozen=True)
class Happening:
    at: datetime
    text: str


@dataclass(frozen=True)
class Note:
    at: datetime
    author: str  # "customer" or "staff"
    kind: str  # "message", "dispute", "dispute_resolved"
    author_name: str
    text: str


_NOTE_AUTHORS = {notes_pb.NOTE_AUTHOR_CUSTOMER: "customer", notes_pb.NOTE_AUTHOR_STAFF: "staff"}
_NOTE_KINDS = {notes_pb.NOTE_KIND_DISPUTE: "dispute", notes_pb.NOTE_KIND_DISPUTE_RESOLVED: "dispute_resolved"}


def notes_of(notes: list[notes_pb.InvoiceNote]) -> list[Note]:
    return [
        Note(
            at=_at(note.created_at) or datetime.min.replace(tzinfo=UTC),
            author=_NOTE_AUTHORS.get(note.author, "staff"),
            kind=_NOTE_KINDS.get(note.kind, "message"),
            author_name=note.author_name,
            text=note.text,
        )
        for note in notes
    ]


@dataclass(frozen=True)
class InvoicePage:
    language: str
    creditor: str
    creditor_contact: str
    title: str
    number: str
    customer_name: str
    status: str
    status_text: str
    amount_left: str
    amount_left_minor: int
    total: str
    paid: str
    due_date: date
    kid: str
    account: str
    open_to_pay: bool
    lines: tuple[Line, ...]
    charges: tuple[Line, ...]
    history: tuple[Happening, ...]
    notes: tuple[Note, ...]
    consents: frozenset[str]
    version: int
    disputed: bool
    # What the invoice is for, in the buyer's words: (label key, value), those given.
    references: tuple[tuple[str, str], ...] = ()


def _at(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def account_of(profile: tenants_pb.CreditorProfile | None, currency: str) -> str:
    """Where to pay, as the customer's bank asks for it."""
    if profile is None:
        return ""
    if currency == "SEK" and profile.bankgiro:
        return f"Bankgiro {profile.bankgiro}"
    if currency == "SEK" and profile.plusgiro:
        return f"PlusGiro {profile.plusgiro}"
    if currency not in ("NOK", "SEK") and profile.iban:
        return f"IBAN {profile.iban}" + (f" (BIC {profile.bic})" if profile.bic else "")
    account = profile.bank_account
    if len(account) == 11 and account.isdigit():
        return f"{account[:4]} {account[4:6]} {account[6:]}"
    return account or profile.iban


def history_of(
    entries: list[ledger_pb.HistoryEntry],
    deliveries: list[dispatcher_pb.Delivery],
    t: Translator,
) -> tuple[Happening, ...]:
    """What happened that the customer may see, newest first: the ledger's steps and the deliveries
    (sent by which channel, opened)."""
    happened: list[Happening] = []
    for entry in entries:
        key = CUSTOMER_HISTORY.get(entry.type)
        at = _at(entry.at)
        if key is None or at is None:
            continue
        if entry.type == "payment_applied" and entry.status_after == ledger_pb.INVOICE_STATUS_PART_PAID:
            key = "history.part_payment"
        happened.append(Happening(at, t(key)))
    for delivery in deliveries:
        sent = _at(delivery.delivered_at) or _at(delivery.sent_at)
        if sent is not None and delivery.status in ("accepted", "delivered", "opened"):
            happened.append(
                Happening(
                    sent,
                    t(
                        "history.sent",
                        channel=t(f"channel.{delivery.channel}"),
                        what=t(f"kind.{delivery.document_kind}"),
                    ),
                )
            )
        opened = _at(delivery.opened_at)
        if opened is not None:
            happened.append(Happening(opened, t("history.opened")))
    return tuple(sorted(happened, key=lambda h: h.at, reverse=True))


def invoice_page(
    invoice: ledger_pb.Invoice,
    customer: ledger_pb.Customer | None,
    profile: tenants_pb.CreditorProfile | None,
    history: list[ledger_pb.HistoryEntry],
    deliveries: list[dispatcher_pb.Delivery],
    notes: list[Note],
    t: Translator,
) -> InvoicePage:
    lang = t.language
    currency = invoice.currency or invoice.balance.currency

    def money(minor: int) -> str:
        return format_money(minor, currency, locale=lang)

    status = STATUS.get(invoice.status, "open")
    consents = frozenset(
        name for name in CHANNELS if customer is not None and getattr(customer.consents, name, False)
    )
    contact = ", ".join(part for part in (profile.email, profile.phone) if part) if profile else ""
    return InvoicePage(
        language=lang,
        creditor=profile.legal_name if profile and profile.legal_name else "",
        creditor_contact=contact,
        title=t("kind.credit_note" if invoice.kind == ledger_pb.INVOICE_KIND_CREDIT_NOTE else "kind.invoice"),
        number=invoice.invoice_number,
        customer_name=invoice.customer_name,
        status=status,
        status_text=t(f"status.{status}"),
        amount_left=money(invoice.balance.minor_units),
        amount_left_minor=invoice.balance.minor_units,
        total=money(invoice.gross_total.minor_units + sum(c.amount_minor for c in invoice.charges)),
        paid=money(invoice.paid_total.minor_units),
        due_date=date.fromisoformat(invoice.due_date),
        kid=invoice.kid,
        account=account_of(profile, currency),
        open_to_pay=invoice.balance.minor_units > 0
        and status not in ("credited", "written_off", "in_collection"),
        lines=tuple(
            Line(
                description=line.description,
                quantity=line.quantity,
                unit_price=money(line.unit_price_minor),
                vat_rate=f"{line.vat_rate} %",
                amount=money(line.net_amount_minor),
            )
            for line in invoice.lines
        ),
        charges=tuple(
            Line(
                description=charge.description,
                quantity="",
                unit_price="",
                vat_rate="",
                amount=money(charge.amount_minor),
            )
            for charge in invoice.charges
        ),
        history=history_of(history, deliveries, t),
        notes=tuple(notes),
        consents=consents,
        version=invoice.version,
        disputed=_disputed(notes),
        references=tuple(
            (key, value)
            for key, value in (
                ("reference.buyer", invoice.buyer_reference),
                ("reference.order", invoice.order_reference),
                ("reference.contract", invoice.contract_reference),
            )
            if value
        ),
    )


def _disputed(notes: list[Note]) -> bool:
    """Whether the latest word on a dispute is the customer's dispute (not its resolution)."""
    state = False
    for note in notes:
        if note.kind == "dispute":
            state = True
        elif note.kind == "dispute_resolved":
            state = False
    return state
