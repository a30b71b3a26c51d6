"""A tenant's delivery rules: data, not code.

Which channels to try for a document, in order, by customer kind and document kind; and what to do
when a delivery fails or goes unread. Every tenant starts from `DEFAULT_RULES`; an operator replaces
them with `fordring deliveries rules set FILE` (JSON of this shape), and the dispatcher checks them
on the way in (a rule naming an unknown channel or a negative delay is refused, whole).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.dispatcher.adapters.base import ChannelName

# What happened to a delivery that a rule reacts to:
#   failed      the provider refused it or reported it failed (bounce, dead number, rejection, return)
#   unopened    delivered, but the customer did not open the invoice page within `after`
#   undelivered accepted by the provider, but no receipt within `after` (stuck)
Condition = Literal["failed", "unopened", "undelivered"]
# "operator": no channel to try; a deviation asks a person to act.
Target = ChannelName | Literal["operator"]
CustomerKind = Literal["consumer", "business"]
DocumentKind = Literal["invoice", "credit_note", "nudge", "reminder", "collection_notice"]
# The channels a nudge may take: it is a short message with the payment link (the renderer makes only
# its e-mail and SMS), never a letter, an EHF document or a payment claim.
NUDGE_CHANNELS: frozenset[ChannelName] = frozenset({"sms", "email"})


class _Rules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FallbackRule(_Rules):
    """When a delivery on `channel` meets `when` (after `after`), try `then`, the first usable.
    `documents`: the kinds of document the rule is for (empty: every kind)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    channel: ChannelName
    when: Condition
    after: timedelta = timedelta(0)
    then: tuple[Target, ...] = Field(min_length=1)
    documents: tuple[DocumentKind, ...] = ()

    def applies_to(self, document: DocumentKind) -> bool:
        return not self.documents or document in self.documents

    @model_validator(mode="after")
    def _sane(self) -> FallbackRule:
        if self.after < timedelta(0):
            raise ValueError(f"rule {self.name}: 'after' must not be negative")
        if self.when != "failed" and self.after <= timedelta(0):
            raise ValueError(f"rule {self.name}: '{self.when}' needs a positive 'after'")
        if self.when == "unopened" and self.channel not in ("email", "sms", "efaktura"):
            raise ValueError(
                f"rule {self.name}: only e-mail, SMS and eFaktura carry a link that can be opened"
            )
        if self.channel in self.then:
            raise ValueError(f"rule {self.name}: a fallback never sends on the channel that failed")
        return self


class ChannelOrder(_Rules):
    """The channels to try, best first, for one kind of customer."""

    consumer: tuple[ChannelName, ...]
    business: tuple[ChannelName, ...]

    def for_kind(self, kind: CustomerKind) -> tuple[ChannelName, ...]:
        return self.consumer if kind == "consumer" else self.business


class DeliveryRules(_Rules):
    # Invoices and credit notes.
    documents: ChannelOrder = ChannelOrder(
        consumer=("avtalegiro", "efaktura", "email", "print"),
        business=("ehf", "email", "print"),
    )
    # Reminders and debt-collection notices: no AvtaleGiro (a reminder is not a claim), no EHF (a
    # reminder is not an invoice document in Peppol BIS).
    reminders: ChannelOrder = ChannelOrder(
        consumer=("efaktura", "email", "print"),
        business=("email", "print"),
    )
    # Nudges (a friendly word with the payment link before any reminder): SMS first, e-mail after;
    # only these two (NUDGE_CHANNELS).
    nudges: ChannelOrder = ChannelOrder(consumer=("sms", "email"), business=("sms", "email"))
    # Whether a consumer's e-mail address is enough, or e-mail needs their consent (or their choice of
    # e-mail): Norwegian bookkeeping rules want the consumer's acceptance of electronic invoices.
    consumer_email_needs_consent: bool = True
    fallbacks: tuple[FallbackRule, ...] = (
        FallbackRule(
            name="email-unopened-sms",
            channel="email",
            when="unopened",
            after=timedelta(days=3),
            then=("sms",),
        ),
        FallbackRule(name="email-failed", channel="email", when="failed", then=("sms", "print")),
        FallbackRule(name="ehf-rejected-email", channel="ehf", when="failed", then=("email", "print")),
        FallbackRule(
            name="efaktura-failed-email", channel="efaktura", when="failed", then=("email", "print")
        ),
        FallbackRule(
            name="avtalegiro-failed-email",
            channel="avtalegiro",
            when="failed",
            then=("efaktura", "email", "print"),
        ),
        FallbackRule(name="vipps-failed-email", channel="vipps", when="failed", then=("email", "print")),
        # Before the general SMS rule: the first rule that applies is the one taken.
        FallbackRule(
            name="nudge-sms-failed-email", channel="sms", when="failed", then=("email",), documents=("nudge",)
        ),
        FallbackRule(name="sms-failed-print", channel="sms", when="failed", then=("print",)),
        FallbackRule(name="print-returned", channel="print", when="failed", then=("operator",)),
        FallbackRule(
            name="ehf-stuck",
            channel="ehf",
            when="undelivered",
            after=timedelta(days=1),
            then=("email", "operator"),
        ),
        FallbackRule(
            name="print-stuck",
            channel="print",
            when="undelivered",
            after=timedelta(days=5),
            then=("operator",),
        ),
    )

    @model_validator(mode="after")
    def _unique_names(self) -> DeliveryRules:
        names = [rule.name for rule in self.fallbacks]
        if len(names) != len(set(names)):
            raise ValueError("fallback rule names must be unique")
        return self

    @model_validator(mode="after")
    def _nudges_are_messages(self) -> DeliveryRules:
        other = sorted({*self.nudges.consumer, *self.nudges.business} - NUDGE_CHANNELS)
        if other:
            raise ValueError(f"nudges go by SMS or e-mail only, not {', '.join(other)}")
        return self

    def order(self, document: DocumentKind, customer: CustomerKind) -> tuple[ChannelName, ...]:
        if document == "nudge":
            return self.nudges.for_kind(customer)
        chosen = self.reminders if document in ("reminder", "collection_notice") else self.documents
        return chosen.for_kind(customer)

    def rules_for(
        self, channel: ChannelName, when: Condition, document: DocumentKind | None = None
    ) -> tuple[FallbackRule, ...]:
        """The rules for a delivery on `channel` meeting `when`, in order (of a `document` kind: those
        that apply to it)."""
        return tuple(
            r
            for r in self.fallbacks
            if r.channel == channel and r.when == when and (document is None or r.applies_to(document))
        )


DEFAULT_RULES = DeliveryRules()
