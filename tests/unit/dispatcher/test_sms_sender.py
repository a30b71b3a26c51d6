"""Who an SMS says it is from: the tenant's `sms.sender`, else the dispatcher's default, else the
creditor's name, always as an alphanumeric sender id (at most 11 ASCII letters and digits) that
phones show and networks accept."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.dispatcher.adapters.base import ChannelError
from services.dispatcher.adapters.sms import SmsAdapter, sender_id
from tests.support.http_channels import API_KEY, outgoing


@pytest.mark.parametrize(
    ("name", "sender"),
    [
        ("Fjordlys", "Fjordlys"),
        ("Fjordlys Økonomi AS", "FjordlysOko"),
        ("Bjørnøya Rør ASA", "BjornoyaRor"),
        ("Ærlig Kraft", "AerligKraft"),
        ("Åsen & Sønn ANS", "AsenSonn"),
        ("Göteborgs Energi AB", "GoteborgsEn"),
        ("Café Ørn", "CafeOrn"),
        ("AS", "AS"),
        ("7-Eleven", "7Eleven"),
        ("12345678", ""),
        ("", ""),
        ("—", ""),
    ],
)
def test_a_name_becomes_a_sender_id(name: str, sender: str) -> None:
    assert sender_id(name) == sender
    assert len(sender) <= 11


def _sms(default: str = "") -> SmsAdapter:
    return SmsAdapter(base_url="http://127.0.0.1:9", api_key=API_KEY, sender=default)


def test_the_tenants_sender_comes_first() -> None:
    out = outgoing("sms", creditor_settings={"sms.sender": "Lysverket"})
    assert _sms("Fordring").sender_for(out) == "Lysverket"


def test_a_too_long_tenant_sender_is_cut_to_eleven() -> None:
    out = outgoing("sms", creditor_settings={"sms.sender": "Lysverket Nordland"})
    assert _sms().sender_for(out) == "LysverketNo"


def test_without_a_tenant_sender_the_default_is_used() -> None:
    assert _sms("Fordring").sender_for(outgoing("sms")) == "Fordring"


def test_an_unusable_tenant_sender_falls_back_to_the_default() -> None:
    out = outgoing("sms", creditor_settings={"sms.sender": "+4790000000"})
    assert _sms("Fordring").sender_for(out) == "Fordring"


def test_without_any_sender_the_creditors_name_is_used() -> None:
    assert _sms().sender_for(outgoing("sms")) == "FjordlysOko"


async def test_a_customer_without_a_mobile_number_is_a_bad_phone_contact() -> None:
    sms = _sms("Fordring")
    for phone in ("", "91234568", "+47 912 34 568"):
        with pytest.raises(ChannelError) as refused:
            await sms.send(outgoing("sms", phone=phone))
        assert not refused.value.retryable
        assert refused.value.code == "no_phone"
        assert refused.value.contact == "phone"
    await sms.close()


async def test_a_delivery_without_a_rendered_text_is_refused() -> None:
    out = outgoing("sms")
    sms = _sms("Fordring")
    for documents in ({"pdf": b"%PDF-"}, {"sms": b"   "}, {"sms": b"\xff\xfe"}):
        with pytest.raises(ChannelError) as refused:
            await sms.send(replace(out, documents=documents))
        assert not refused.value.retryable
        assert refused.value.code == "no_document"
    await sms.close()
