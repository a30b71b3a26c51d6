"""The console on the session's dispatch world (ledger, renderer, dispatcher, channel sandbox): an
invoice's page lists its documents and every delivery with its attempts, and customer service sends
it again on another channel (once, however often the form is sent)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from fordring.dispatcher.v1 import dispatcher_pb2 as dpb
from fordring.ledger.v1 import ledger_pb2 as pb

from services.portal.app import PortalApp
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.console import ConsoleClient, add_account
from tests.support.dispatcher import DispatchWorld, consumer, free_port
from tests.support.ledger import eventually, invoice_request
from tests.support.portal import portal_running

pytestmark = pytest.mark.integration


@pytest.fixture
async def portal(
    backend: Backend, dispatch_world: DispatchWorld, app_clock: MovableClock
) -> AsyncIterator[PortalApp]:
    world = dispatch_world
    prefix = next(iter(world.topics.values())).split(".", 1)[0] + "."
    async with portal_running(
        backend,
        prefix,
        app_clock,
        ledger_target=f"127.0.0.1:{world.ledger.grpc.port}",
        renderer_target=f"127.0.0.1:{world.renderer.grpc.port}",
        dispatcher_target=f"127.0.0.1:{world.dispatcher.grpc.port}",
        # No matcher or dunning service in this world: their parts say so.
        matcher_target=f"127.0.0.1:{free_port()}",
        dunning_target=f"127.0.0.1:{free_port()}",
        mongo_database=f"portal_console_{uuid.uuid4().hex[:8]}",
    ) as app:
        yield app


def sent(channel: str, route: str) -> object:
    def check(found: list[dpb.Delivery]) -> bool:
        return any(d.channel == channel and d.route == route and d.status != "queued" for d in found)

    return check


async def test_customer_service_sees_the_deliveries_and_resends(
    dispatch_world: DispatchWorld, portal: PortalApp
) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    invoice = await tenant.issue(
        invoice_request(customer=consumer("C-CONSOLE", consents=pb.Consents(email=True, sms=True)))
    )
    await world.wait_deliveries(tenant, invoice.id, sent("email", "primary"))
    await add_account(portal, tenant.tenant.id, "customer_service", "cs@console.test")
    client = ConsoleClient.of(portal)
    try:
        await client.login("cs@console.test")
        page = await client.get(f"/console/invoices/{invoice.id}")
        assert page.status_code == 200
        assert "renderer service" not in page.text
        assert "dispatcher service" not in page.text
        assert "invoice · pdf · nb" in page.text
        assert "<td>email</td>" in page.text

        for _ in range(2):  # the same form sent twice: one resend
            resent = await client.post(
                f"/console/invoices/{invoice.id}/resend", {"channel": "sms", "token": "once"}
            )
            assert resent.status_code == 303
            assert "done=" in resent.headers["location"]
        found = await world.wait_deliveries(tenant, invoice.id, sent("sms", "resend"))
        # (an unopened e-mail may have fallen back to SMS meanwhile: the rules' days are seconds here)
        assert [(d.channel, d.route) for d in found if d.route != "fallback"] == [
            ("email", "primary"),
            ("sms", "resend"),
        ]
        again = await client.get(f"/console/invoices/{invoice.id}")
        assert "<td>sms</td>" in again.text
        assert "resend" in again.text
    finally:
        await client.aclose()


async def test_a_bounce_is_a_deviation_and_a_flagged_contact_and_is_resent_from_the_queue(
    dispatch_world: DispatchWorld, portal: PortalApp
) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    await world.quiet()
    await world.sandbox.fault("email", "bounce")
    invoice = await tenant.issue(
        invoice_request(customer=consumer("C-CONSOLE-BOUNCE", consents=pb.Consents(email=True, sms=True)))
    )
    await world.wait_deliveries(
        tenant, invoice.id, sent("sms", "fallback"), what="the fallback after the bounce"
    )
    await eventually(
        lambda: world.deviations(tenant),
        lambda ds: any(d.invoice_id == invoice.id for d in ds),
        what="the deviation",
    )
    await add_account(portal, tenant.tenant.id, "operator", "ops@console.test")
    client = ConsoleClient.of(portal)
    try:
        await client.login("ops@console.test")
        deviations = await client.get("/console/queues/deviations")
        assert f'href="/console/invoices/{invoice.id}"' in deviations.text
        assert "fell back to sms" in deviations.text
        flagged = await client.get("/console/queues/flagged")
        assert "C-CONSOLE-BOUNCE" in flagged.text
        assert "<td>email</td>" in flagged.text

        resent = await client.post(
            f"/console/invoices/{invoice.id}/resend",
            {"channel": "print", "token": "from-the-queue", "back": "/console/queues/deviations"},
        )
        assert resent.headers["location"].startswith("/console/queues/deviations?done=")
        await world.wait_deliveries(tenant, invoice.id, sent("print", "resend"), what="the letter")
    finally:
        await client.aclose()
