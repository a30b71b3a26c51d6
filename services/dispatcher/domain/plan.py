"""The channel plan: which channels can carry a document to a customer, best first.

Pure: the customer as the ledger knows it, the document, the tenant's rules and what the registries
said go in; the candidates and why every other channel was passed over come out. A dunning step's
channel hints come first (those the tenant's order for the document allows), then the customer's own
choices (in their order), then the tenant's order for their kind of customer; a channel is usable
only with the contact it needs (not flagged as bad), the consent it needs, the form the renderer made
for it, and — for EHF and eFaktura — the receiver registered.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import cast

from services.dispatcher.adapters.base import ChannelName, Contact
from services.dispatcher.domain.rules import NUDGE_CHANNELS, CustomerKind, DeliveryRules, DocumentKind

# The renderer's forms each channel sends (any one of a tuple is enough).
FORMS: Mapping[ChannelName, tuple[str, ...]] = {
    "email": ("email",),
    "sms": ("sms",),
    "ehf": ("ehf",),
    "efaktura": ("pdf",),
    "vipps": ("pdf",),
    "print": ("pdf",),
    "avtalegiro": ("pdf",),
}
# The contact each channel uses (flagged contacts are not used again until the ERP changes them).
CONTACT: Mapping[ChannelName, Contact] = {
    "email": "email",
    "sms": "phone",
    "vipps": "phone",
    "ehf": "ehf",
    "efaktura": "efaktura",
    "print": "address",
    "avtalegiro": "efaktura",
}
# Channels that ask for a payment: not for credit notes.
PAYMENT_CHANNELS: frozenset[ChannelName] = frozenset({"avtalegiro", "vipps", "efaktura"})
# Channels whose receiver must be registered (asked of a registry, cached).
REGISTERED: frozenset[ChannelName] = frozenset({"ehf", "efaktura"})


@dataclass(frozen=True)
class Customer:
    """What the plan needs of a customer (whether contacts exist, not their values)."""

    kind: CustomerKind
    has_email: bool = False
    has_phone: bool = False
    has_address: bool = False
    has_org_number: bool = False
    email_consent: bool = False
    sms_consent: bool = False
    efaktura_consent: bool = False
    avtalegiro_consent: bool = False
    preferences: tuple[ChannelName, ...] = ()
    flagged: frozenset[Contact] = frozenset()


@dataclass(frozen=True)
class Document:
    kind: DocumentKind
    forms: frozenset[str]
    # Whether it asks for a payment (an invoice or reminder with something left to pay).
    payable: bool = True
    # The dunning step's channel hints, preferred first (empty: none given).
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    candidates: tuple[ChannelName, ...]
    # Every channel considered and passed over, with why (for the deviation when nothing is left).
    passed: Mapping[ChannelName, str] = field(default_factory=dict)

    def why_none(self) -> str:
        return (
            "; ".join(f"{channel}: {why}" for channel, why in self.passed.items()) or "no channel configured"
        )


def unusable(
    channel: ChannelName,
    customer: Customer,
    document: Document,
    rules: DeliveryRules,
    registered: Mapping[ChannelName, bool | None],
) -> str | None:
    """Why `channel` cannot carry this document to this customer, or None when it can. A registry
    answer of None means "not asked yet": the channel stays a candidate until it is asked."""
    if document.kind == "nudge" and channel not in NUDGE_CHANNELS:
        return "a nudge goes by SMS or e-mail only"
    if not any(form in document.forms for form in FORMS[channel]):
        return f"no {'/'.join(FORMS[channel])} form rendered"
    if CONTACT[channel] in customer.flagged:
        return f"the customer's {CONTACT[channel]} is flagged as unusable"
    if channel in PAYMENT_CHANNELS and not document.payable:
        return "nothing to pay"
    if registered.get(channel) is False:
        return "the receiver is not registered"
    match channel:
        case "email":
            if not customer.has_email:
                return "no e-mail address"
            consented = customer.email_consent or "email" in customer.preferences
            if customer.kind == "consumer" and rules.consumer_email_needs_consent and not consented:
                return "no consent to e-mail"
        case "sms":
            if not customer.has_phone:
                return "no phone number"
            if not customer.sms_consent:
                return "no consent to SMS"
        case "vipps":
            if not customer.has_phone:
                return "no phone number"
            if "vipps" not in customer.preferences:
                return "the customer has not chosen Vipps"
        case "ehf":
            if customer.kind != "business" or not customer.has_org_number:
                return "not a business with an organisation number"
        case "efaktura":
            if customer.kind != "consumer":
                return "eFaktura is for consumers"
            if not customer.efaktura_consent and "efaktura" not in customer.preferences:
                return "no eFaktura agreement"
        case "avtalegiro":
            if not customer.avtalegiro_consent:
                return "no AvtaleGiro mandate"
            if document.kind != "invoice":
                return "AvtaleGiro carries invoices only"
        case "print":
            if not customer.has_address:
                return "no postal address"
    return None


def plan(
    customer: Customer,
    document: Document,
    rules: DeliveryRules,
    *,
    registered: Mapping[ChannelName, bool | None] | None = None,
    used: Set[str] = frozenset(),
    only: tuple[ChannelName, ...] | None = None,
) -> Plan:
    """The usable channels, best first: the document's hints the tenant's order allows, the customer's
    choices, then the tenant's order (or `only`, a fallback rule's list). `used`: channels this
    document went out on already (never twice)."""
    tenants = rules.order(document.kind, customer.kind)
    hinted = tuple(channel for channel in channels_named(document.hints) if channel in tenants)
    order = only if only is not None else (*hinted, *customer.preferences, *tenants)
    seen: list[ChannelName] = []
    passed: dict[ChannelName, str] = {}
    for channel in order:
        if channel in seen or channel in passed:
            continue
        if channel in used:
            passed[channel] = "already sent on this channel"
            continue
        why = unusable(channel, customer, document, rules, registered or {})
        if why is None:
            seen.append(channel)
        else:
            passed[channel] = why
    if only is None:
        for channel in channels_named(document.hints):
            if channel not in seen and channel not in passed:
                passed[channel] = (
                    f"hinted, but not among the tenant's channels for a {document.kind.replace('_', ' ')}"
                )
    return Plan(tuple(seen), passed)


def channels_named(hints: tuple[str, ...]) -> tuple[ChannelName, ...]:
    """The hints that name a channel, in their order (an unknown name is no channel)."""
    return tuple(cast(ChannelName, hint) for hint in hints if hint in FORMS)
