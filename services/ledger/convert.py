"""Between the gRPC messages and the ledger's documents and commands."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import tenants_pb2

from services.common.creditor import CreditorProfile
from services.common.mongo import Doc
from services.ledger.documents import iso
from services.ledger.domain.customer import Address, CustomerData, mask_national_id
from services.ledger.domain.invoice import IssueInvoice, LineInput, default_vat_category

_KINDS = {pb.CUSTOMER_KIND_CONSUMER: "consumer", pb.CUSTOMER_KIND_BUSINESS: "business"}


def status_to_pb(status: str) -> pb.InvoiceStatus.ValueType:
    return (
        pb.InvoiceStatus.Value(f"INVOICE_STATUS_{status.upper()}")
        if status
        else pb.INVOICE_STATUS_UNSPECIFIED
    )


def status_from_pb(value: int) -> str:
    """The status's name; "" for UNSPECIFIED or a number this server does not know."""
    if value == pb.INVOICE_STATUS_UNSPECIFIED or value not in pb.InvoiceStatus.values():
        return ""
    return str(pb.InvoiceStatus.Name(value)).removeprefix("INVOICE_STATUS_").lower()  # type: ignore[arg-type]


def channel_from_pb(value: int) -> str:
    """The channel's name; an unknown number keeps it visible, so the check can name it."""
    if value not in pb.Channel.values():
        return f"unknown value {value}"
    return str(pb.Channel.Name(value)).removeprefix("CHANNEL_").lower()  # type: ignore[arg-type]


def channel_to_pb(name: str) -> pb.Channel.ValueType:
    return pb.Channel.Value(f"CHANNEL_{name.upper()}")


def money(minor: int, currency: str) -> common_pb2.Money:
    return common_pb2.Money(minor_units=minor, currency=currency)


def customer_from_pb(msg: pb.CustomerInput) -> CustomerData:
    address = None
    if msg.HasField("address"):
        a = msg.address
        address = Address(tuple(a.lines), a.postal_code, a.city, a.country)
    return CustomerData(
        number=msg.number,
        name=msg.name,
        # Unspecified or unknown: the customer check names the field.
        kind=_KINDS.get(msg.kind, "unspecified"),  # type: ignore[arg-type]
        org_number=msg.org_number,
        national_id=msg.national_id,
        email=msg.email,
        phone=msg.phone,
        address=address,
        language=msg.language,
        bank_accounts=tuple(msg.bank_accounts),
        channel_preferences=tuple(channel_from_pb(c) for c in msg.channel_preferences),
        email_consent=msg.consents.email,
        sms_consent=msg.consents.sms,
        efaktura_consent=msg.consents.efaktura,
        avtalegiro_consent=msg.consents.avtalegiro,
    )


def lines_from_pb(lines: Any) -> tuple[LineInput, ...]:
    return tuple(
        LineInput(
            description=ln.description,
            quantity=ln.quantity,
            unit_price_minor=ln.unit_price_minor,
            vat_rate=ln.vat_rate,
            unit_code=ln.unit_code,
            vat_category=ln.vat_category,
            vat_exemption_reason=ln.vat_exemption_reason,
        )
        for ln in lines
    )


def issue_invoice_from_pb(req: pb.IssueInvoiceRequest) -> IssueInvoice:
    which = req.WhichOneof("customer_ref")
    return IssueInvoice(
        idempotency_key=req.idempotency_key,
        customer_number=req.customer_number if which == "customer_number" else "",
        customer=customer_from_pb(req.customer) if which == "customer" else None,
        issue_date=req.issue_date,
        due_date=req.due_date,
        payment_terms_days=req.payment_terms_days,
        currency=req.currency,
        lines=lines_from_pb(req.lines),
        buyer_reference=req.buyer_reference,
        order_reference=req.order_reference,
        contract_reference=req.contract_reference,
        language=req.language,
        invoice_number=req.invoice_number,
        kid=req.kid,
        reminder_fee_agreed=req.reminder_fee_agreed if req.HasField("reminder_fee_agreed") else None,
    )


def customer_to_pb(doc: Doc, currency: str = "NOK") -> pb.Customer:
    address = doc.get("address") or {}
    balances: dict[str, int] = doc.get("credit_balances") or {}
    balance_currency = currency if currency in balances or not balances else next(iter(balances))
    return pb.Customer(
        id=doc["_id"],
        number=doc["number"],
        name=doc["name"],
        kind=pb.CUSTOMER_KIND_BUSINESS if doc["kind"] == "business" else pb.CUSTOMER_KIND_CONSUMER,
        org_number=doc.get("org_number", ""),
        national_id_masked=mask_national_id(doc.get("national_id", "")),
        email=doc.get("email", ""),
        phone=doc.get("phone", ""),
        address=common_pb2.Address(
            lines=address.get("lines", []),
            postal_code=address.get("postal_code", ""),
            city=address.get("city", ""),
            country=address.get("country", ""),
        ),
        language=doc.get("language", ""),
        bank_accounts=doc.get("bank_accounts", []),
        learned_bank_accounts=doc.get("learned_bank_accounts", []),
        channel_preferences=[channel_to_pb(c) for c in doc.get("channel_preferences", [])],
        consents=pb.Consents(**doc.get("consents", {})),
        credit_balance=money(balances.get(balance_currency, 0), balance_currency),
        version=doc.get("version", 0),
        created_at=iso(doc.get("created_at")),
        updated_at=iso(doc.get("updated_at")),
        flags=[
            pb.ContactFlag(
                contact=flag["contact"],
                reason=flag.get("reason", ""),
                flagged_at=iso(flag.get("at")),
                invoice_id=flag.get("invoice_id", ""),
                channel=channel_to_pb(flag.get("channel", ""))
                if flag.get("channel")
                else pb.CHANNEL_UNSPECIFIED,
            )
            for flag in doc.get("flags", [])
        ],
    )


def history_to_pb(entry: Doc) -> pb.HistoryEntry:
    return pb.HistoryEntry(
        event_id=entry["event_id"],
        type=entry["type"],
        at=iso(entry["at"]),
        actor=entry["actor"],
        trace_id=entry.get("trace_id", ""),
        status_before=status_to_pb(entry.get("status_before", "")),
        status_after=status_to_pb(entry.get("status_after", "")),
        version=entry["version"],
        summary=entry.get("summary", ""),
    )


def invoice_to_pb(doc: Doc) -> pb.Invoice:
    cur = doc["currency"]
    return pb.Invoice(
        id=doc["_id"],
        kind=pb.INVOICE_KIND_CREDIT_NOTE if doc["kind"] == "credit_note" else pb.INVOICE_KIND_INVOICE,
        external_id=doc["external_id"],
        invoice_number=doc["invoice_number"],
        kid=doc.get("kid", ""),
        customer_id=doc["customer_id"],
        customer_number=doc["customer_number"],
        customer_name=doc["customer_name"],
        issue_date=doc["issue_date"],
        due_date=doc["due_date"],
        currency=cur,
        lines=[line_to_pb(ln) for ln in doc["lines"]],
        vat_breakdown=[pb.VatBreakdown(**v) for v in doc["vat_breakdown"]],
        net_total=money(doc["net_minor"], cur),
        vat_total=money(doc["vat_minor"], cur),
        gross_total=money(doc["gross_minor"], cur),
        charges=[
            pb.Charge(
                id=c["id"],
                kind=c["kind"],
                description=c["description"],
                amount_minor=c["amount_minor"],
                added_at=iso(c["added_at"]),
            )
            for c in doc.get("charges", [])
        ],
        allocations=[
            pb.Allocation(
                payment_id=a["payment_id"],
                amount_minor=a["amount_minor"],
                paid_on=a["paid_on"],
                method=a["method"],
                reversed_at=iso(a.get("reversed_at")),
                reversal_payment_id=a.get("reversal_payment_id", ""),
            )
            for a in doc.get("allocations", [])
        ],
        paid_total=money(doc.get("paid_minor", 0), cur),
        credited_total=money(doc.get("credited_minor", 0), cur),
        written_off_total=money(doc.get("written_off_minor", 0), cur),
        balance=money(doc["balance_minor"], cur),
        status=status_to_pb(doc["status"]),
        buyer_reference=doc.get("buyer_reference", ""),
        order_reference=doc.get("order_reference", ""),
        contract_reference=doc.get("contract_reference", ""),
        language=doc.get("language", ""),
        credits_invoice_id=doc.get("credits_invoice_id", ""),
        credit_note_ids=doc.get("credit_note_ids", []),
        version=doc["version"],
        dunning_stage=doc.get("dunning_stage", 0),
        created_at=iso(doc.get("created_at")),
        updated_at=iso(doc.get("updated_at")),
        origin_trace_id=doc.get("origin_trace_id", ""),
        profile_version=doc.get("profile_version", 0),
        reminder_fee_agreed=doc.get("reminder_fee_agreed"),
        reason=doc.get("reason", ""),
        delivery=delivery_to_pb(doc["delivery"]) if doc.get("delivery") else None,
    )


def delivery_to_pb(doc: Doc) -> pb.Delivery:
    return pb.Delivery(
        channel=channel_to_pb(doc["channel"]) if doc.get("channel") else pb.CHANNEL_UNSPECIFIED,
        status=doc.get("status", ""),
        sent_at=iso(doc.get("sent_at")),
        delivered_at=iso(doc.get("delivered_at")),
        opened_at=iso(doc.get("opened_at")),
        failed_reason=doc.get("failed_reason", ""),
        deliveries=doc.get("deliveries", 0),
    )


def line_to_pb(ln: Doc) -> pb.InvoiceLine:
    return pb.InvoiceLine(
        number=ln["number"],
        description=ln["description"],
        quantity=ln["quantity"],
        unit_price_minor=ln["unit_price_minor"],
        vat_rate=ln["vat_rate"],
        unit_code=ln["unit_code"],
        net_amount_minor=ln["net_amount_minor"],
        # Lines stored before categories existed are in their rate's default category.
        vat_category=ln.get("vat_category") or default_vat_category(Decimal(ln["vat_rate"])),
        vat_exemption_reason=ln.get("vat_exemption_reason", ""),
    )


def profile_to_pb(profile: CreditorProfile, made_at: datetime | None) -> tenants_pb2.CreditorProfile:
    """A version of the creditor's profile, logo included, with what derives from it."""
    address = profile.address
    return tenants_pb2.CreditorProfile(
        legal_name=profile.legal_name,
        org_number=profile.org_number,
        jurisdiction=profile.jurisdiction,
        company_form=profile.company_form,
        vat_registered=profile.vat_registered,
        address=common_pb2.Address(
            lines=list(address.lines),
            postal_code=address.postal_code,
            city=address.city,
            country=address.country,
        ),
        bank_account=profile.bank_account,
        iban=profile.iban,
        bic=profile.bic,
        bankgiro=profile.bankgiro,
        plusgiro=profile.plusgiro,
        email=profile.email,
        phone=profile.phone,
        website=profile.website,
        logo=profile.logo,
        logo_media_type=profile.logo_media_type,
        logo_sha256=profile.logo_sha256,
        accent_colour=profile.accent_colour,
        footer=profile.footer,
        payment_terms_days=profile.payment_terms_days,
        ehf_attach_pdf=profile.ehf_attach_pdf,
        f_tax_approved=profile.f_tax_approved,
        version=profile.version,
        updated_at=iso(made_at),
        vat_id=profile.vat_id,
        in_enterprise_register=profile.in_enterprise_register,
    )
