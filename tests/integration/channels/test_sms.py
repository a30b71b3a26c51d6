"""SMS against the sandbox's SMS provider: the text reaches the customer's phone once however often
it is sent, delivery reports come back signed and parse into receipts, refusals say whether to retry
and which contact is bad, and the customer taps the invoice link."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.dispatcher.adapters.base import ChannelError, Outgoing, Receipt
from services.dispatcher.adapters.sms import SmsAdapter
from tests.support.http_channels import API_KEY, body_of, fault, outgoing, records, results
from tests.support.sandbox import Sandbox, running_sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path) as running:
        yield running


@pytest.fixture
async def sms(sandbox: Sandbox) -> AsyncIterator[SmsAdapter]:
    adapter = SmsAdapter(base_url=sandbox.url, api_key=API_KEY, sender="Fordring")
    yield adapter
    await adapter.close()


def _message(sandbox: Sandbox, out: Outgoing) -> dict[str, object]:
    kept: dict[str, object] = json.loads(
        (sandbox.settings.root / "sms" / f"{out.delivery_id}.json").read_bytes()
    )
    return kept


async def _receipt(sandbox: Sandbox, sms: SmsAdapter, out: Outgoing) -> Receipt:
    payload = await sandbox.webhooks.wait_for(
        lambda hooks: next((p for p in hooks.of("sms") if p.get("delivery_id") == out.delivery_id), None),
        what="the SMS delivery report",
    )
    [receipt] = sms.parse_receipts(body_of(payload), "application/json")
    assert sandbox.webhooks.refused == []
    return receipt


def _link_token(out: Outgoing) -> str:
    return out.documents["sms"].decode().rsplit("/i/", 1)[1]


async def test_the_customer_gets_the_text_and_a_delivery_report(sandbox: Sandbox, sms: SmsAdapter) -> None:
    out = outgoing("sms", link_base=sandbox.webhooks.url, creditor_settings={"sms.sender": "Fjordlys"})
    sent = await sms.send(out)

    assert sent.state == "accepted"
    assert sent.provider_ref.startswith("sms-")
    assert _message(sandbox, out) == {
        "id": sent.provider_ref,
        "to": "+4791234568",
        "from": "Fjordlys",
        "text": out.documents["sms"].decode(),
        "reference": out.delivery_id,
    }
    receipt = await _receipt(sandbox, sms, out)
    assert (receipt.delivery_id, receipt.provider_ref, receipt.status) == (
        out.delivery_id,
        sent.provider_ref,
        "delivered",
    )
    # The simulated customer taps the tracked link in the text.
    await sandbox.webhooks.wait_for(lambda hooks: _link_token(out) in hooks.opened, what="the open")


async def test_a_repeated_send_reaches_the_phone_once(sandbox: Sandbox, sms: SmsAdapter) -> None:
    out = outgoing("sms")
    first = await sms.send(out)
    again = await sms.send(out)

    assert again.provider_ref == first.provider_ref
    assert again.detail == "duplicate"
    assert results(await records(sandbox, "sms"), out.delivery_id) == ["accepted", "duplicate"]
    await _receipt(sandbox, sms, out)
    await asyncio.sleep(0.4)
    assert len([p for p in sandbox.webhooks.of("sms") if p["delivery_id"] == out.delivery_id]) == 1


async def test_a_dead_number_is_refused_for_good_and_flags_the_phone(
    sandbox: Sandbox, sms: SmsAdapter
) -> None:
    await fault(sandbox, "sms", "fail")
    out = outgoing("sms")
    with pytest.raises(ChannelError) as refused:
        await sms.send(out)

    assert not refused.value.retryable
    assert (refused.value.code, refused.value.contact) == ("invalid_recipient", "phone")
    assert results(await records(sandbox, "sms"), out.delivery_id) == ["refused"]
    assert not (sandbox.settings.root / "sms" / f"{out.delivery_id}.json").exists()


async def test_a_busy_gateway_is_retried_and_the_retry_gets_through(
    sandbox: Sandbox, sms: SmsAdapter
) -> None:
    await fault(sandbox, "sms", "error")
    out = outgoing("sms")
    with pytest.raises(ChannelError) as refused:
        await sms.send(out)
    assert refused.value.retryable

    sent = await sms.send(out)
    assert sent.state == "accepted"
    assert results(await records(sandbox, "sms"), out.delivery_id) == ["refused", "accepted"]
    assert (await _receipt(sandbox, sms, out)).status == "delivered"


async def test_an_undeliverable_text_comes_back_failed_and_flags_the_phone(
    sandbox: Sandbox, sms: SmsAdapter
) -> None:
    await fault(sandbox, "sms", "bounce")
    out = outgoing("sms", link_base=sandbox.webhooks.url)
    await sms.send(out)

    receipt = await _receipt(sandbox, sms, out)
    assert (receipt.status, receipt.contact) == ("failed", "phone")
    await asyncio.sleep(0.4)
    assert _link_token(out) not in sandbox.webhooks.opened


async def test_a_delayed_report_arrives_late(sandbox: Sandbox, sms: SmsAdapter) -> None:
    await fault(sandbox, "sms", "delay", seconds=1.0)
    out = outgoing("sms")
    await sms.send(out)

    await asyncio.sleep(0.5)
    assert not [p for p in sandbox.webhooks.of("sms") if p["delivery_id"] == out.delivery_id]
    assert (await _receipt(sandbox, sms, out)).status == "delivered"


async def test_an_unopened_text_is_delivered_but_its_link_never_followed(
    sandbox: Sandbox, sms: SmsAdapter
) -> None:
    await fault(sandbox, "sms", "unopened")
    out = outgoing("sms", link_base=sandbox.webhooks.url)
    await sms.send(out)

    assert (await _receipt(sandbox, sms, out)).status == "delivered"
    await asyncio.sleep(0.5)
    assert _link_token(out) not in sandbox.webhooks.opened


async def test_without_an_api_key_the_operator_must_act(sandbox: Sandbox) -> None:
    sms = SmsAdapter(base_url=sandbox.url, api_key="", sender="Fordring")
    with pytest.raises(ChannelError) as refused:
        await sms.send(outgoing("sms"))
    await sms.close()
    assert not refused.value.retryable
    assert refused.value.code == "credentials"
