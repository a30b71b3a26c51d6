"""The SMS, Vipps and eFaktura webhooks as receipts: each provider's statuses mapped to ours, the
contact a failure proves bad, and anything that is not a receipt refused as a BadReceipt."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.dispatcher.adapters.base import BadReceipt, ChannelAdapter, Receipt
from services.dispatcher.adapters.efaktura import EfakturaAdapter
from services.dispatcher.adapters.sms import SmsAdapter
from services.dispatcher.adapters.vipps import VippsAdapter
from tests.support.http_channels import API_KEY

URL = "http://127.0.0.1:9"
SMS = SmsAdapter(base_url=URL, api_key=API_KEY)
VIPPS = VippsAdapter(base_url=URL, api_key=API_KEY, subscription_key="s", merchant_serial_number="1")
EFAKTURA = EfakturaAdapter(base_url=URL, api_key=API_KEY)
AT = "2026-06-01T10:00:00.000Z"


def _parse(adapter: ChannelAdapter, payload: Any) -> list[Receipt]:
    return adapter.parse_receipts(json.dumps(payload).encode(), "application/json; charset=utf-8")


def _sms(status: str, reason: str = "") -> dict[str, Any]:
    return {
        "event_id": "e1",
        "id": "sms-1",
        "delivery_id": "d1",
        "status": status,
        "reason": reason,
        "at": AT,
    }


def test_an_sms_delivery_report() -> None:
    [receipt] = _parse(SMS, _sms("delivered"))
    assert receipt == Receipt(
        event_id="e1",
        delivery_id="d1",
        provider_ref="sms-1",
        status="delivered",
        occurred_at=datetime(2026, 6, 1, 10, tzinfo=UTC),
    )


def test_an_sms_to_a_dead_number_flags_the_phone() -> None:
    [receipt] = _parse(SMS, _sms("failed", "unreachable: the number is not in service"))
    assert (receipt.status, receipt.contact) == ("failed", "phone")


def test_an_sms_that_failed_for_another_reason_blames_no_contact() -> None:
    [receipt] = _parse(SMS, _sms("failed", "rejected by the network"))
    assert (receipt.status, receipt.contact) == ("failed", None)


def test_several_reports_in_one_body() -> None:
    receipts = _parse(SMS, [_sms("delivered"), {**_sms("failed", "unreachable"), "event_id": "e2"}])
    assert [r.status for r in receipts] == ["delivered", "failed"]


def _vipps(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"e-{name}",
        "reference": "ref-00000001",
        "delivery_id": "ref-00000001",
        "name": name,
        "amount": {"currency": "NOK", "value": 125_000},
        "at": AT,
        **extra,
    }


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("CREATED", "delivered"),
        ("AUTHORIZED", "paid"),
        ("ABORTED", "failed"),
        ("EXPIRED", "failed"),
        ("TERMINATED", "failed"),
    ],
)
def test_vipps_callbacks_map_to_receipts(name: str, status: str) -> None:
    [receipt] = _parse(VIPPS, _vipps(name))
    assert receipt.status == status
    assert receipt.delivery_id == receipt.provider_ref == "ref-00000001"
    assert receipt.contact is None


def test_an_authorization_says_how_much_was_authorised() -> None:
    [receipt] = _parse(VIPPS, _vipps("AUTHORIZED"))
    assert receipt.reason == "authorized 125000 NOK"


def test_the_real_apis_webhook_without_event_id_parses_with_a_stable_id() -> None:
    real = {
        "msn": "123456",
        "reference": "ref-00000001",
        "pspReference": "psp-9",
        "name": "AUTHORIZED",
        "amount": {"currency": "NOK", "value": 125_000},
        "timestamp": AT,
        "success": True,
    }
    [first] = _parse(VIPPS, real)
    [again] = _parse(VIPPS, real)
    assert first.event_id == again.event_id
    assert first.status == "paid"


def test_events_about_the_money_after_authorisation_are_not_receipts() -> None:
    assert _parse(VIPPS, _vipps("CAPTURED")) == []


def _efaktura(status: str, reason: str = "") -> dict[str, Any]:
    return {
        "event_id": "e1",
        "id": "efa-inv-1",
        "delivery_id": "d1",
        "status": status,
        "reason": reason,
        "at": AT,
    }


def test_an_efaktura_receipt() -> None:
    [receipt] = _parse(EFAKTURA, _efaktura("delivered"))
    assert (receipt.status, receipt.provider_ref, receipt.contact) == ("delivered", "efa-inv-1", None)


def test_a_consumer_no_longer_registered_flags_the_efaktura_contact() -> None:
    [receipt] = _parse(EFAKTURA, _efaktura("rejected", "the recipient is no longer registered for eFaktura"))
    assert (receipt.status, receipt.contact) == ("rejected", "efaktura")


def test_a_bank_refusal_blames_no_contact() -> None:
    [receipt] = _parse(EFAKTURA, _efaktura("rejected", "the recipient's bank refused the invoice"))
    assert (receipt.status, receipt.contact) == ("rejected", None)


@pytest.mark.parametrize(
    ("adapter", "body", "content_type"),
    [
        (SMS, b"not json", "application/json"),
        (SMS, b"[]", "application/json"),
        (SMS, b"[1]", "application/json"),
        (SMS, json.dumps(_sms("delivered")).encode(), "text/plain"),
        (SMS, json.dumps(_sms("queued")).encode(), "application/json"),
        (SMS, json.dumps({**_sms("delivered"), "event_id": ""}).encode(), "application/json"),
        (SMS, json.dumps({**_sms("delivered"), "at": "yesterday"}).encode(), "application/json"),
        (SMS, json.dumps({**_sms("delivered"), "id": 7}).encode(), "application/json"),
        (VIPPS, json.dumps(_vipps("PAID")).encode(), "application/json"),
        (VIPPS, json.dumps({**_vipps("AUTHORIZED"), "amount": None}).encode(), "application/json"),
        (VIPPS, json.dumps({k: v for k, v in _vipps("CREATED").items() if k != "reference"}).encode(), ""),
        (EFAKTURA, json.dumps(_efaktura("bounced")).encode(), "application/json"),
        (EFAKTURA, json.dumps({**_efaktura("delivered"), "at": None}).encode(), "application/json"),
    ],
)
def test_what_is_not_a_receipt_is_refused(adapter: ChannelAdapter, body: bytes, content_type: str) -> None:
    with pytest.raises(BadReceipt):
        adapter.parse_receipts(body, content_type)
