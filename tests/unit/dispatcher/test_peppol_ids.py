"""Peppol participant ids from organisation numbers (0192 Norway, 0007 Sweden), and the access
point's receipts read strictly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.dispatcher.adapters.base import BadReceipt, PostalAddress, Receipt, Recipient
from services.dispatcher.adapters.peppol import PeppolAdapter, participant_id, recipient_participant


@pytest.mark.parametrize(
    ("org_number", "country", "expected"),
    [
        ("974760673", "NO", "0192:974760673"),
        ("974 760 673", "no", "0192:974760673"),
        ("NO974760673MVA", "NO", "0192:974760673"),
        ("5560360793", "SE", "0007:5560360793"),
        ("556036-0793", "SE", "0007:5560360793"),
        # No country: 9 digits is Norwegian, 10 Swedish.
        ("974760673", "", "0192:974760673"),
        ("5560360793", "", "0007:5560360793"),
        # A wrong check digit, a wrong length for the country, a country Peppol ids here do not cover.
        ("974760674", "NO", None),
        ("5560360793", "NO", None),
        ("974760673", "SE", None),
        ("974760673", "DK", None),
        ("", "NO", None),
        ("12345", "", None),
    ],
)
def test_participant_id(org_number: str, country: str, expected: str | None) -> None:
    assert participant_id(org_number, country) == expected


def test_only_businesses_have_a_participant_id() -> None:
    business = Recipient(
        customer_id="c",
        customer_number="1",
        name="Kunde AS",
        kind="business",
        org_number="974760673",
        address=PostalAddress(country="NO"),
    )
    assert recipient_participant(business) == "0192:974760673"
    consumer = Recipient(
        customer_id="c", customer_number="1", name="Kari", kind="consumer", org_number="974760673"
    )
    assert recipient_participant(consumer) is None


def _parse(payload: object, content_type: str = "application/json") -> list[Receipt]:
    return PeppolAdapter("http://ap.invalid", "key").parse_receipts(
        json.dumps(payload).encode(), content_type
    )


def test_a_rejection_keeps_its_reason_and_blames_no_contact() -> None:
    [receipt] = _parse(
        {
            "event_id": "e1",
            "id": "ap-1",
            "delivery_id": "d1",
            "status": "rejected",
            "reason": "Receiver could not process the invoice",
            "at": "2025-06-16T10:00:00.000Z",
        }
    )
    assert (receipt.event_id, receipt.delivery_id, receipt.provider_ref, receipt.status) == (
        "e1",
        "d1",
        "ap-1",
        "rejected",
    )
    assert receipt.reason == "Receiver could not process the invoice"
    assert receipt.contact is None
    assert receipt.occurred_at == datetime(2025, 6, 16, 10, 0, tzinfo=UTC)


def test_a_receipt_without_our_delivery_id_falls_back_on_the_document_id() -> None:
    [receipt] = _parse(
        {"event_id": "e1", "id": "ap-1", "status": "delivered", "reason": "", "at": "2025-06-16T10:00:00"}
    )
    assert (receipt.delivery_id, receipt.status, receipt.occurred_at.tzinfo) == ("ap-1", "delivered", UTC)


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "delivered",
        {"id": "ap-1", "status": "delivered", "at": "2025-06-16T10:00:00Z"},
        {"event_id": "e1", "status": "delivered", "at": "2025-06-16T10:00:00Z"},
        {"event_id": "e1", "id": "ap-1", "status": "opened", "at": "2025-06-16T10:00:00Z"},
        {"event_id": "e1", "id": "ap-1", "status": "delivered", "at": "yesterday"},
        {"event_id": "e1", "id": 7, "status": "delivered", "at": "2025-06-16T10:00:00Z"},
    ],
)
def test_what_is_not_a_receipt_is_refused(payload: object) -> None:
    with pytest.raises(BadReceipt):
        _parse(payload)


def test_a_body_that_is_not_json_is_refused() -> None:
    adapter = PeppolAdapter("http://ap.invalid", "key")
    with pytest.raises(BadReceipt):
        adapter.parse_receipts(b"<xml/>", "application/json")
    with pytest.raises(BadReceipt):
        adapter.parse_receipts(b"{}", "text/xml")
