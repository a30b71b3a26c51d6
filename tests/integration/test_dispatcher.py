"""The dispatcher on the real broker and database, with the ledger and the renderer, and the sandbox
providers speaking their protocols: invoices issued through the ERP API reach each customer on the
channel their choices and the rules give, receipts and opens come back through signed webhooks and
links, fallbacks fire (or stand down for a paid invoice), and everything is in the ledger's history."""

from __future__ import annotations

import asyncio
import email
import json
import time
from email.policy import default
from typing import Any

import aiohttp
import pytest
from fordring.common.v1 import common_pb2
from fordring.dispatcher.v1 import dispatcher_pb2 as dpb
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.links import invoice_link
from services.common.webhooks import SIGNATURE_HEADER, sign
from tests.support.dispatcher import SECRETS, DispatchWorld, consumer
from tests.support.ledger import LINK_SECRET, TenantClient, customer_input, eventually, invoice_request
from tests.support.metrics import sample

pytestmark = pytest.mark.integration


def business(number: str, org_number: str) -> pb.CustomerInput:
    """A business that has not chosen a channel (the tenant's rules decide)."""
    customer = customer_input(number, org_number=org_number)
    del customer.channel_preferences[:]
    return customer


async def issue(tenant: TenantClient, customer: pb.CustomerInput, **kw: Any) -> pb.Invoice:
    return await tenant.issue(invoice_request(customer=customer, **kw))


def sent(channel: str, route: str = "primary") -> Any:
    def check(found: list[dpb.Delivery]) -> bool:
        return any(d.channel == channel and d.route == route and d.status != "queued" for d in found)

    return check


async def history(tenant: TenantClient, invoice_id: str) -> list[pb.HistoryEntry]:
    reply = await tenant.stub.GetInvoiceHistory(
        pb.GetInvoiceHistoryRequest(invoice_id=invoice_id), metadata=tenant.metadata
    )
    return list(reply.entries)


async def test_each_customer_gets_the_channel_their_choices_and_the_rules_give(
    dispatch_world: DispatchWorld,
) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    cases = {
        # A business registered in Peppol (the sandbox registry knows org numbers not ending 7-9).
        "ehf": business("B-EHF", "974760673"),
        # A business Peppol does not know: e-mail.
        "email-business": business("B-MAIL", "923609059"),
        # Consumers: AvtaleGiro with a mandate, eFaktura with an agreement (the sandbox directory
        # knows phones ending in an even digit), e-mail with consent, SMS as their own choice, else print.
        "avtalegiro": consumer("C-AG", consents=pb.Consents(avtalegiro=True, email=True)),
        "efaktura": consumer("C-EFA", consents=pb.Consents(efaktura=True, email=True)),
        "email": consumer("C-MAIL", consents=pb.Consents(email=True)),
        "sms": consumer(
            "C-SMS", channel_preferences=[pb.CHANNEL_SMS], consents=pb.Consents(sms=True, email=True)
        ),
        "print": consumer("C-POST", email="", phone=""),
    }
    issued = {name: await issue(tenant, customer) for name, customer in cases.items()}
    for name, invoice in issued.items():
        channel = name.split("-")[0]
        found = await world.wait_deliveries(tenant, invoice.id, sent(channel), what=f"the {name} delivery")
        primary = [d for d in found if d.route == "primary"]
        assert [d.channel for d in primary] == [channel], (name, found)
        assert primary[0].status in ("accepted", "delivered", "opened"), primary[0]
    # What each provider received, by our delivery ids (the customer got it once).
    email_ids = {
        d.id for name in ("email", "email-business") for d in await world.deliveries(tenant, issued[name].id)
    }
    mails = {p.stem for p in world.sandbox.mails()}
    assert email_ids <= mails
    for path in world.sandbox.mails():
        if path.stem in email_ids:
            message = email.message_from_bytes(path.read_bytes(), policy=default)
            assert message["Message-ID"] == f"<{path.stem}@fordring.invalid>"
            assert any(part.get_content_type() == "application/pdf" for part in message.iter_attachments())
    sms = await world.sandbox.records("sms")
    sms_id = (await world.deliveries(tenant, issued["sms"].id))[0].id
    assert [r["result"] for r in sms if r["key"] == sms_id] == ["accepted"]
    ehf = await world.sandbox.records("ehf")
    ehf_id = (await world.deliveries(tenant, issued["ehf"].id))[0].id
    assert [r["result"] for r in ehf if r["key"] == ehf_id] == ["accepted"]


async def test_an_unopened_email_becomes_an_sms_after_the_delay(dispatch_world: DispatchWorld) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    await world.quiet()
    await world.sandbox.fault("email", "unopened")
    customer = consumer("C-UNOPENED", consents=pb.Consents(email=True, sms=True))
    invoice = await issue(tenant, customer)
    found = await world.wait_deliveries(
        tenant, invoice.id, sent("sms", "fallback"), timeout=40, what="the SMS fallback"
    )
    email_delivery = next(d for d in found if d.channel == "email")
    sms_delivery = next(d for d in found if d.channel == "sms")
    assert email_delivery.status == "delivered"
    assert not email_delivery.opened_at
    assert sms_delivery.rule == "email-unopened-sms"
    # The customer taps the link in the SMS: the SMS is opened, the invoice page is shown.
    opened = await world.wait_deliveries(
        tenant,
        invoice.id,
        lambda ds: any(d.channel == "sms" and d.opened_at for d in ds),
        what="the SMS opened",
    )
    assert [d.channel for d in opened if d.opened_at] == ["sms"]
    entries = await history(tenant, invoice.id)
    text = " | ".join(e.summary for e in entries if e.actor == "dispatcher")
    assert "e-mail" in text, text
    assert "SMS" in text, text


async def test_an_invoice_paid_before_the_delay_gets_no_sms(dispatch_world: DispatchWorld) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    await world.quiet()
    await world.sandbox.fault("email", "unopened")
    invoice = await issue(tenant, consumer("C-PAID", consents=pb.Consents(email=True, sms=True)))
    await world.wait_deliveries(tenant, invoice.id, sent("email"), what="the e-mail")
    await tenant.pay(invoice, invoice.gross_total.minor_units)
    # Well past the delay (3 s here) and the timer poll: still only the e-mail.
    await asyncio.sleep(6)
    found = await world.deliveries(tenant, invoice.id)
    assert [d.channel for d in found] == ["email"], found


async def test_a_bounced_email_flags_the_contact_and_falls_back(dispatch_world: DispatchWorld) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    await world.quiet()
    await world.sandbox.fault("email", "bounce")
    invoice = await issue(tenant, consumer("C-BOUNCE", consents=pb.Consents(email=True, sms=True)))
    found = await world.wait_deliveries(
        tenant, invoice.id, sent("sms", "fallback"), what="the fallback after the bounce"
    )
    bounced = next(d for d in found if d.channel == "email")
    assert (bounced.status, bounced.code) == ("failed", "bounced"), bounced

    async def flagged() -> list[pb.Customer]:
        reply = await tenant.stub.ListFlaggedCustomers(
            pb.ListFlaggedCustomersRequest(page=common_pb2.PageRequest(page_size=50)),
            metadata=tenant.metadata,
        )
        return list(reply.customers)

    customers = await eventually(flagged, lambda cs: any(c.number == "C-BOUNCE" for c in cs), what="the flag")
    flags = next(c for c in customers if c.number == "C-BOUNCE").flags
    assert [f.contact for f in flags] == ["email"]
    deviations = await world.deviations(tenant)
    assert any(d.invoice_id == invoice.id and d.action.startswith("fell back to sms") for d in deviations), (
        deviations
    )
    # The next invoice to the same customer skips the flagged address.
    second = await issue(tenant, consumer("C-BOUNCE", consents=pb.Consents(email=True, sms=True)))
    again = await world.wait_deliveries(tenant, second.id, lambda ds: any(d.status != "queued" for d in ds))
    assert again[0].channel != "email", again
    assert "email" in again[0].passed, again


async def test_a_returned_letter_is_an_operator_task(dispatch_world: DispatchWorld) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    await world.quiet()
    await world.sandbox.fault("print", "return")
    invoice = await issue(tenant, consumer("C-RETURN", email="", phone=""))
    await world.wait_deliveries(
        tenant,
        invoice.id,
        lambda ds: any(d.status == "failed" for d in ds),
        timeout=30,
        what="the returned letter",
    )
    deviations = await eventually(
        lambda: world.deviations(tenant),
        lambda ds: any(d.invoice_id == invoice.id for d in ds),
        what="a deviation",
    )
    mine = [d for d in deviations if d.invoice_id == invoice.id]
    assert mine[0].channel == "print", mine
    assert mine[0].action.startswith("operator task"), mine


async def test_forged_and_replayed_receipts_change_nothing(dispatch_world: DispatchWorld) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    await world.quiet()
    await world.sandbox.fault("sms", "delay", seconds=30)
    invoice = await issue(
        tenant, consumer("C-FORGE", channel_preferences=[pb.CHANNEL_SMS], consents=pb.Consents(sms=True))
    )
    found = await world.wait_deliveries(tenant, invoice.id, sent("sms"))
    delivery = found[0]
    body = json.dumps(
        {
            "event_id": f"evt-{delivery.id}",
            "id": delivery.provider_ref,
            "delivery_id": delivery.id,
            "status": "failed",
            "reason": "unreachable",
            "at": "2026-12-01T10:00:00Z",
        }
    ).encode()
    url = f"{world.public_url}/webhooks/sms"
    async with aiohttp.ClientSession() as session:
        forged = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, "not-the-secret")}
        async with session.post(url, data=body, headers=forged) as reply:
            assert reply.status == 401
        stale = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, SECRETS["sms"], at=time.time() - 3600),
        }
        async with session.post(url, data=body, headers=stale) as reply:
            assert reply.status == 401
        assert (await world.deliveries(tenant, invoice.id))[0].status == "accepted"
        signed = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, SECRETS["sms"])}
        async with session.post(url, data=body, headers=signed) as reply:
            assert reply.status == 200
        async with session.post(url, data=body, headers=signed) as reply:
            assert reply.status == 409
        async with session.post(
            url, data=b"not json", headers={SIGNATURE_HEADER: sign(b"not json", SECRETS["sms"])}
        ) as reply:
            assert reply.status == 400
    found = await world.deliveries(tenant, invoice.id)
    assert found[0].status == "failed"
    assert found[0].code == "failed"
    await asyncio.sleep(1)  # the relay publishes within moments
    events = [e for _, e in world.delivery_events.events(tenant_id=tenant.tenant.id)]
    failures = [
        e for e in events if e["type"] == "DeliveryFailed" and e["data"]["delivery_id"] == delivery.id
    ]
    assert len(failures) == 1


async def test_customer_service_resends_on_another_channel(dispatch_world: DispatchWorld) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    invoice = await issue(tenant, consumer("C-RESEND", consents=pb.Consents(email=True, sms=True)))
    await world.wait_deliveries(tenant, invoice.id, sent("email"))
    reply = await world.stub.Resend(
        dpb.ResendRequest(invoice_id=invoice.id, channel="sms", request_id="ticket-1"),
        metadata=tenant.metadata,
    )
    again = await world.stub.Resend(
        dpb.ResendRequest(invoice_id=invoice.id, channel="sms", request_id="ticket-1"),
        metadata=tenant.metadata,
    )
    assert reply.delivery.id == again.delivery.id
    assert reply.delivery.route == "resend"
    found = await world.wait_deliveries(tenant, invoice.id, sent("sms", "resend"))
    assert sorted(d.channel for d in found) == ["email", "sms"]
    stats = await world.stub.GetChannelStats(dpb.GetChannelStatsRequest(), metadata=tenant.metadata)
    by_channel = {s.channel: s for s in stats.channels}
    assert by_channel["email"].deliveries == 1
    assert by_channel["sms"].deliveries == 1


async def test_health_readiness_and_metrics(dispatch_world: DispatchWorld) -> None:
    world = dispatch_world
    port = world.dispatcher.runtime.http.port

    async def get(path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as reply:
            return reply.status, await reply.text()

    assert await get("/healthz") == (200, "ok\n")
    status, readiness = await get("/readyz")
    assert status == 200, readiness
    assert {line.split(":")[0] for line in readiness.splitlines()} >= {"mongodb", "kafka", "outbox", "grpc"}
    tenant = await world.tenant()
    invoice = await issue(tenant, consumer("C-METRICS", consents=pb.Consents(email=True)))
    await world.wait_deliveries(tenant, invoice.id, sent("email"))

    async def metrics() -> str:
        return (await get("/metrics"))[1]

    text = await eventually(
        metrics,
        lambda t: sample(t, "fordring_deliveries_total", 0.0, channel="email", result="delivered") >= 1,
    )
    assert sample(text, "fordring_provider_seconds_count", channel="email") >= 1
    assert sample(text, "fordring_timers_fired_total", kind="send") >= 1
    assert sample(text, "fordring_dispatcher_timer_backlog", 0.0) >= 0
    # Paid on time: counted for the channel that delivered it (channel effectiveness).
    await tenant.pay(invoice, invoice.gross_total.minor_units)

    def paid(t: str) -> float:
        return sample(t, "fordring_delivered_invoices_paid_total", 0.0, channel="email", before_due="yes")

    before = paid(text)
    text = await eventually(metrics, lambda t: paid(t) >= before + 1, what="the payment counted")
    assert sample(text, "fordring_delivery_to_payment_days_count", channel="email") >= 1
    # The invoice link the customer got: an unknown token is a plain 404, a valid one the invoice page.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{world.public_url}/i/AAAAAAAAAAAAAAAAAAAAAA.forged") as reply:
            assert reply.status == 404
        link = invoice_link(world.public_url, invoice.id, LINK_SECRET)
        async with session.get(link) as reply:
            assert reply.status == 200
            page = await reply.text()
    assert invoice.invoice_number in page


async def test_provider_errors_are_retried_with_backoff_then_given_up(dispatch_world: DispatchWorld) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    await world.quiet()
    await world.sandbox.fault("email", "error", count=2)
    invoice = await issue(tenant, consumer("C-RETRY", consents=pb.Consents(email=True)))
    found = await world.wait_deliveries(tenant, invoice.id, sent("email"), what="the e-mail after two errors")
    attempts = found[0].attempts
    assert [a.result for a in attempts][:2] == ["retry", "retry"], attempts
    assert attempts[2].result in ("delivered", "opened")
    assert len([p for p in world.sandbox.mails() if p.stem == found[0].id]) == 1
    # A provider that keeps failing: after max_attempts the delivery fails and the rules fall back.
    await world.quiet()
    await world.sandbox.fault("email", "error", count=world.settings.max_attempts)
    second = await issue(tenant, consumer("C-GIVEUP", consents=pb.Consents(email=True)))
    given_up = await world.wait_deliveries(
        tenant, second.id, sent("print", "fallback"), timeout=60, what="the fallback after the retries"
    )
    email_delivery = next(d for d in given_up if d.channel == "email")
    assert email_delivery.status == "failed"
    assert len(email_delivery.attempts) == world.settings.max_attempts
    assert email_delivery.reason.startswith(f"gave up after {world.settings.max_attempts} attempts")
