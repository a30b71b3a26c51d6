"""Every event Fordring puts on Kafka, in one place.

The envelope is `{id, type, version, tenant_id, subject, occurred_at, data}`; `type` discriminates
`data`. The key on Kafka is `subject` (the invoice id), so one invoice's events stay in order.
Events carry ids, amounts and states, never personal data: a service that needs a customer's
address asks the ledger over gRPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.common import attributes as attr
from services.common.ids import new_id

INVOICE_TOPIC: Final = "fordring.ledger.invoice.v1"
CUSTOMER_TOPIC: Final = "fordring.ledger.customer.v1"
# Keyed by tenant id: changes to a tenant (its creditor profile).
TENANT_TOPIC: Final = "fordring.ledger.tenant.v1"
PAYMENT_TOPIC: Final = "fordring.matcher.payment.v1"
DUNNING_TOPIC: Final = "fordring.dunning.action.v1"
DOCUMENT_TOPIC: Final = "fordring.renderer.document.v1"
DELIVERY_TOPIC: Final = "fordring.dispatcher.delivery.v1"
DLQ_SUFFIX: Final = ".dlq"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InvoiceSummary(_Model):
    """What a consumer needs to know of an invoice after a change (no personal data)."""

    invoice_id: str
    kind: Literal["invoice", "credit_note"]
    invoice_number: str
    kid: str
    customer_id: str
    customer_number: str
    customer_kind: Literal["consumer", "business"]
    currency: str
    issue_date: str
    due_date: str
    gross_minor: int
    charges_minor: int
    paid_minor: int
    credited_minor: int
    balance_minor: int
    status: str
    dunning_stage: int
    version: int
    language: str
    # The version of the creditor's profile it was issued under (0: issued before profiles existed).
    profile_version: int = 0
    # Swedish debt: a påminnelseavgift agreed when the debt arose (None: the dunning policy decides).
    reminder_fee_agreed: bool | None = None


class Allocation(_Model):
    invoice_id: str
    amount_minor: int = Field(gt=0)
    # The invoice version the matcher saw; the ledger rejects the proposal if the invoice has since
    # been credited or written off (it never applies a payment blindly).
    based_on_version: int | None = None


# --- ledger: facts ---------------------------------------------------------------------------


class InvoiceIssuedData(_Model):
    invoice: InvoiceSummary


class CreditNoteIssuedData(_Model):
    credit_note: InvoiceSummary
    invoice: InvoiceSummary
    amount_minor: int


class PaymentAppliedData(_Model):
    payment_id: str
    invoice: InvoiceSummary
    amount_minor: int
    paid_on: str
    method: str
    # The proposal this came from (a PaymentMatched event id), empty for RecordPayment.
    source_event_id: str = ""


class PaymentUnappliedData(_Model):
    """A payment was taken back from the invoice (the bank returned it): the invoice owes it again."""

    payment_id: str
    invoice: InvoiceSummary
    amount_minor: int
    reason: str
    # The PaymentReversed event this came from.
    source_event_id: str = ""


class CustomerCreditChangedData(_Model):
    customer_id: str
    customer_number: str
    currency: str
    credit_balance_minor: int
    change_minor: int
    reason: str


class InvoiceOverdueData(_Model):
    invoice: InvoiceSummary


class ChargeAddedData(_Model):
    """A dunning action applied: a reminder, a collection notice, a hand-off, fees, interest."""

    invoice: InvoiceSummary
    action_id: str
    action: str
    charge_minor: int
    source_event_id: str
    # The payment deadline the notice gives (ISO date), as the dunning service proposed it.
    deadline: str = ""
    description: str = ""
    # The dunning step's channel hints (the dispatcher's channel names, in order of preference) and
    # whether the document carries the payment link; empty: the tenant's delivery rules decide.
    channels: list[str] = Field(default_factory=list)
    payment_link: bool = False
    # Late-payment interest accrued to the day of the action (shown on reminders and notices; what
    # the action charges of it is in charge_minor).
    interest_to_date_minor: int = 0
    # What the document offers the customer besides paying: "avtalegiro", "efaktura" (sign up for
    # automatic payment; the early nudge to customers who paid late before).
    offers: list[str] = Field(default_factory=list)


class InvoiceWrittenOffData(_Model):
    invoice: InvoiceSummary
    amount_minor: int
    reason: str


class DueDateChangedData(_Model):
    """Customer service gave the customer more time: `invoice.due_date` is the new due date."""

    invoice: InvoiceSummary
    due_date_before: str


class InvoiceNoteAddedData(_Model):
    """A message on the invoice's thread between the customer and customer service, or a dispute.
    The text stays with the ledger (InvoiceNoteService): it is the customer's own words."""

    invoice: InvoiceSummary
    note_id: str
    author: Literal["customer", "staff"]
    kind: Literal["message", "dispute", "dispute_resolved"]


class ProposalRejectedData(_Model):
    """A proposal (PaymentMatched, DunningActionTaken) the ledger did not apply, and why."""

    proposal_event_id: str
    proposal_type: str
    invoice_id: str
    reason: str
    detail: str
    current_version: int | None = None
    current_status: str | None = None
    # The payment a refused PaymentMatched was for (its proposer finds it by id).
    payment_id: str = ""


class CustomerUpsertedData(_Model):
    customer_id: str
    customer_number: str
    kind: Literal["consumer", "business"]
    language: str
    channel_preferences: list[str]
    email_consent: bool
    sms_consent: bool
    version: int
    efaktura_consent: bool = False
    avtalegiro_consent: bool = False


class ProfileAddress(_Model):
    lines: list[str]
    postal_code: str
    city: str
    country: str


class CreditorProfileData(_Model):
    """A version of the creditor's profile (services/common/creditor.py) without the logo itself:
    its SHA-256 and media type say which one it is (fetch it with TenantDirectoryService)."""

    legal_name: str
    org_number: str
    jurisdiction: Literal["NO", "SE"]
    company_form: str
    vat_registered: bool
    # Derived: "NO974760673MVA", "SE556036079301"; "" when not VAT registered.
    vat_id: str
    # Derived: NO AS/ASA/NUF (Foretaksregisteret, stated on invoices).
    in_enterprise_register: bool
    address: ProfileAddress
    bank_account: str
    iban: str
    bic: str
    bankgiro: str
    plusgiro: str
    email: str
    phone: str
    website: str
    logo_sha256: str
    logo_media_type: str
    accent_colour: str
    footer: str
    payment_terms_days: int
    ehf_attach_pdf: bool
    f_tax_approved: bool


class TenantProfileChangedData(_Model):
    """A tenant's creditor profile has a new version (versions never change once made)."""

    tenant_id: str
    version: int
    profile: CreditorProfileData


# --- proposals from other services -----------------------------------------------------------


class PaymentMatchedData(_Model):
    """The matcher proposes: this incoming payment pays these invoices."""

    payment_id: str
    amount_minor: int = Field(gt=0)
    currency: str
    paid_on: str
    method: str
    reference: str = ""
    payer_account: str = ""
    # Who paid, when known: what is not allocated becomes this customer's credit balance.
    customer_id: str = ""
    allocations: list[Allocation]


class PaymentReceivedData(_Model):
    """The matcher read a payment from a bank file and decided what it is. Every payment is announced
    (also one in review): while it is undecided, dunning holds reminders on its candidate invoices."""

    payment_id: str
    import_id: str
    amount_minor: int = Field(gt=0)
    currency: str
    paid_on: str
    direction: Literal["credit", "debit"] = "credit"
    # "matched": a PaymentMatched proposal follows in the same transaction; "review": an operator
    # decides; "reversal": a debit returning an earlier payment (PaymentReversed follows when known).
    status: Literal["matched", "review", "reversal"]
    method: str
    confidence: float = 0.0
    customer_id: str = ""
    # The invoices it may pay (allocated ones when matched, suggestions when in review).
    candidate_invoice_ids: list[str] = Field(default_factory=list)


class PaymentResolvedData(_Model):
    """An operator decided a payment from the review queue (dunning's holds on its candidates end)."""

    payment_id: str
    # "allocated" (a PaymentMatched follows), "credit" (all of it the customer's credit balance),
    # "refund" (paid back to the payer outside Fordring: nothing is applied).
    resolution: Literal["allocated", "credit", "refund"]
    invoice_ids: list[str] = Field(default_factory=list)
    actor: str = ""


class PaymentReversedData(_Model):
    """A debit in a bank file returned an earlier payment: the ledger takes back what that payment
    paid (the invoices owe it again) and what it left as credit balance."""

    payment_id: str
    reverses_payment_id: str
    amount_minor: int = Field(gt=0)
    currency: str
    paid_on: str
    reason: str = ""


class PayerAccountLearnedData(_Model):
    """An operator allocated a payment from an account no customer had to this customer: the ledger
    records the account on the customer, so the next payment from it matches by itself."""

    customer_id: str
    account: str
    payment_id: str


class DunningActionTakenData(_Model):
    """The dunning service proposes an action on an invoice, based on the version it saw."""

    action_id: str
    invoice_id: str
    based_on_version: int
    # "nudge": a friendly message with the payment link, no fee, no stage (it is applied like the
    # others so it, too, never reaches an invoice that changed since the dunning service looked).
    action: Literal[
        "nudge", "reminder", "collection_notice", "collection_handoff", "late_interest", "compensation"
    ]
    fee_minor: int = Field(default=0, ge=0)
    interest_minor: int = Field(default=0, ge=0)
    # B2B fixed compensation (NO standardkompensasjon, SE förseningsersättning) charged with the step.
    compensation_minor: int = Field(default=0, ge=0)
    description: str = ""
    # The payment deadline the notice gives (ISO date), if any.
    deadline: str = ""
    # Channel hints for the document (the dispatcher's channel names, preferred first).
    channels: list[str] = Field(default_factory=list)
    payment_link: bool = False
    # Interest accrued to the day of the step, shown on the document (charged: interest_minor).
    interest_to_date_minor: int = Field(default=0, ge=0)
    # Offers on the document: "avtalegiro", "efaktura" (sign up for automatic payment).
    offers: list[str] = Field(default_factory=list)


class HandoffCharge(_Model):
    kind: str
    amount_minor: int
    description: str = ""
    added_at: str = ""


class HandoffNotice(_Model):
    action: str
    sent_on: str
    deadline: str = ""
    fee_minor: int = 0


class CollectionHandoffData(_Model):
    """The ledger applied a hand-off: the claim goes to the collection agency (and into the tenant's
    daily export file). Amounts as of the hand-off; ids, no personal data (the agency's file is made
    with the debtor's details from the ledger)."""

    action_id: str
    invoice_id: str
    invoice_number: str
    customer_id: str
    customer_number: str
    customer_kind: Literal["consumer", "business"]
    jurisdiction: Literal["NO", "SE"]
    currency: str
    due_date: str
    principal_minor: int
    paid_minor: int
    charges_minor: int
    balance_minor: int
    interest_to_date_minor: int
    handed_off_on: str
    notices: list[HandoffNotice] = Field(default_factory=list)
    charges: list[HandoffCharge] = Field(default_factory=list)


class DunningPausedData(_Model):
    """Dunning of an invoice is paused (a dispute, customer service) or resumed."""

    pause_id: str
    invoice_id: str
    kind: Literal["dispute", "pause"]
    reason: str
    actor: str = ""
    until: str = ""


# --- renderer: facts --------------------------------------------------------------------------


class DocumentRenderedData(_Model):
    """A document is in the invoice hotel: one event per document of a rendering (the forms of one
    invoice, credit note or reminder rendered together share `rendering_id`)."""

    invoice_id: str
    invoice_number: str
    customer_id: str
    document_id: str
    rendering_id: str
    kind: Literal["invoice", "credit_note", "nudge", "reminder", "collection_notice"]
    form: Literal["pdf", "html", "ehf", "email", "sms"]
    language: str
    media_type: str
    sha256: str
    size: int
    # Every form of this rendering (the channels choose among them).
    forms_available: list[str]
    invoice_version: int
    # The ledger event it was rendered for.
    source_event_id: str
    # A dunning step's channel hints (ChargeAdded.channels), preferred first: the dispatcher tries
    # those its rules allow first. Empty: the tenant's delivery rules alone decide.
    channels: list[str] = Field(default_factory=list)


# --- dispatcher: facts ------------------------------------------------------------------------

DeliveryChannel = Literal["email", "sms", "ehf", "efaktura", "vipps", "print", "avtalegiro"]
DeliveryDocumentKind = Literal["invoice", "credit_note", "nudge", "reminder", "collection_notice"]


class DeliveryData(_Model):
    """One delivery of one document on one channel, at some point of its life. No personal data: the
    contact used is named by kind ("email"), never by value."""

    delivery_id: str
    invoice_id: str
    invoice_number: str
    customer_id: str
    document_kind: DeliveryDocumentKind
    rendering_id: str
    channel: DeliveryChannel
    # "primary", "fallback" (a rule fired), "resend" (customer service asked).
    route: Literal["primary", "fallback", "resend"] = "primary"
    attempt: int = 1
    provider_ref: str = ""
    # Failures: a stable code ("bounced", "rejected", "no_address", …) and a reason for people.
    code: str = ""
    reason: str = ""
    # Failures: whether the dispatcher gives up on this delivery (else it retries).
    final: bool = False


class FallbackScheduledData(_Model):
    """A rule will try another channel at `due_at` unless the invoice is paid or credited by then."""

    delivery_id: str
    invoice_id: str
    invoice_number: str
    customer_id: str
    document_kind: DeliveryDocumentKind
    from_channel: DeliveryChannel
    to_channel: DeliveryChannel
    rule: str
    due_at: datetime


class ContactFlaggedData(_Model):
    """A contact proved unusable (a bounced address, a dead number, mail returned): clean it."""

    customer_id: str
    invoice_id: str
    delivery_id: str
    contact: Literal["email", "phone", "address", "ehf", "efaktura"]
    channel: DeliveryChannel
    reason: str


# --- the envelope ----------------------------------------------------------------------------


class _Envelope(_Model):
    id: str = Field(default_factory=new_id)
    version: int = 1
    tenant_id: str
    subject: str
    occurred_at: datetime


class InvoiceIssued(_Envelope):
    type: Literal["InvoiceIssued"] = "InvoiceIssued"
    data: InvoiceIssuedData


class CreditNoteIssued(_Envelope):
    type: Literal["CreditNoteIssued"] = "CreditNoteIssued"
    data: CreditNoteIssuedData


class PaymentApplied(_Envelope):
    type: Literal["PaymentApplied"] = "PaymentApplied"
    data: PaymentAppliedData


class CustomerCreditChanged(_Envelope):
    type: Literal["CustomerCreditChanged"] = "CustomerCreditChanged"
    data: CustomerCreditChangedData


class TenantProfileChanged(_Envelope):
    type: Literal["TenantProfileChanged"] = "TenantProfileChanged"
    data: TenantProfileChangedData


class InvoiceOverdue(_Envelope):
    type: Literal["InvoiceOverdue"] = "InvoiceOverdue"
    data: InvoiceOverdueData


class ChargeAdded(_Envelope):
    type: Literal["ChargeAdded"] = "ChargeAdded"
    data: ChargeAddedData


class InvoiceWrittenOff(_Envelope):
    type: Literal["InvoiceWrittenOff"] = "InvoiceWrittenOff"
    data: InvoiceWrittenOffData


class DueDateChanged(_Envelope):
    type: Literal["DueDateChanged"] = "DueDateChanged"
    data: DueDateChangedData


class InvoiceNoteAdded(_Envelope):
    type: Literal["InvoiceNoteAdded"] = "InvoiceNoteAdded"
    data: InvoiceNoteAddedData


class ProposalRejected(_Envelope):
    type: Literal["ProposalRejected"] = "ProposalRejected"
    data: ProposalRejectedData


class CustomerUpserted(_Envelope):
    type: Literal["CustomerUpserted"] = "CustomerUpserted"
    data: CustomerUpsertedData


class DocumentRendered(_Envelope):
    type: Literal["DocumentRendered"] = "DocumentRendered"
    data: DocumentRenderedData


class PaymentMatched(_Envelope):
    type: Literal["PaymentMatched"] = "PaymentMatched"
    data: PaymentMatchedData


class PaymentReceived(_Envelope):
    type: Literal["PaymentReceived"] = "PaymentReceived"
    data: PaymentReceivedData


class PaymentResolved(_Envelope):
    type: Literal["PaymentResolved"] = "PaymentResolved"
    data: PaymentResolvedData


class PaymentReversed(_Envelope):
    type: Literal["PaymentReversed"] = "PaymentReversed"
    data: PaymentReversedData


class PayerAccountLearned(_Envelope):
    type: Literal["PayerAccountLearned"] = "PayerAccountLearned"
    data: PayerAccountLearnedData


class PaymentUnapplied(_Envelope):
    type: Literal["PaymentUnapplied"] = "PaymentUnapplied"
    data: PaymentUnappliedData


class DunningActionTaken(_Envelope):
    type: Literal["DunningActionTaken"] = "DunningActionTaken"
    data: DunningActionTakenData


class CollectionHandoff(_Envelope):
    type: Literal["CollectionHandoff"] = "CollectionHandoff"
    data: CollectionHandoffData


class DunningPaused(_Envelope):
    type: Literal["DunningPaused"] = "DunningPaused"
    data: DunningPausedData


class DunningResumed(_Envelope):
    type: Literal["DunningResumed"] = "DunningResumed"
    data: DunningPausedData


class DeliveryAttempted(_Envelope):
    """The provider took the document and a receipt will say whether it arrived (SMS, EHF, print…)."""

    type: Literal["DeliveryAttempted"] = "DeliveryAttempted"
    data: DeliveryData


class Delivered(_Envelope):
    """The document arrived: a receipt after `DeliveryAttempted`, or, alone, a send the provider
    reported delivered at once (an e-mail the receiving server took): then it was sent at this time."""

    type: Literal["Delivered"] = "Delivered"
    data: DeliveryData


class Opened(_Envelope):
    type: Literal["Opened"] = "Opened"
    data: DeliveryData


class DeliveryFailed(_Envelope):
    type: Literal["DeliveryFailed"] = "DeliveryFailed"
    data: DeliveryData


class FallbackScheduled(_Envelope):
    type: Literal["FallbackScheduled"] = "FallbackScheduled"
    data: FallbackScheduledData


class ContactFlagged(_Envelope):
    type: Literal["ContactFlagged"] = "ContactFlagged"
    data: ContactFlaggedData


Event = Annotated[
    InvoiceIssued
    | CreditNoteIssued
    | PaymentApplied
    | CustomerCreditChanged
    | InvoiceOverdue
    | ChargeAdded
    | InvoiceWrittenOff
    | InvoiceNoteAdded
    | DueDateChanged
    | ProposalRejected
    | CustomerUpserted
    | TenantProfileChanged
    | PaymentMatched
    | PaymentReceived
    | PaymentResolved
    | PaymentReversed
    | PayerAccountLearned
    | PaymentUnapplied
    | DunningActionTaken
    | CollectionHandoff
    | DunningPaused
    | DunningResumed
    | DocumentRendered
    | DeliveryAttempted
    | Delivered
    | Opened
    | DeliveryFailed
    | FallbackScheduled
    | ContactFlagged,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


# Events whose subject is an invoice (the others' subject is a customer or a payment).
_INVOICE_SUBJECT: Final = frozenset(
    {
        "InvoiceIssued",
        "CreditNoteIssued",
        "PaymentApplied",
        "PaymentUnapplied",
        "InvoiceOverdue",
        "ChargeAdded",
        "InvoiceWrittenOff",
        "InvoiceNoteAdded",
        "DueDateChanged",
        "ProposalRejected",
        "DunningActionTaken",
        "CollectionHandoff",
        "DunningPaused",
        "DunningResumed",
        "DocumentRendered",
        "DeliveryAttempted",
        "Delivered",
        "Opened",
        "DeliveryFailed",
        "FallbackScheduled",
        "ContactFlagged",
    }
)
_CUSTOMER_SUBJECT: Final = frozenset({"CustomerUpserted", "CustomerCreditChanged", "PayerAccountLearned"})


def trace_headers(event: Event) -> dict[str, str]:
    """Kafka headers naming what the event is about, so publish and consume spans can say it too."""
    headers = {"fordring-tenant-id": event.tenant_id, "fordring-event-id": event.id, "event-type": event.type}
    if event.type in _INVOICE_SUBJECT:
        headers["fordring-invoice-id"] = event.subject
    elif event.type in _CUSTOMER_SUBJECT:
        headers["fordring-customer-id"] = event.subject
    return headers


# Which of those headers become which span attributes (names from services/common/attributes.py).
HEADER_ATTRIBUTES: Final = {
    "fordring-invoice-id": attr.INVOICE_ID,
    "fordring-tenant-id": attr.TENANT_ID,
    "fordring-customer-id": attr.CUSTOMER_ID,
    "fordring-event-id": attr.EVENT_ID,
}


def attributes_from_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    found = {}
    for key, name in HEADER_ATTRIBUTES.items():
        value = (headers or {}).get(key)
        if value:
            found[name] = value.decode() if isinstance(value, bytes) else str(value)
    return found


def parse_event(raw: bytes | str | dict[str, Any]) -> Event:
    """Parse an envelope from Kafka; raises pydantic.ValidationError on a malformed one."""
    if isinstance(raw, dict):
        return EVENT_ADAPTER.validate_python(raw)
    return EVENT_ADAPTER.validate_json(raw)


def encode_event(event: Event) -> bytes:
    return event.model_dump_json().encode()
