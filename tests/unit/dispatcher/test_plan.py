"""The channel plan: the customer's choices first, then the tenant's order; each channel only with
its contact, consent, form and registration; never twice on one channel."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from services.dispatcher.adapters.base import ChannelName
from services.dispatcher.domain.plan import Customer, Document, plan, unusable
from services.dispatcher.domain.rules import DEFAULT_RULES, DeliveryRules, FallbackRule

ALL_FORMS = frozenset({"pdf", "html", "ehf", "email", "sms"})
INVOICE = Document(kind="invoice", forms=ALL_FORMS)
CONSUMER = Customer(kind="consumer", has_email=True, has_phone=True, has_address=True)
BUSINESS = Customer(kind="business", has_email=True, has_phone=True, has_address=True, has_org_number=True)


def first(customer: Customer, document: Document = INVOICE, **kw: object) -> str | None:
    found = plan(customer, document, DEFAULT_RULES, **kw)  # type: ignore[arg-type]
    return found.candidates[0] if found.candidates else None


def test_a_registered_business_gets_ehf_and_an_unregistered_one_email() -> None:
    assert first(BUSINESS) == "ehf"
    assert first(BUSINESS, registered={"ehf": False}) == "email"


def test_a_business_without_an_ehf_form_gets_email() -> None:
    assert first(BUSINESS, replace(INVOICE, forms=frozenset({"pdf", "email"}))) == "email"


def test_consumers_avtalegiro_then_efaktura_then_email_then_print() -> None:
    everything = replace(CONSUMER, avtalegiro_consent=True, efaktura_consent=True, email_consent=True)
    assert first(everything) == "avtalegiro"
    assert first(replace(everything, avtalegiro_consent=False)) == "efaktura"
    assert first(replace(everything, avtalegiro_consent=False), registered={"efaktura": False}) == "email"
    assert first(CONSUMER) == "print"  # an address but no consent to e-mail


def test_a_consumer_email_needs_consent_or_their_choice_unless_the_tenant_says_otherwise() -> None:
    assert first(CONSUMER) == "print"
    assert first(replace(CONSUMER, email_consent=True)) == "email"
    assert first(replace(CONSUMER, preferences=("email",))) == "email"
    lenient = DEFAULT_RULES.model_copy(update={"consumer_email_needs_consent": False})
    assert plan(CONSUMER, INVOICE, lenient).candidates[0] == "email"


def test_sms_only_with_consent_even_when_chosen() -> None:
    chose_sms = replace(CONSUMER, preferences=("sms",))
    found = plan(chose_sms, INVOICE, DEFAULT_RULES)
    assert "sms" not in found.candidates
    assert found.passed["sms"] == "no consent to SMS"
    assert first(replace(chose_sms, sms_consent=True)) == "sms"


def test_the_customers_choice_comes_before_the_tenants_order() -> None:
    customer = replace(BUSINESS, preferences=("print",))
    assert plan(customer, INVOICE, DEFAULT_RULES).candidates[:2] == ("print", "ehf")


def test_a_flagged_contact_is_not_used() -> None:
    customer = replace(CONSUMER, email_consent=True, flagged=frozenset({"email"}))
    found = plan(customer, INVOICE, DEFAULT_RULES)
    assert found.candidates == ("print",)
    assert "flagged" in found.passed["email"]


def test_payment_channels_are_not_for_credit_notes_and_avtalegiro_not_for_reminders() -> None:
    mandate = replace(CONSUMER, avtalegiro_consent=True, efaktura_consent=True, email_consent=True)
    credit_note = Document(kind="credit_note", forms=ALL_FORMS, payable=False)
    assert first(mandate, credit_note) == "email"
    reminder = Document(kind="reminder", forms=ALL_FORMS)
    assert first(mandate, reminder) == "efaktura"
    assert unusable("avtalegiro", mandate, reminder, DEFAULT_RULES, {}) is not None


def test_never_the_same_document_twice_on_one_channel() -> None:
    customer = replace(CONSUMER, email_consent=True, sms_consent=True)
    found = plan(customer, INVOICE, DEFAULT_RULES, used={"email"}, only=("email", "sms"))
    assert found.candidates == ("sms",)
    assert found.passed["email"] == "already sent on this channel"


def test_nothing_usable_says_why_for_each_channel() -> None:
    nobody = Customer(kind="consumer")
    found = plan(nobody, INVOICE, DEFAULT_RULES)
    assert found.candidates == ()
    assert "print: no postal address" in found.why_none()
    assert "email: no e-mail address" in found.why_none()


def test_vipps_only_when_chosen_with_a_phone() -> None:
    assert unusable("vipps", CONSUMER, INVOICE, DEFAULT_RULES, {}) == "the customer has not chosen Vipps"
    assert unusable("vipps", replace(CONSUMER, preferences=("vipps",)), INVOICE, DEFAULT_RULES, {}) is None


@pytest.mark.parametrize(
    "rule",
    [
        {"name": "x", "channel": "email", "when": "failed", "then": ["email"]},
        {"name": "x", "channel": "email", "when": "unopened", "then": ["sms"]},
        {"name": "x", "channel": "print", "when": "unopened", "after": "P1D", "then": ["sms"]},
        {"name": "x", "channel": "email", "when": "failed", "after": "-P1D", "then": ["sms"]},
        {"name": "x", "channel": "email", "when": "failed", "then": []},
        {"name": "x", "channel": "fax", "when": "failed", "then": ["sms"]},
        {"name": "Bad Name", "channel": "email", "when": "failed", "then": ["sms"]},
    ],
)
def test_rules_that_make_no_sense_are_refused(rule: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FallbackRule.model_validate(rule)


def test_rules_round_trip_as_json_and_rule_names_are_unique() -> None:
    again = DeliveryRules.model_validate_json(DEFAULT_RULES.model_dump_json())
    assert again == DEFAULT_RULES
    rule = DEFAULT_RULES.fallbacks[0].model_dump()
    with pytest.raises(ValidationError):
        DeliveryRules.model_validate({"fallbacks": [rule, rule]})
    assert [r.name for r in DEFAULT_RULES.rules_for("email", "unopened")] == ["email-unopened-sms"]


# --- nudges and a dunning step's channel hints ----------------------------------------------------

NUDGE = Document(kind="nudge", forms=frozenset({"email", "sms"}))
REMINDER = Document(kind="reminder", forms=frozenset({"pdf", "html", "email", "sms"}))


def test_a_nudge_goes_by_sms_first_then_email() -> None:
    reachable = replace(CONSUMER, email_consent=True, sms_consent=True)
    assert plan(reachable, NUDGE, DEFAULT_RULES).candidates == ("sms", "email")
    assert first(replace(reachable, sms_consent=False), NUDGE) == "email"
    assert first(replace(BUSINESS, sms_consent=True), NUDGE) == "sms"


@pytest.mark.parametrize("channel", ["print", "ehf", "avtalegiro", "efaktura", "vipps"])
def test_a_nudge_never_goes_by_letter_ehf_or_a_payment_channel(channel: ChannelName) -> None:
    everything = replace(BUSINESS, efaktura_consent=True, avtalegiro_consent=True, preferences=(channel,))
    with_every_form = replace(NUDGE, forms=ALL_FORMS)
    why = unusable(channel, everything, with_every_form, DEFAULT_RULES, {})
    assert why == "a nudge goes by SMS or e-mail only"
    assert channel not in plan(everything, with_every_form, DEFAULT_RULES).candidates


def test_nothing_reaches_a_customer_without_sms_or_email_for_a_nudge() -> None:
    letters_only = Customer(kind="consumer", has_address=True)
    found = plan(letters_only, NUDGE, DEFAULT_RULES)
    assert found.candidates == ()
    assert "sms: no phone number" in found.why_none()


def test_hints_come_first_in_their_order() -> None:
    reachable = replace(CONSUMER, email_consent=True, sms_consent=True)
    hinted = replace(NUDGE, hints=("email", "sms"))
    assert plan(reachable, hinted, DEFAULT_RULES).candidates == ("email", "sms")
    # Before the customer's own choice, too: the dunning step chose for this document.
    chose_sms = replace(reachable, preferences=("sms",))
    assert plan(chose_sms, hinted, DEFAULT_RULES).candidates[0] == "email"


def test_a_hint_the_tenants_rules_do_not_allow_for_the_kind_is_passed_over() -> None:
    reachable = replace(CONSUMER, email_consent=True, sms_consent=True, efaktura_consent=True)
    # The default rules send reminders by eFaktura, e-mail or post: an SMS hint is not one of them.
    found = plan(reachable, replace(REMINDER, hints=("sms", "print", "email")), DEFAULT_RULES)
    assert found.candidates == ("print", "email", "efaktura")
    assert found.passed["sms"] == "hinted, but not among the tenant's channels for a reminder"
    # A hint for a channel the customer cannot receive on goes by the next one.
    no_address = replace(reachable, has_address=False)
    assert (
        plan(no_address, replace(REMINDER, hints=("print", "email")), DEFAULT_RULES).candidates[0] == "email"
    )


def test_unknown_hints_are_no_channel_and_fallbacks_ignore_hints() -> None:
    reachable = replace(CONSUMER, email_consent=True, sms_consent=True)
    assert first(reachable, replace(NUDGE, hints=("pigeon", "email"))) == "email"
    fallback = plan(reachable, replace(NUDGE, hints=("sms",)), DEFAULT_RULES, used={"sms"}, only=("email",))
    assert fallback.candidates == ("email",)


def test_a_failed_nudge_sms_falls_back_to_email_and_an_invoice_sms_to_a_letter() -> None:
    assert [r.name for r in DEFAULT_RULES.rules_for("sms", "failed", "nudge")][:1] == [
        "nudge-sms-failed-email"
    ]
    assert [r.name for r in DEFAULT_RULES.rules_for("sms", "failed", "invoice")] == ["sms-failed-print"]
    assert [r.name for r in DEFAULT_RULES.rules_for("sms", "failed", "reminder")] == ["sms-failed-print"]


def test_nudge_channels_other_than_sms_and_email_are_refused() -> None:
    with pytest.raises(ValidationError, match="SMS or e-mail only"):
        DeliveryRules.model_validate({"nudges": {"consumer": ["sms", "print"], "business": ["email"]}})
    assert DeliveryRules.model_validate({"nudges": {"consumer": ["email"], "business": ["email"]}}).order(
        "nudge", "consumer"
    ) == ("email",)


def test_rules_saved_before_nudges_existed_still_load() -> None:
    saved = DEFAULT_RULES.model_dump(mode="json")
    del saved["nudges"]
    for rule in saved["fallbacks"]:
        del rule["documents"]
    saved["fallbacks"] = [r for r in saved["fallbacks"] if r["name"] != "nudge-sms-failed-email"]
    rules = DeliveryRules.model_validate(saved)
    assert rules.order("nudge", "consumer") == ("sms", "email")
    assert [r.name for r in rules.rules_for("sms", "failed", "nudge")] == ["sms-failed-print"]
