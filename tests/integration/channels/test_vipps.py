"""Vipps ePayment against the sandbox: the payment request reaches the customer's app once, its
callbacks come back signed (CREATED: delivered, AUTHORIZED: paid, EXPIRED: failed), and refusals
say whether to retry and which contact is bad."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.dispatcher.adapters.base import ChannelError, Outgoing, Receipt
from services.dispatcher.adapters.vipps import VippsAdapter
from tests.support.http_channels import API_KEY, body_of, fault, outgoing, records, results
from tests.support.sandbox import Sandbox, running_sandbox

pytestmark = pytest.mark.integration
MSN = "123456"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path) as running:
        yield running


def _adapter(sandbox: Sandbox, *, subscription_key: str = "sub-key") -> VippsAdapter:
    return VippsAdapter(
        base_url=sandbox.url,
        api_key=API_KEY,
        subscription_key=subscription_key,
        merchant_serial_number=MSN,
    )


@pytest.fixture
async def vipps(sandbox: Sandbox) -> AsyncIterator[VippsAdapter]:
    adapter = _adapter(sandbox)
    yield adapter
    await adapter.close()


def _callbacks(sandbox: Sandbox, out: Outgoing) -> list[dict[str, Any]]:
    return [p for p in sandbox.webhooks.of("vipps") if p.get("reference") == out.delivery_id]


async def _receipts(sandbox: Sandbox, vipps: VippsAdapter, out: Outgoing, count: int) -> list[Receipt]:
    payloads = await sandbox.webhooks.wait_for(
        lambda _: (found := _callbacks(sandbox, out)) and len(found) >= count and found,
        what=f"{count} Vipps callback(s)",
    )
    assert sandbox.webhooks.refused == []
    return [r for p in payloads for r in vipps.parse_receipts(body_of(p), "application/json")]


async def test_the_customer_is_asked_to_pay_and_pays(sandbox: Sandbox, vipps: VippsAdapter) -> None:
    out = outgoing("vipps", amount_minor=125_050)
    sent = await vipps.send(out)

    assert (sent.provider_ref, sent.state) == (out.delivery_id, "accepted")
    kept = json.loads((sandbox.settings.root / "vipps" / f"{out.delivery_id}.json").read_bytes())
    assert kept["msn"] == MSN
    assert kept["amount"] == {"currency": "NOK", "value": 125_050}
    assert kept["customer"] == {"phoneNumber": "4791234568"}
    assert kept["paymentDescription"] == "Faktura 10042"
    created, authorized = await _receipts(sandbox, vipps, out, 2)
    assert (created.status, authorized.status) == ("delivered", "paid")
    assert authorized.delivery_id == out.delivery_id
    assert authorized.reason == "authorized 125050 NOK"


async def test_a_repeated_send_asks_the_customer_once(sandbox: Sandbox, vipps: VippsAdapter) -> None:
    out = outgoing("vipps")
    await vipps.send(out)
    again = await vipps.send(out)

    assert (again.provider_ref, again.detail) == (out.delivery_id, "duplicate")
    assert results(await records(sandbox, "vipps"), out.delivery_id) == ["accepted", "duplicate"]
    await _receipts(sandbox, vipps, out, 2)
    await asyncio.sleep(0.3)
    assert [p["name"] for p in _callbacks(sandbox, out)] == ["CREATED", "AUTHORIZED"]


async def test_a_number_without_vipps_is_refused_for_good_and_flags_the_phone(
    sandbox: Sandbox, vipps: VippsAdapter
) -> None:
    await fault(sandbox, "vipps", "fail")
    out = outgoing("vipps")
    with pytest.raises(ChannelError) as refused:
        await vipps.send(out)

    assert not refused.value.retryable
    assert (refused.value.code, refused.value.contact) == ("invalid_phone", "phone")
    assert results(await records(sandbox, "vipps"), out.delivery_id) == ["refused"]


async def test_a_busy_api_is_retried_and_the_retry_gets_through(
    sandbox: Sandbox, vipps: VippsAdapter
) -> None:
    await fault(sandbox, "vipps", "error")
    out = outgoing("vipps")
    with pytest.raises(ChannelError) as refused:
        await vipps.send(out)
    assert refused.value.retryable

    await vipps.send(out)
    assert results(await records(sandbox, "vipps"), out.delivery_id) == ["refused", "accepted"]


async def test_an_ignored_request_expires_and_fails(sandbox: Sandbox, vipps: VippsAdapter) -> None:
    await fault(sandbox, "vipps", "bounce")
    out = outgoing("vipps")
    await vipps.send(out)

    created, expired = await _receipts(sandbox, vipps, out, 2)
    assert (created.status, expired.status, expired.reason) == ("delivered", "failed", "expired")
    assert expired.contact is None


async def test_a_credit_note_never_reaches_vipps(sandbox: Sandbox, vipps: VippsAdapter) -> None:
    out = outgoing("vipps", kind="credit_note", payment=False)
    with pytest.raises(ChannelError) as refused:
        await vipps.send(out)

    assert (refused.value.retryable, refused.value.code) == (False, "no_payment")
    assert results(await records(sandbox, "vipps"), out.delivery_id) == []


async def test_without_a_subscription_key_the_operator_must_act(sandbox: Sandbox) -> None:
    vipps = _adapter(sandbox, subscription_key="")
    with pytest.raises(ChannelError) as refused:
        await vipps.send(outgoing("vipps"))
    await vipps.close()
    assert (refused.value.retryable, refused.value.code) == (False, "credentials")
