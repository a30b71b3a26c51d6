"""How the ledger's aggregates look in MongoDB, and the one function that changes an invoice."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from services.common.clock import Clock, isoformat_utc, local_today
from services.common.events import InvoiceSummary
from services.common.ids import new_id
from services.common.money import Totals, split_proportionally, vat_amount_minor
from services.common.mongo import Doc
from services.common.telemetry import current_trace_id, current_traceparent
from services.common.tenancy import Tenant, current_tenant
from services.ledger.domain import journal
from services.ledger.domain.customer import CustomerData
from services.ledger.domain.invoice import Line, line_doc
from services.ledger.domain.status import (
    DunningStage,
    InvoiceStatus,
    Position,
    derive_status,
    next_status,
    status_after_return,
)


@dataclass(frozen=True)
class Ctx:
    """Who acts, when, and in which trace: everything a change records about itself."""

    tenant: Tenant
    actor: str
    now: datetime
    today: date
    trace_id: str
    traceparent: str


def request_ctx(clock: Clock) -> Ctx:
    """The context of the gRPC request being served: its tenant (from the API key, which names the
    actor), the time, the tenant's own today, and the request's trace."""
    tenant = current_tenant()
    return Ctx(
        tenant=tenant,
        actor=f"erp:{tenant.key_name}" if tenant.key_name else "erp",
        now=clock.now(),
        today=local_today(clock, ZoneInfo(tenant.timezone)),
        trace_id=current_trace_id(),
        traceparent=current_traceparent(),
    )


def position_of(doc: Doc) -> Position:
    return Position(
        gross=doc["gross_minor"],
        charges=doc.get("charges_minor", 0),
        paid=doc.get("paid_minor", 0),
        credited=doc.get("credited_minor", 0),
        written_off=doc.get("written_off_minor", 0),
        overpaid=doc.get("overpaid_minor", 0),
    )


def summary(doc: Doc) -> InvoiceSummary:
    return InvoiceSummary(
        invoice_id=doc["_id"],
        kind=doc["kind"],
        invoice_number=doc["invoice_number"],
        kid=doc.get("kid", ""),
        customer_id=doc["customer_id"],
        customer_number=doc["customer_number"],
        customer_kind=doc["customer_kind"],
        currency=doc["currency"],
        issue_date=doc["issue_date"],
        due_date=doc["due_date"],
        gross_minor=doc["gross_minor"],
        charges_minor=doc.get("charges_minor", 0),
        paid_minor=doc.get("paid_minor", 0),
        credited_minor=doc.get("credited_minor", 0),
        balance_minor=doc["balance_minor"],
        status=doc["status"],
        dunning_stage=doc.get("dunning_stage", 0),
        version=doc["version"],
        language=doc.get("language", ""),
        profile_version=doc.get("profile_version", 0),
        reminder_fee_agreed=doc.get("reminder_fee_agreed"),
    )


def history_entry(
    ctx: Ctx, *, event_id: str, type_: str, before: str, after: str, version: int, text: str
) -> Doc:
    return {
        "event_id": event_id,
        "type": type_,
        "at": ctx.now,
        "actor": ctx.actor,
        "trace_id": ctx.trace_id,
        "status_before": before,
        "status_after": after,
        "version": version,
        "summary": text,
    }


def changed_invoice(
    doc: Doc, ctx: Ctx, *, event_id: str, type_: str, text: str, returned: bool = False, **fields: Any
) -> Doc:
    """The invoice after a change: amounts updated, status re-derived along a legal transition,
    version bumped, and the change appended to its history. `returned`: the change takes back a
    payment the bank returned, the one way from paid back to open (status_after_return)."""
    new = {**doc, **fields}
    before = InvoiceStatus(doc["status"])
    position = position_of(new)
    if new["kind"] == "credit_note":
        after = InvoiceStatus.CREDITED
    else:
        after = (status_after_return if returned else next_status)(
            before,
            position,
            due_date=date.fromisoformat(new["due_date"]),
            today=ctx.today,
            dunning_stage=DunningStage(new.get("dunning_stage", 0)),
        )
    new["status"] = str(after)
    new["balance_minor"] = position.balance
    new["version"] = doc["version"] + 1
    new["updated_at"] = ctx.now
    new["history"] = [
        *doc.get("history", []),
        history_entry(
            ctx, event_id=event_id, type_=type_, before=before, after=after, version=new["version"], text=text
        ),
    ]
    return new


def opening_amounts(lines: tuple[Line, ...], totals: Totals, *, credited_minor: int = 0) -> Doc:
    """The lines and amounts of an invoice or credit note as issued: nothing paid, charged or written off."""
    return {
        "lines": [line_doc(line) for line in lines],
        "vat_breakdown": [
            {
                "vat_rate": str(v.rate),
                "taxable_amount_minor": v.taxable_minor,
                "vat_amount_minor": v.vat_minor,
            }
            for v in totals.vat_breakdown
        ],
        "net_minor": totals.net_minor,
        "vat_minor": totals.vat_minor,
        "gross_minor": totals.gross_minor,
        "charges": [],
        "charges_minor": 0,
        "allocations": [],
        "paid_minor": 0,
        "credited_minor": credited_minor,
        "written_off_minor": 0,
        "overpaid_minor": 0,
        "balance_minor": totals.gross_minor - credited_minor,
    }


def invoiced_by_rate(doc: Doc) -> list[tuple[Decimal, int]]:
    return [(Decimal(v["vat_rate"]), v["taxable_amount_minor"]) for v in doc["vat_breakdown"]]


def invoiced_vat_by_rate(doc: Doc) -> list[tuple[Decimal, int]]:
    return [(Decimal(v["vat_rate"]), v["vat_amount_minor"]) for v in doc["vat_breakdown"]]


def credited_by_rate(doc: Doc) -> list[tuple[Decimal, int]]:
    """What credit notes have reversed so far, per VAT rate (a list: "11.11" cannot be a field name)."""
    return [(Decimal(c["vat_rate"]), c["taxable_amount_minor"]) for c in doc.get("credited_vat", [])]


def credited_vat_by_rate(doc: Doc) -> list[tuple[Decimal, int]]:
    """The VAT credit notes have reversed so far, per VAT rate.

    Invoices credited before this was recorded hold only taxable amounts. The VAT their credit notes
    reversed in all is what was credited less those amounts; it is shared among the rates without a
    figure in proportion to the VAT of their taxable amounts (exact when there is one such rate).
    """
    credited = doc.get("credited_vat", [])
    known = [(Decimal(c["vat_rate"]), c["vat_amount_minor"]) for c in credited if "vat_amount_minor" in c]
    unknown = [
        (Decimal(c["vat_rate"]), c["taxable_amount_minor"]) for c in credited if "vat_amount_minor" not in c
    ]
    if not unknown:
        return known
    unaccounted = (
        doc.get("credited_minor", 0)
        - sum(c["taxable_amount_minor"] for c in credited)
        - sum(vat for _, vat in known)
    )
    estimates = [vat_amount_minor(taxable, rate) for rate, taxable in unknown]
    shares = split_proportionally(unaccounted, estimates) if any(estimates) else estimates
    return [*known, *((rate, share) for (rate, _), share in zip(unknown, shares, strict=True))]


def add_credited(doc: Doc, totals: Totals) -> list[Doc]:
    """The invoice's `credited_vat` after a credit note with these totals: taxable and VAT per rate."""
    taxable: dict[Decimal, int] = defaultdict(int)
    vat: dict[Decimal, int] = defaultdict(int)
    for rate, amount in credited_by_rate(doc):
        taxable[rate] += amount
    for rate, amount in credited_vat_by_rate(doc):
        vat[rate] += amount
    for v in totals.vat_breakdown:
        taxable[v.rate] += v.taxable_minor
        vat[v.rate] += v.vat_minor
    return [
        {"vat_rate": str(rate), "taxable_amount_minor": taxable[rate], "vat_amount_minor": vat[rate]}
        for rate in sorted(taxable)
    ]


def initial_status(doc: Doc, today: date) -> str:
    return str(
        derive_status(
            position_of(doc),
            due_date=date.fromisoformat(doc["due_date"]),
            today=today,
            dunning_stage=DunningStage.NONE,
            is_credit_note=doc["kind"] == "credit_note",
        )
    )


def customer_fields(data: CustomerData) -> Doc:
    """The customer as stored (the ERP is the master of these fields)."""
    address = data.address
    return {
        "number": data.number,
        "name": data.name,
        "kind": data.kind,
        "org_number": data.org_number,
        "national_id": data.national_id,
        "email": data.email,
        "phone": data.phone,
        "address": {
            "lines": list(address.lines),
            "postal_code": address.postal_code,
            "city": address.city,
            "country": address.country.upper(),
        }
        if address
        else None,
        "language": data.language,
        "bank_accounts": list(data.bank_accounts),
        "channel_preferences": list(data.channel_preferences),
        "consents": {
            "email": data.email_consent,
            "sms": data.sms_consent,
            "efaktura": data.efaktura_consent,
            "avtalegiro": data.avtalegiro_consent,
        },
    }


def journal_entry(
    ctx: Ctx,
    *,
    invoice_id: str,
    kind: str,
    currency: str,
    postings: tuple[journal.Posting, ...],
    ref: str = "",
    customer_id: str = "",
) -> Doc:
    return {
        "_id": new_id(),
        "tenant_id": ctx.tenant.id,
        "invoice_id": invoice_id,
        **({"customer_id": customer_id} if customer_id else {}),
        "kind": kind,
        "ref": ref,
        "currency": currency,
        "at": ctx.now,
        "postings": [{"account": p.account, "debit": p.debit, "credit": p.credit} for p in postings],
    }


def iso(at: datetime | None) -> str:
    return isoformat_utc(at) if at else ""
