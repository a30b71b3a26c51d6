"""Who a letter can reach, and the print house's receipts as the dispatcher reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest

from services.dispatcher.adapters.base import BadReceipt, Creditor, Outgoing, PostalAddress, Recipient
from services.dispatcher.adapters.print import PrintAdapter, postal_address


def letter(address: PostalAddress, jurisdiction: Literal["NO", "SE"] = "NO") -> Outgoing:
    return Outgoing(
        delivery_id="d-1",
        tenant_id="t",
        invoice_id="i",
        invoice_number="1",
        kind="invoice",
        channel="print",
        recipient=Recipient(
            customer_id="c", customer_number="1", name="Kari Nordmann", kind="consumer", address=address
        ),
        creditor=Creditor(
            tenant_id="t", legal_name="Ström AB", org_number="5566778899", jurisdiction=jurisdiction
        ),
        documents={},
    )


def test_the_address_is_tidied_and_the_country_defaults_to_the_creditors() -> None:
    address = PostalAddress(lines=(" Storgatan 1 ", "", "c/o Berg"), postal_code=" 411 09", city="Göteborg")

    assert postal_address(letter(address, "SE")) == {
        "lines": ["Storgatan 1", "c/o Berg"],
        "postal_code": "411 09",
        "city": "Göteborg",
        "country": "SE",
    }


@pytest.mark.parametrize(
    "address",
    [
        PostalAddress(),
        PostalAddress(lines=("",), postal_code="3044", city="Drammen"),
        PostalAddress(lines=("Storgata 1",), city="Drammen"),
        PostalAddress(lines=("Storgata 1",), postal_code="3044"),
    ],
)
def test_an_address_a_letter_cannot_reach(address: PostalAddress) -> None:
    assert postal_address(letter(address)) is None


ADAPTER = PrintAdapter(Path("/nonexistent-drop"))


def body(**fields: Any) -> bytes:
    item = {
        "event_id": "e-1",
        "delivery_id": "d-1",
        "status": "printed",
        "reason": "",
        "at": "2025-03-14T10:00:00Z",
    }
    item.update(fields)
    return json.dumps({k: v for k, v in item.items() if v is not None}).encode()


def test_printed_is_delivered_and_returned_flags_the_address() -> None:
    printed, returned = ADAPTER.parse_receipts(
        b"[" + body() + b"," + body(event_id="e-2", status="returned", reason="addressee unknown") + b"]",
        "application/json",
    )

    assert (printed.event_id, printed.delivery_id, printed.provider_ref) == ("e-1", "d-1", "d-1")
    assert (printed.status, printed.contact) == ("delivered", None)
    assert printed.occurred_at == datetime(2025, 3, 14, 10, tzinfo=UTC)
    assert (returned.status, returned.contact, returned.reason) == (
        "returned",
        "address",
        "addressee unknown",
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"[1]",
        body(status="lost"),
        body(delivery_id=None),
        body(event_id=""),
        body(at=None),
    ],
)
def test_what_is_not_a_receipt_is_refused(raw: bytes) -> None:
    with pytest.raises(BadReceipt):
        ADAPTER.parse_receipts(raw, "application/json")
