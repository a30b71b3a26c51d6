"""Nudges and dunning steps' channel hints through the ledger, the renderer and the dispatcher, with the
sandbox providers: a nudge reaches the customer by SMS (e-mail when SMS fails or cannot be used),
never by letter; a step's channel hints choose the order; a nudge for an invoice paid meanwhile is not
sent."""

from __future__ import annotations

import asyncio
import email
import uuid
from datetime import UTC, datetime, timedelta
from email.policy import default
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fordring.dispatcher.v1 import dispatcher_pb2 as dpb
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.events import (
    DOCUMENT_TOPIC,
    DUNNING_TOPIC,
    DocumentRendered,
    DocumentRenderedData,
    DunningActionTaken,
    DunningActionTakenData,
)
from tests.support.dispatcher import DispatchWorld, consumer
from tests.support.kafka import publish
from tests.support.ledger import TenantClient, eventually, invoice_request, today

pytestmark = pytest.mark.integration


async def overdue(tenant: TenantClient, customer: pb.CustomerInput) -> pb.Invoice:
    return await tenant.issue(
        invoice_request(customer=customer, issue_date=today() - timedelta(days=20), due_in_days=14)
    )


async def take_step(
    world: DispatchWorld,
    producer: AIOKafkaProducer,
    tenant: TenantClient,
    invoice: pb.Invoice,
    action: str,
    **data: Any,
) -> None:
    """The dunning service's proposal, based on the invoice as it is now."""
    now = await tenant.get(invoice.id)
    await publish(
        producer,
        world.topics[DUNNING_TOPIC],
        DunningActionTaken(
            tenant_id=tenant.tenant.id,
            subject=invoice.id,
            occurred_at=datetime.now(UTC),
            data=DunningActionTakenData(
                action_id=f"action-{uuid.uuid4()}",
                invoice_id=invoice.id,
                based_on_version=now.version,
                action=action,
                **data,
            ),
        ),
    )


def nudge_sent(deliveries: list[dpb.Delivery]) -> bool:
    return any(d.document_kind == "nudge" and d.status not in ("queued", "failed") for d in deliveries)


def nudges(deliveries: list[dpb.Delivery]) -> list[tuple[str, str]]:
    return [(d.channel, d.route) for d in deliveries if d.document_kind == "nudge"]


async def test_a_nudge_goes_by_sms_and_a_steps_hints_choose_the_order(
    dispatch_world: DispatchWorld, producer: AIOKafkaProducer
) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    both = pb.Consents(email=True, sms=True)
    plain = await overdue(tenant, consumer("C-NUDGE-1", consents=both))
    hinted = await overdue(tenant, consumer("C-NUDGE-2", consents=both))
    for invoice in (plain, hinted):
        await world.wait_deliveries(tenant, invoice.id, bool, what="the invoice's delivery")

    await take_step(world, producer, tenant, plain, "nudge", channels=[], payment_link=True)
    await take_step(world, producer, tenant, hinted, "nudge", channels=["email", "sms"], payment_link=True)

    first = await world.wait_deliveries(tenant, plain.id, nudge_sent, what="the nudge by SMS")
    assert nudges(first) == [("sms", "primary")]
    second = await world.wait_deliveries(tenant, hinted.id, nudge_sent, what="the nudge by e-mail")
    assert nudges(second) == [("email", "primary")]
    # The e-mail is the message alone (a nudge has no PDF), with the link to the invoice.
    nudge_id = next(d.id for d in second if d.document_kind == "nudge")
    mail = next(path for path in world.sandbox.mails() if path.stem == nudge_id)
    message = email.message_from_bytes(mail.read_bytes(), policy=default)
    assert str(message["Subject"]).startswith("Vennlig påminnelse")
    assert list(message.iter_attachments()) == []
    # And the ledger's history says what went out.
    entries = await eventually(
        lambda: tenant.history(plain.id),
        lambda es: any("payment nudge by SMS" in e.summary for e in es),
        what="the nudge in the history",
    )
    assert [e.type for e in entries if e.actor == "dunning"] == ["nudged"]


async def test_a_nudge_whose_sms_fails_falls_back_to_email_never_a_letter(
    dispatch_world: DispatchWorld, producer: AIOKafkaProducer
) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    invoice = await overdue(tenant, consumer("C-NUDGE-3", consents=pb.Consents(email=True, sms=True)))
    await world.wait_deliveries(tenant, invoice.id, bool, what="the invoice's delivery")
    await world.quiet()
    await world.sandbox.fault("sms", "fail")

    await take_step(world, producer, tenant, invoice, "nudge", channels=["sms", "email"])

    found = await world.wait_deliveries(
        tenant,
        invoice.id,
        lambda ds: ("email", "fallback") in nudges(ds) and nudge_sent(ds),
        what="the e-mail after the failed SMS",
    )
    assert sorted(nudges(found)) == [("email", "fallback"), ("sms", "primary")]
    fallback = next(d for d in found if d.document_kind == "nudge" and d.route == "fallback")
    assert fallback.rule == "nudge-sms-failed-email"


async def test_a_nudge_reaches_no_one_without_sms_or_email_and_is_never_printed(
    dispatch_world: DispatchWorld, producer: AIOKafkaProducer
) -> None:
    world = dispatch_world
    tenant = await world.tenant()
    invoice = await overdue(tenant, consumer("C-NUDGE-4", email="", phone=""))  # a letter for the invoice
    await world.wait_deliveries(tenant, invoice.id, bool, what="the invoice's letter")

    await take_step(world, producer, tenant, invoice, "nudge", channels=["print", "sms"])

    deviations = await eventually(
        lambda: world.deviations(tenant),
        lambda ds: any(d.invoice_id == invoice.id and d.document_kind == "nudge" for d in ds),
        what="the nudge's deviation",
    )
    mine = next(d for d in deviations if d.invoice_id == invoice.id and d.document_kind == "nudge")
    assert mine.kind == "no_channel"
    assert "sms: no phone number" in mine.reason
    assert "print: hinted, but not among the tenant's channels for a nudge" in mine.reason
    assert nudges(await world.deliveries(tenant, invoice.id)) == []


async def test_a_nudge_for_an_invoice_paid_before_it_is_planned_is_not_sent(
    dispatch_world: DispatchWorld, producer: AIOKafkaProducer
) -> None:
    """The renderer rendered the nudge; the customer paid before the dispatcher planned it."""
    world = dispatch_world
    tenant = await world.tenant()
    invoice = await overdue(tenant, consumer("C-NUDGE-5", consents=pb.Consents(email=True, sms=True)))
    await world.wait_deliveries(tenant, invoice.id, bool, what="the invoice's delivery")
    await tenant.pay(invoice, invoice.gross_total.minor_units)
    rendering_id = f"rendering-{uuid.uuid4()}"
    for form in ("email", "sms"):
        await publish(
            producer,
            world.topics[DOCUMENT_TOPIC],
            DocumentRendered(
                tenant_id=tenant.tenant.id,
                subject=invoice.id,
                occurred_at=datetime.now(UTC),
                data=DocumentRenderedData(
                    invoice_id=invoice.id,
                    invoice_number=invoice.invoice_number,
                    customer_id=invoice.customer_id,
                    document_id=f"doc-{uuid.uuid4()}",
                    rendering_id=rendering_id,
                    kind="nudge",
                    form=form,
                    language="nb",
                    media_type="text/plain",
                    sha256="0" * 64,
                    size=1,
                    forms_available=["email", "sms"],
                    invoice_version=invoice.version + 1,
                    source_event_id=str(uuid.uuid4()),
                    channels=["sms", "email"],
                ),
            ),
        )

    planned = await eventually(
        lambda: world.dispatcher.store.rendering(rendering_id),
        lambda r: r is not None and bool(r.get("planned")),
        what="the nudge planned",
    )
    assert planned is not None
    assert planned["channels"] == ["sms", "email"]
    await asyncio.sleep(1)
    assert nudges(await world.deliveries(tenant, invoice.id)) == []
