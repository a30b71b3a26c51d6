"""One interface for every delivery channel: what the dispatcher hands an adapter, what it gets back,
and the receipts providers post later.

An adapter speaks one provider's protocol (SMTP, an SMS API, a Peppol access point, eFaktura, Vipps,
a print house's drop, Nets AvtaleGiro) and nothing else: it decides nothing about channels, rules or
retries. The dispatcher calls `send` at least once per delivery, always with the same `delivery_id`
(the idempotency key the provider dedupes on: `Idempotency-Key`, the e-mail's Message-ID, the file
name in a drop), so a retry after a crash reaches the customer once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol

ChannelName = Literal["email", "sms", "ehf", "efaktura", "vipps", "print", "avtalegiro"]
CHANNELS: tuple[ChannelName, ...] = ("email", "sms", "ehf", "efaktura", "vipps", "print", "avtalegiro")
DocumentKind = Literal["invoice", "credit_note", "nudge", "reminder", "collection_notice"]
# Kinds that are only a message (the renderer makes no PDF of them): an e-mail goes without attachment.
MESSAGE_KINDS: frozenset[DocumentKind] = frozenset({"nudge"})
# Which contact a failure shows to be bad (the ledger flags it for cleaning).
Contact = Literal["email", "phone", "address", "ehf", "efaktura"]


@dataclass(frozen=True)
class PostalAddress:
    lines: tuple[str, ...] = ()
    postal_code: str = ""
    city: str = ""
    country: str = ""


@dataclass(frozen=True)
class Recipient:
    """The customer as the ledger knows it now (personal data: never logged, never in events)."""

    customer_id: str
    customer_number: str
    name: str
    kind: Literal["consumer", "business"]
    language: str = "nb"
    email: str = ""
    # E.164, e.g. "+4791234567".
    phone: str = ""
    # Businesses: "974760673" (NO) or "5560360793" (SE); with `country` it gives the Peppol id.
    org_number: str = ""
    address: PostalAddress = PostalAddress()
    # National identity number (eFaktura lookups); empty unless the ledger holds one.
    national_id: str = ""


@dataclass(frozen=True)
class Creditor:
    """The sender, from the creditor's profile and the tenant's channel settings."""

    tenant_id: str
    legal_name: str
    org_number: str
    jurisdiction: Literal["NO", "SE"] = "NO"
    email: str = ""
    phone: str = ""
    bank_account: str = ""
    # Per-channel agreements with providers, e.g. {"sms.sender": "Fjordlys", "avtalegiro.agreement": "…"}.
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Payment:
    """What the customer is asked to pay (absent for credit notes)."""

    amount_minor: int
    currency: str
    due_date: date
    kid: str
    payment_link: str


@dataclass(frozen=True)
class Outgoing:
    """One delivery of one document on one channel."""

    delivery_id: str
    tenant_id: str
    invoice_id: str
    invoice_number: str
    kind: DocumentKind
    channel: ChannelName
    recipient: Recipient
    creditor: Creditor
    # The renderer's forms, as stored in the invoice hotel: "pdf" (bytes), "email" (a MIME message
    # with subject, text and HTML; the adapter adds From, To, Message-ID, Date and the PDF), "sms"
    # (UTF-8 text), "ehf" (UBL XML), "html".
    documents: Mapping[str, bytes]
    payment: Payment | None = None
    # The attempt number (1, 2, …): the same delivery_id on every attempt.
    attempt: int = 1


@dataclass(frozen=True)
class SendResult:
    """The provider took the delivery. `delivered`: final now (an SMTP server accepted the mail, a
    file landed in the drop); `accepted`: a receipt will follow by webhook."""

    provider_ref: str
    state: Literal["accepted", "delivered"]
    # What the provider answered, for the operator (status line, receipt id); no personal data.
    detail: str = ""


class ChannelError(Exception):
    """The send did not happen. `retryable`: a timeout, 4xx SMTP, HTTP 429/5xx — try again later
    with backoff. Otherwise the channel refused this delivery for good; `contact` names the contact
    that proved bad (an unknown mailbox, a dead number), which the ledger flags for cleaning."""

    def __init__(
        self, reason: str, *, retryable: bool, code: str = "", contact: Contact | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.code = code
        self.contact = contact


ReceiptStatus = Literal["delivered", "opened", "failed", "bounced", "rejected", "returned", "paid"]


@dataclass(frozen=True)
class Receipt:
    """What a provider reports later about a delivery (parsed from its webhook once the signature
    has been verified)."""

    # The provider's own id of this report: the same report posted twice is applied once.
    event_id: str
    # Our delivery id when the provider echoes it (most do), else its own message id.
    delivery_id: str
    provider_ref: str
    status: ReceiptStatus
    occurred_at: datetime
    reason: str = ""
    contact: Contact | None = None


class BadReceipt(ValueError):
    """A webhook body that is not a receipt of this provider (refused with 400, nothing changes)."""


class ChannelAdapter(Protocol):
    """A channel's provider. Adapters are made once per process and reused."""

    channel: ChannelName
    # The webhook route and secret name: POST /webhooks/<provider>.
    provider: str

    async def send(self, out: Outgoing) -> SendResult:
        """Hand the delivery to the provider; ChannelError when it did not take it."""
        ...

    def parse_receipts(self, body: bytes, content_type: str) -> list[Receipt]:
        """The receipts in a (verified) webhook body; BadReceipt when it is not one."""
        ...

    async def close(self) -> None: ...


class Registry(Protocol):
    """Who can be reached on a channel that needs the receiver registered (Peppol/ELMA for EHF, the
    eFaktura directory). Lookups are cached by the caller; the registry answers now."""

    channel: ChannelName

    async def reachable(self, recipient: Recipient) -> bool: ...

    async def close(self) -> None: ...
