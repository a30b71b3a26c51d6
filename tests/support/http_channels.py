"""Deliveries for the HTTP channels' tests (SMS, Vipps, eFaktura), the sandbox's control API, and a
stand-in provider that misbehaves on purpose (slow, busy, garbage)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import date
from typing import Any, Literal

import aiohttp
from aiohttp import web

from services.common.ids import new_id
from services.dispatcher.adapters.base import (
    ChannelName,
    Creditor,
    DocumentKind,
    Outgoing,
    Payment,
    PostalAddress,
    Recipient,
)
from tests.support.sandbox import Sandbox

API_KEY = "test-api-key"
# A valid MOD10 KID and a valid Norwegian organisation number.
KID = "123456782"
ORG_NUMBER = "974760673"
# An even last digit: the sandbox's eFaktura directory knows this consumer.
PHONE = "+4791234568"
PDF = b"%PDF-1.7\n% the invoice\n%%EOF\n"


def outgoing(
    channel: ChannelName,
    *,
    link_base: str = "https://pay.example.invalid",
    kind: DocumentKind = "invoice",
    phone: str = PHONE,
    customer_kind: Literal["consumer", "business"] = "consumer",
    creditor_settings: Mapping[str, str] | None = None,
    payment: bool = True,
    amount_minor: int = 125_000,
) -> Outgoing:
    """One delivery of invoice 10042 (NOK 1 250) to a consumer, with every form these channels use."""
    delivery_id = new_id()
    link = f"{link_base}/i/{delivery_id.replace('-', '')}.sig"
    recipient = Recipient(
        customer_id=new_id(),
        customer_number="1001",
        name="Kari Nordmann",
        kind="consumer",
        phone=phone,
        email="kari@example.invalid",
        address=PostalAddress(lines=("Storgata 1",), postal_code="0155", city="Oslo", country="NO"),
    )
    if customer_kind == "business":
        recipient = replace(recipient, kind="business", org_number=ORG_NUMBER)
    return Outgoing(
        delivery_id=delivery_id,
        tenant_id="tenant-1",
        invoice_id=new_id(),
        invoice_number="10042",
        kind=kind,
        channel=channel,
        recipient=recipient,
        creditor=Creditor(
            tenant_id="tenant-1",
            legal_name="Fjordlys Økonomi AS",
            org_number=ORG_NUMBER,
            settings=dict(creditor_settings or {}),
        ),
        documents={
            "sms": f"Faktura 10042 fra Fjordlys: kr 1 250,00 forfaller 30.06. Se {link}".encode(),
            "pdf": PDF,
        },
        payment=Payment(
            amount_minor=amount_minor,
            currency="NOK",
            due_date=date(2026, 6, 30),
            kid=KID,
            payment_link=link,
        )
        if payment
        else None,
    )


async def control(sandbox: Sandbox, method: str, path: str, body: Any = None) -> Any:
    """Call the sandbox's control API (faults, records, registry) and return its JSON."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{sandbox.url}/control/{path}", json=body) as reply,
    ):
        assert reply.status == 200, await reply.text()
        return await reply.json()


async def fault(sandbox: Sandbox, channel: str, outcome: str, *, count: int = 1, seconds: float = 0) -> None:
    await control(
        sandbox,
        "POST",
        "faults",
        {"channel": channel, "outcome": outcome, "count": count, "seconds": seconds},
    )


async def records(sandbox: Sandbox, channel: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await control(sandbox, "GET", f"records/{channel}")
    return found


def results(found: list[dict[str, Any]], key: str) -> list[str]:
    """The sandbox's verdicts on the requests made with this idempotency key, in order."""
    return [r["result"] for r in found if r.get("key") == key]


def body_of(payload: Mapping[str, Any]) -> bytes:
    """A received webhook's body again, for an adapter's parse_receipts."""
    return json.dumps(payload).encode()


class Misbehaving:
    """A provider that answers every POST with whatever the test sets: a status and a raw body,
    after `delay` seconds. It counts the requests it got."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.content_type = "application/json"
        self.delay = 0.0
        self.requests: list[dict[str, str]] = []

    def answer(self, status: int, body: bytes | str, *, delay: float = 0.0) -> None:
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.delay = delay

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests.append(dict(request.headers))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, body=self.body, content_type=self.content_type)


@contextlib.asynccontextmanager
async def misbehaving_provider() -> AsyncIterator[tuple[str, Misbehaving]]:
    """A Misbehaving provider on a free local port: (its base URL, the provider)."""
    provider = Misbehaving()
    app = web.Application()
    app.router.add_post("/{path:.*}", provider._handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", provider
    finally:
        await runner.cleanup()
