"""eFaktura against the sandbox: the directory says who can get it (overridable per contact), the
claim with its PDF reaches the online bank once, the bank's receipts come back signed, and a
consumer who is not (or no longer) a receiver is a bad eFaktura contact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.dispatcher.adapters.base import ChannelError, Outgoing, Receipt
from services.dispatcher.adapters.efaktura import EfakturaAdapter, EfakturaRegistry
from services.dispatcher.adapters.http import HttpClient
from tests.support.http_channels import (
    API_KEY,
    KID,
    PDF,
    body_of,
    control,
    fault,
    outgoing,
    records,
    results,
)
from tests.support.sandbox import Sandbox, running_sandbox

pytestmark = pytest.mark.integration
ODD_PHONE = "+4791234567"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path) as running:
        yield running


@pytest.fixture
async def efaktura(sandbox: Sandbox) -> AsyncIterator[EfakturaAdapter]:
    adapter = EfakturaAdapter(base_url=sandbox.url, api_key=API_KEY)
    yield adapter
    await adapter.close()


async def _receipt(sandbox: Sandbox, efaktura: EfakturaAdapter, out: Outgoing) -> Receipt:
    payload = await sandbox.webhooks.wait_for(
        lambda hooks: next(
            (p for p in hooks.of("efaktura") if p.get("delivery_id") == out.delivery_id), None
        ),
        what="the eFaktura receipt",
    )
    [receipt] = efaktura.parse_receipts(body_of(payload), "application/json")
    assert sandbox.webhooks.refused == []
    return receipt


async def _refused(efaktura: EfakturaAdapter, out: Outgoing) -> ChannelError:
    with pytest.raises(ChannelError) as refused:
        await efaktura.send(out)
    return refused.value


def _kept(sandbox: Sandbox, out: Outgoing, suffix: str) -> Path:
    return sandbox.settings.root / "efaktura" / f"{out.delivery_id}.{suffix}"


async def test_the_directory_knows_whom_it_knows(sandbox: Sandbox) -> None:
    registry = EfakturaRegistry(base_url=sandbox.url, api_key=API_KEY)
    try:
        assert await registry.reachable(outgoing("efaktura").recipient)
        assert not await registry.reachable(outgoing("efaktura", phone=ODD_PHONE).recipient)
        # Businesses get EHF; the directory is not even asked.
        assert not await registry.reachable(outgoing("efaktura", customer_kind="business").recipient)
        await control(
            sandbox, "POST", "registry", {"channel": "efaktura", "id": ODD_PHONE, "reachable": True}
        )
        assert await registry.reachable(outgoing("efaktura", phone=ODD_PHONE).recipient)
    finally:
        await registry.close()
    # The directory records its answers, never the number it was asked about.
    lookups = [r for r in await records(sandbox, "efaktura") if r["result"] == "lookup"]
    assert [r["reachable"] for r in lookups] == [True, False, True]
    assert ODD_PHONE not in json.dumps(lookups)


async def test_the_claim_reaches_the_online_bank(sandbox: Sandbox, efaktura: EfakturaAdapter) -> None:
    out = outgoing("efaktura", link_base=sandbox.webhooks.url)
    sent = await efaktura.send(out)

    assert sent.state == "accepted"
    assert _kept(sandbox, out, "pdf").read_bytes() == PDF
    claim = json.loads(_kept(sandbox, out, "json").read_bytes())
    assert claim["id"] == sent.provider_ref
    assert claim["recipient_id"].startswith("efa-")
    assert {k: claim[k] for k in ("issuer_org", "invoice_number", "kid", "amount_minor", "due_date")} == {
        "issuer_org": "974760673",
        "invoice_number": "10042",
        "kid": KID,
        "amount_minor": 125_000,
        "due_date": "2026-06-30",
    }
    assert out.payment is not None
    assert claim["link"] == out.payment.payment_link
    receipt = await _receipt(sandbox, efaktura, out)
    assert (receipt.status, receipt.delivery_id, receipt.provider_ref) == (
        "delivered",
        out.delivery_id,
        sent.provider_ref,
    )
    token = out.payment.payment_link.rsplit("/i/", 1)[1]
    await sandbox.webhooks.wait_for(lambda hooks: token in hooks.opened, what="the open")


async def test_a_repeated_send_reaches_the_bank_once(sandbox: Sandbox, efaktura: EfakturaAdapter) -> None:
    out = outgoing("efaktura")
    first = await efaktura.send(out)
    again = await efaktura.send(out)

    assert (again.provider_ref, again.detail) == (first.provider_ref, "duplicate")
    assert results(await records(sandbox, "efaktura"), out.delivery_id) == ["accepted", "duplicate"]
    await _receipt(sandbox, efaktura, out)
    await asyncio.sleep(0.4)
    assert len([p for p in sandbox.webhooks.of("efaktura") if p["delivery_id"] == out.delivery_id]) == 1


async def test_a_consumer_not_in_the_directory_is_a_bad_efaktura_contact(
    sandbox: Sandbox, efaktura: EfakturaAdapter
) -> None:
    out = outgoing("efaktura", phone=ODD_PHONE)
    refused = await _refused(efaktura, out)

    assert not refused.retryable
    assert (refused.code, refused.contact) == ("not_registered", "efaktura")
    assert results(await records(sandbox, "efaktura"), out.delivery_id) == []


async def test_a_refused_recipient_is_permanent_and_flags_the_contact(
    sandbox: Sandbox, efaktura: EfakturaAdapter
) -> None:
    await fault(sandbox, "efaktura", "fail")
    out = outgoing("efaktura")
    refused = await _refused(efaktura, out)

    assert not refused.retryable
    assert (refused.code, refused.contact) == ("unknown_recipient", "efaktura")
    assert not _kept(sandbox, out, "pdf").exists()


async def test_a_busy_service_is_retried_and_the_retry_gets_through(
    sandbox: Sandbox, efaktura: EfakturaAdapter
) -> None:
    await fault(sandbox, "efaktura", "error")
    out = outgoing("efaktura")
    assert (await _refused(efaktura, out)).retryable

    await efaktura.send(out)
    assert results(await records(sandbox, "efaktura"), out.delivery_id) == ["refused", "accepted"]
    assert (await _receipt(sandbox, efaktura, out)).status == "delivered"


async def test_a_consumer_who_left_efaktura_is_rejected_and_flagged(
    sandbox: Sandbox, efaktura: EfakturaAdapter
) -> None:
    await fault(sandbox, "efaktura", "bounce")
    out = outgoing("efaktura")
    await efaktura.send(out)

    receipt = await _receipt(sandbox, efaktura, out)
    assert (receipt.status, receipt.contact) == ("rejected", "efaktura")


async def test_a_bank_rejection_blames_no_contact(sandbox: Sandbox, efaktura: EfakturaAdapter) -> None:
    await fault(sandbox, "efaktura", "reject")
    out = outgoing("efaktura")
    await efaktura.send(out)

    receipt = await _receipt(sandbox, efaktura, out)
    assert (receipt.status, receipt.contact) == ("rejected", None)


async def test_businesses_and_credit_notes_never_reach_efaktura(
    sandbox: Sandbox, efaktura: EfakturaAdapter
) -> None:
    business = await _refused(efaktura, outgoing("efaktura", customer_kind="business"))
    credit = await _refused(efaktura, outgoing("efaktura", kind="credit_note", payment=False))

    assert (business.retryable, business.code) == (False, "not_consumer")
    assert (credit.retryable, credit.code) == (False, "no_payment")
    assert await records(sandbox, "efaktura") == []


async def test_a_send_after_a_sandbox_restart_still_finds_its_recipient(tmp_path: Path) -> None:
    out = outgoing("efaktura")
    async with running_sandbox(tmp_path) as before:
        registry = EfakturaRegistry(base_url=before.url, api_key=API_KEY)
        recipient_id = await registry.recipient_id(out.recipient)
        await registry.close()
    assert recipient_id is not None
    claim = {"recipient_id": recipient_id, **EfakturaAdapter.claim_for(out)}
    async with running_sandbox(tmp_path) as after:
        client = HttpClient("efaktura", after.url, API_KEY)
        reply = await client.post("/efaktura/v1/invoices", claim, idempotency_key=out.delivery_id)
        await client.close()
    assert reply.status == 202
