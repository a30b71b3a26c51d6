"""The ePayment request a delivery becomes: the amount in øre, the phone without its plus, our
delivery id as the reference, a description in the customer's language; and what cannot be one
(a credit note asks for no money)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.dispatcher.adapters.base import ChannelError, Outgoing
from services.dispatcher.adapters.vipps import VippsAdapter, payment_description
from tests.support.http_channels import API_KEY, outgoing


def _vipps() -> VippsAdapter:
    return VippsAdapter(
        base_url="http://127.0.0.1:9", api_key=API_KEY, subscription_key="sub", merchant_serial_number="1"
    )


def test_an_invoice_becomes_a_push_payment_request() -> None:
    out = outgoing("vipps", amount_minor=125_050)
    request = _vipps().request_for(out)
    assert request == {
        "amount": {"currency": "NOK", "value": 125_050},
        "paymentMethod": {"type": "WALLET"},
        "customer": {"phoneNumber": "4791234568"},
        "reference": out.delivery_id,
        "userFlow": "PUSH_MESSAGE",
        "paymentDescription": "Faktura 10042",
    }


@pytest.mark.parametrize(
    ("kind", "language", "text"),
    [
        ("invoice", "nb", "Faktura 10042"),
        ("invoice", "nn-NO", "Faktura 10042"),
        ("invoice", "en", "Invoice 10042"),
        ("invoice", "de", "Invoice 10042"),
        ("reminder", "nb", "Purring på faktura 10042"),
        ("reminder", "sv_SE", "Påminnelse om faktura 10042"),
        ("collection_notice", "nb", "Inkassovarsel for faktura 10042"),
    ],
)
def test_the_description_speaks_the_customers_language(kind: str, language: str, text: str) -> None:
    assert payment_description(kind, "10042", language) == text


def test_the_description_is_cut_to_what_the_app_shows() -> None:
    assert len(payment_description("invoice", "9" * 200, "nb")) == 100


def _refused(out: Outgoing) -> ChannelError:
    with pytest.raises(ChannelError) as refused:
        _vipps().request_for(out)
    assert not refused.value.retryable
    return refused.value


def test_a_credit_note_asks_for_no_payment() -> None:
    refused = _refused(outgoing("vipps", kind="credit_note", payment=False))
    assert refused.code == "no_payment"
    assert refused.contact is None


def test_other_currencies_and_nothing_to_pay_are_refused() -> None:
    out = outgoing("vipps")
    assert out.payment is not None
    assert _refused(replace(out, payment=replace(out.payment, currency="SEK"))).code == "not_payable"
    assert _refused(replace(out, payment=replace(out.payment, amount_minor=0))).code == "not_payable"


def test_a_customer_without_a_mobile_number_is_a_bad_phone_contact() -> None:
    refused = _refused(outgoing("vipps", phone=""))
    assert refused.code == "no_phone"
    assert refused.contact == "phone"


@pytest.mark.parametrize("delivery_id", ["short", "with_underscore_0001", "x" * 65])
def test_a_delivery_id_that_cannot_be_a_reference_is_refused(delivery_id: str) -> None:
    assert _refused(replace(outgoing("vipps"), delivery_id=delivery_id)).code == "bad_reference"
