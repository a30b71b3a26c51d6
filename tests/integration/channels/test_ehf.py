"""EHF against the sandbox's Peppol access point and participant registry: who can receive EHF, the
document reaching the buyer's access point once however often it is sent, receipts coming back
signed (delivered, or rejected by the receiver), refusals saying whether to retry and whether the
buyer's Peppol address is bad; and a misbehaving access point (slow, busy, garbage)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web

from services.dispatcher.adapters.base import ChannelError, Outgoing, PostalAddress, Receipt, Recipient
from services.dispatcher.adapters.peppol import PeppolAdapter, PeppolRegistry
from tests.support.http_channels import (
    API_KEY,
    ORG_NUMBER,
    body_of,
    control,
    fault,
    outgoing,
    records,
    results,
)
from tests.support.sandbox import Sandbox, running_sandbox

pytestmark = pytest.mark.integration

UBL = "urn:oasis:names:specification:ubl:schema:xsd"
# Valid organisation numbers the sandbox registry does not know by default (they end in 7, 8 or 9).
UNREGISTERED_NO = "912345629"
UNREGISTERED_SE = "2021005257"
SWEDISH = "5560360793"


def invoice_xml(number: str = "10042") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice xmlns="{UBL}:Invoice-2"'
        f' xmlns:cbc="{UBL}:CommonBasicComponents-2"><cbc:ID>{number}</cbc:ID></Invoice>\n'
    ).encode()


def ehf(*, org_number: str = ORG_NUMBER, country: str = "NO", document: bytes | None = None) -> Outgoing:
    """A delivery of invoice 10042 as EHF to a business buyer."""
    out = outgoing("ehf", customer_kind="business")
    recipient = replace(
        out.recipient, org_number=org_number, address=replace(out.recipient.address, country=country)
    )
    return replace(out, recipient=recipient, documents={**out.documents, "ehf": document or invoice_xml()})


def business(org_number: str, country: str = "NO") -> Recipient:
    return Recipient(
        customer_id="c-1",
        customer_number="2001",
        name="Kunde AS",
        kind="business",
        org_number=org_number,
        address=PostalAddress(country=country),
    )


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running_sandbox(tmp_path) as running:
        yield running


@pytest.fixture
async def peppol(sandbox: Sandbox) -> AsyncIterator[PeppolAdapter]:
    adapter = PeppolAdapter(sandbox.url, API_KEY)
    yield adapter
    await adapter.close()


@pytest.fixture
async def registry(sandbox: Sandbox) -> AsyncIterator[PeppolRegistry]:
    adapter = PeppolRegistry(sandbox.url, API_KEY)
    yield adapter
    await adapter.close()


def _kept(sandbox: Sandbox, out: Outgoing) -> Path:
    return sandbox.settings.root / "ehf" / f"{out.delivery_id}.xml"


async def _receipt(sandbox: Sandbox, peppol: PeppolAdapter, out: Outgoing) -> Receipt:
    payload = await sandbox.webhooks.wait_for(
        lambda hooks: next((p for p in hooks.of("peppol") if p.get("delivery_id") == out.delivery_id), None),
        what="the access point's receipt",
    )
    [receipt] = peppol.parse_receipts(body_of(payload), "application/json")
    assert sandbox.webhooks.refused == []
    return receipt


# The registry


async def test_the_registry_knows_registered_businesses_in_norway_and_sweden(
    registry: PeppolRegistry,
) -> None:
    assert await registry.reachable(business(ORG_NUMBER))
    assert await registry.reachable(business(SWEDISH, "SE"))
    assert not await registry.reachable(business(UNREGISTERED_NO))
    assert not await registry.reachable(business(UNREGISTERED_SE, "SE"))


async def test_consumers_and_unaddressable_businesses_are_not_reachable(registry: PeppolRegistry) -> None:
    consumer = replace(business(ORG_NUMBER), kind="consumer")
    assert not await registry.reachable(consumer)
    assert not await registry.reachable(business(""))
    assert not await registry.reachable(business("974760674"))  # a wrong check digit
    assert not await registry.reachable(business(ORG_NUMBER, "DK"))


async def test_the_operator_can_register_and_unregister_participants(
    sandbox: Sandbox, registry: PeppolRegistry, peppol: PeppolAdapter
) -> None:
    await control(
        sandbox, "POST", "registry", {"channel": "ehf", "id": f"0192:{UNREGISTERED_NO}", "reachable": True}
    )
    await control(
        sandbox, "POST", "registry", {"channel": "ehf", "id": f"0192:{ORG_NUMBER}", "reachable": False}
    )

    assert await registry.reachable(business(UNREGISTERED_NO))
    assert not await registry.reachable(business(ORG_NUMBER))
    sent = await peppol.send(ehf(org_number=UNREGISTERED_NO))
    assert sent.state == "accepted"


# Sending


async def test_the_buyer_gets_the_document_and_a_delivery_receipt(
    sandbox: Sandbox, peppol: PeppolAdapter
) -> None:
    out = ehf()
    sent = await peppol.send(out)

    assert sent.state == "accepted"
    assert sent.provider_ref.startswith("ap-")
    assert _kept(sandbox, out).read_bytes() == out.documents["ehf"]
    [record] = [r for r in await records(sandbox, "ehf") if r["key"] == out.delivery_id]
    assert (record["result"], record["sender"], record["receiver"]) == (
        "accepted",
        f"0192:{ORG_NUMBER}",
        f"0192:{ORG_NUMBER}",
    )
    receipt = await _receipt(sandbox, peppol, out)
    assert (receipt.delivery_id, receipt.provider_ref, receipt.status, receipt.contact) == (
        out.delivery_id,
        sent.provider_ref,
        "delivered",
        None,
    )


async def test_a_swedish_buyer_is_addressed_under_scheme_0007(
    sandbox: Sandbox, peppol: PeppolAdapter
) -> None:
    out = ehf(org_number=SWEDISH, country="SE")
    await peppol.send(out)

    [record] = [r for r in await records(sandbox, "ehf") if r["key"] == out.delivery_id]
    assert record["receiver"] == f"0007:{SWEDISH}"


async def test_a_repeated_send_reaches_the_buyer_once(sandbox: Sandbox, peppol: PeppolAdapter) -> None:
    out = ehf()
    first = await peppol.send(out)
    again = await peppol.send(out)

    assert again.provider_ref == first.provider_ref
    assert "duplicate" in again.detail
    assert results(await records(sandbox, "ehf"), out.delivery_id) == ["accepted", "duplicate"]
    await _receipt(sandbox, peppol, out)
    await asyncio.sleep(0.4)
    assert len([p for p in sandbox.webhooks.of("peppol") if p["delivery_id"] == out.delivery_id]) == 1


async def test_an_unregistered_buyer_is_refused_for_good_and_flags_the_ehf_address(
    sandbox: Sandbox, peppol: PeppolAdapter
) -> None:
    out = ehf(org_number=UNREGISTERED_NO)
    with pytest.raises(ChannelError) as refused:
        await peppol.send(out)

    assert not refused.value.retryable
    assert (refused.value.code, refused.value.contact) == ("unknown_participant", "ehf")
    assert results(await records(sandbox, "ehf"), out.delivery_id) == ["refused"]
    assert not _kept(sandbox, out).exists()


async def test_a_buyer_without_a_peppol_id_is_refused_before_any_request(
    sandbox: Sandbox, peppol: PeppolAdapter
) -> None:
    out = replace(ehf(), recipient=replace(ehf().recipient, org_number=""))
    with pytest.raises(ChannelError) as refused:
        await peppol.send(out)

    assert (refused.value.retryable, refused.value.code, refused.value.contact) == (
        False,
        "not_addressable",
        "ehf",
    )
    assert results(await records(sandbox, "ehf"), out.delivery_id) == []


async def test_a_broken_document_is_refused_for_good_without_blaming_the_address(
    sandbox: Sandbox, peppol: PeppolAdapter
) -> None:
    for document in (b"<Invoice><unclosed></Invoice>", f'<Order xmlns="{UBL}:Order-2"/>'.encode()):
        out = ehf(document=document)
        with pytest.raises(ChannelError) as refused:
            await peppol.send(out)
        assert (refused.value.retryable, refused.value.code, refused.value.contact) == (
            False,
            "invalid_document",
            None,
        )
        assert not _kept(sandbox, out).exists()


async def test_a_refusing_receiver_access_point_flags_the_address(
    sandbox: Sandbox, peppol: PeppolAdapter
) -> None:
    await fault(sandbox, "ehf", "fail")
    with pytest.raises(ChannelError) as refused:
        await peppol.send(ehf())
    assert (refused.value.retryable, refused.value.code, refused.value.contact) == (
        False,
        "receiver_refused",
        "ehf",
    )


async def test_a_busy_access_point_is_retried_and_the_retry_gets_through(
    sandbox: Sandbox, peppol: PeppolAdapter
) -> None:
    await fault(sandbox, "ehf", "error")
    out = ehf()
    with pytest.raises(ChannelError) as refused:
        await peppol.send(out)
    assert refused.value.retryable

    sent = await peppol.send(out)
    assert sent.state == "accepted"
    assert results(await records(sandbox, "ehf"), out.delivery_id) == ["refused", "accepted"]
    assert (await _receipt(sandbox, peppol, out)).status == "delivered"


async def test_a_rejection_by_the_receiver_comes_back_with_its_reason(
    sandbox: Sandbox, peppol: PeppolAdapter
) -> None:
    await fault(sandbox, "ehf", "reject")
    out = ehf()
    sent = await peppol.send(out)

    receipt = await _receipt(sandbox, peppol, out)
    assert (receipt.status, receipt.provider_ref) == ("rejected", sent.provider_ref)
    assert "could not process" in receipt.reason
    # The receiver refused the document, not the address: nothing to clean in the ledger.
    assert receipt.contact is None
    assert _kept(sandbox, out).exists()


async def test_a_delayed_receipt_arrives_late(sandbox: Sandbox, peppol: PeppolAdapter) -> None:
    await fault(sandbox, "ehf", "delay", seconds=1.0)
    out = ehf()
    await peppol.send(out)

    await asyncio.sleep(0.5)
    assert not [p for p in sandbox.webhooks.of("peppol") if p["delivery_id"] == out.delivery_id]
    assert (await _receipt(sandbox, peppol, out)).status == "delivered"


async def test_without_an_api_key_the_operator_must_act(sandbox: Sandbox) -> None:
    peppol = PeppolAdapter(sandbox.url, "")
    registry = PeppolRegistry(sandbox.url, "")
    try:
        with pytest.raises(ChannelError) as refused:
            await peppol.send(ehf())
        assert (refused.value.retryable, refused.value.code) == (False, "credentials")
        with pytest.raises(ChannelError) as lookup:
            await registry.reachable(business(ORG_NUMBER))
        assert (lookup.value.retryable, lookup.value.code) == (False, "credentials")
    finally:
        await peppol.close()
        await registry.close()


# A misbehaving access point


class AccessPoint:
    """Answers every request with the status and body the test sets, after `delay` seconds."""

    def __init__(self) -> None:
        self.status = 202
        self.body = b'{"id": "ap-1", "status": "queued"}'
        self.delay = 0.0
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, body=self.body, content_type="application/json")


@contextlib.asynccontextmanager
async def access_point() -> AsyncIterator[tuple[str, AccessPoint]]:
    point = AccessPoint()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", point.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", point
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (503, b'{"error": "unavailable"}', "unavailable"),
        (500, b"<html>oops</html>", "http_500"),
        (429, b'{"error": "rate_limited"}', "rate_limited"),
        (202, b"not json", "bad_response"),
        (202, b'{"status": "queued"}', "bad_response"),
    ],
)
async def test_busy_or_garbled_answers_are_retryable(status: int, body: bytes, code: str) -> None:
    async with access_point() as (url, point):
        point.status, point.body = status, body
        adapter = PeppolAdapter(url, API_KEY)
        try:
            with pytest.raises(ChannelError) as refused:
                await adapter.send(ehf())
        finally:
            await adapter.close()
    assert (refused.value.retryable, refused.value.code) == (True, code)


async def test_a_slow_access_point_times_out_as_retryable() -> None:
    async with access_point() as (url, point):
        point.delay = 2.0
        adapter = PeppolAdapter(url, API_KEY, timeout=0.3)
        registry = PeppolRegistry(url, API_KEY, timeout=0.3)
        try:
            with pytest.raises(ChannelError) as refused:
                await adapter.send(ehf())
            with pytest.raises(ChannelError) as lookup:
                await registry.reachable(business(ORG_NUMBER))
        finally:
            await adapter.close()
            await registry.close()
    assert (refused.value.retryable, refused.value.code) == (True, "timeout")
    assert (lookup.value.retryable, lookup.value.code) == (True, "timeout")


async def test_an_unreachable_access_point_is_retryable() -> None:
    async with access_point() as (url, _):
        pass  # closed again: nothing listens on the port now
    adapter = PeppolAdapter(url, API_KEY, timeout=2.0)
    try:
        with pytest.raises(ChannelError) as refused:
            await adapter.send(ehf())
    finally:
        await adapter.close()
    assert (refused.value.retryable, refused.value.code) == (True, "connection")


async def test_a_busy_registry_cannot_say_and_says_so() -> None:
    async with access_point() as (url, point):
        point.status, point.body = 503, b'{"error": "unavailable"}'
        registry = PeppolRegistry(url, API_KEY)
        try:
            with pytest.raises(ChannelError) as lookup:
                await registry.reachable(business(ORG_NUMBER))
        finally:
            await registry.close()
    assert lookup.value.retryable
