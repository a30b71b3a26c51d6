"""Never remind a payer: a payment in the matcher's review queue holds the reminder until it is
decided; a payment received but not yet applied holds it; a dispute pauses it until resumed. Held
steps are listed with why, and go once the hold ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Literal

import grpc
import pytest
from aiokafka import AIOKafkaProducer
from fordring.common.v1 import common_pb2 as cpb
from fordring.dunning.v1 import dunning_pb2 as dpb
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.events import (
    DELIVERY_TOPIC,
    PAYMENT_TOPIC,
    Delivered,
    DeliveryData,
    DeliveryFailed,
    PaymentReceived,
    PaymentReceivedData,
    PaymentResolved,
    PaymentResolvedData,
)
from tests.support.dunning import DunWorld, consumer
from tests.support.kafka import publish
from tests.support.ledger import TenantClient, eventually, invoice_request


@pytest.fixture
async def producer(dun_world: DunWorld) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=dun_world.backend.kafka_bootstrap)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def overdue_invoice(world: DunWorld, tenant: TenantClient, number: str) -> pb.Invoice:
    """An invoice nudged and now due its reminder (the clock at the reminder's time)."""
    today = world.clock.today()
    invoice = await tenant.issue(invoice_request(customer=consumer(number), issue_date=today, due_in_days=10))
    await world.known(invoice.id)
    world.at(today + timedelta(days=13))
    await world.sweep()
    await world.wait_history(tenant, invoice.id, "nudged")
    return invoice


async def announce(
    world: DunWorld,
    producer: AIOKafkaProducer,
    tenant: TenantClient,
    invoice: pb.Invoice,
    payment_id: str,
    amount: int,
    status: Literal["matched", "review"],
) -> None:
    """The matcher's PaymentReceived for a payment naming `invoice`, and its hold on the case."""
    payment = PaymentReceived(
        tenant_id=tenant.tenant.id,
        subject=payment_id,
        occurred_at=world.clock.now(),
        data=PaymentReceivedData(
            payment_id=payment_id,
            import_id=f"imp-{payment_id}",
            amount_minor=amount,
            currency="NOK",
            paid_on=world.clock.today().isoformat(),
            status=status,
            method="kid" if status == "matched" else "amount",
            candidate_invoice_ids=[invoice.id],
        ),
    )
    await publish(producer, world.prefix + PAYMENT_TOPIC, payment)
    await eventually(
        lambda: world.dunning.store.cases.find_one({"_id": invoice.id}),
        lambda c: bool(c and c.get("pending", {}).get(payment_id)),
        what="the payment's hold on the case",
    )


async def held(world: DunWorld, tenant: TenantClient) -> list[dpb.HeldStep]:
    world.dunning.timers.wake()
    reply = await world.stub.ListHeld(dpb.ListHeldRequest(), metadata=tenant.metadata)
    return list(reply.held)


async def still_not_reminded(world: DunWorld, tenant: TenantClient, invoice_id: str) -> None:
    for _ in range(10):
        world.dunning.timers.wake()
        await asyncio.sleep(0.1)
    assert "reminded" not in await world.history_types(tenant, invoice_id)


async def test_a_payment_in_review_holds_the_reminder_until_it_is_decided(
    dun_world: DunWorld, producer: AIOKafkaProducer
) -> None:
    world = dun_world
    tenant = await world.tenant()
    invoice = await overdue_invoice(world, tenant, "R-1")
    await announce(
        world, producer, tenant, invoice, "pay-review-1", invoice.gross_total.minor_units - 100, "review"
    )
    await world.next_step(tenant, invoice.id, "reminder")
    found = await eventually(lambda: held(world, tenant), lambda h: len(h) == 1, what="the held reminder")
    assert found[0].invoice_id == invoice.id
    assert found[0].step == "reminder"
    assert [h.kind for h in found[0].holds] == ["payment_in_review"]
    assert "pay-review-1" in found[0].holds[0].reason
    await still_not_reminded(world, tenant, invoice.id)

    # The operator refunds it (it was not for this invoice): the reminder goes.
    resolved = PaymentResolved(
        tenant_id=tenant.tenant.id,
        subject="pay-review-1",
        occurred_at=world.clock.now(),
        data=PaymentResolvedData(payment_id="pay-review-1", resolution="refund"),
    )
    await publish(producer, world.prefix + PAYMENT_TOPIC, resolved)
    await world.wait_history(tenant, invoice.id, "reminded")
    assert await held(world, tenant) == []


async def test_a_dispute_pauses_dunning_until_resumed(dun_world: DunWorld) -> None:
    world = dun_world
    tenant = await world.tenant()
    invoice = await overdue_invoice(world, tenant, "D-1")
    paused = await world.stub.Pause(
        dpb.PauseRequest(invoice_id=invoice.id, reason="Customer disputes the delivery", kind="dispute"),
        metadata=tenant.metadata,
    )
    again = await world.stub.Pause(
        dpb.PauseRequest(invoice_id=invoice.id, reason="Customer disputes the delivery", kind="dispute"),
        metadata=tenant.metadata,
    )
    assert again.already_paused
    assert again.pause_id == paused.pause_id
    await world.next_step(tenant, invoice.id, "reminder")
    found = await eventually(lambda: held(world, tenant), lambda h: len(h) == 1, what="the held reminder")
    assert [(h.kind, h.reason) for h in found[0].holds] == [("dispute", "Customer disputes the delivery")]
    await still_not_reminded(world, tenant, invoice.id)

    reply = await world.stub.Resume(
        dpb.ResumeRequest(invoice_id=invoice.id, reason="Delivery confirmed"), metadata=tenant.metadata
    )
    assert reply.resumed == 1
    await world.wait_history(tenant, invoice.id, "reminded")


async def test_a_received_payment_not_yet_applied_holds_and_its_application_ends_dunning(
    dun_world: DunWorld, producer: AIOKafkaProducer
) -> None:
    world = dun_world
    tenant = await world.tenant()
    invoice = await overdue_invoice(world, tenant, "U-1")
    await announce(
        world, producer, tenant, invoice, "pay-matched-1", invoice.gross_total.minor_units, "matched"
    )
    await world.next_step(tenant, invoice.id, "reminder")
    found = await eventually(lambda: held(world, tenant), lambda h: len(h) == 1, what="the held reminder")
    assert [h.kind for h in found[0].holds] == ["payment_unapplied"]
    await still_not_reminded(world, tenant, invoice.id)
    # The ledger applies the payment (here: recorded through its API, as the matcher's proposal would be).
    await tenant.pay(invoice, invoice.gross_total.minor_units)
    case = await eventually(
        lambda: world.case(tenant, invoice.id), lambda c: c.outcome == "done", what="the case done"
    )
    assert case.reason == "paid"
    await still_not_reminded(world, tenant, invoice.id)


async def test_an_avtalegiro_draw_in_flight_holds_the_nudge_until_its_outcome_is_in(
    dun_world: DunWorld, producer: AIOKafkaProducer
) -> None:
    world = dun_world
    tenant = await world.tenant()
    today = world.clock.today()
    invoice = await tenant.issue(invoice_request(customer=consumer("A-1"), issue_date=today, due_in_days=10))
    await world.known(invoice.id)
    delivered = Delivered(
        tenant_id=tenant.tenant.id,
        subject=invoice.id,
        occurred_at=world.clock.now(),
        data=DeliveryData(
            delivery_id="dlv-ag-1",
            invoice_id=invoice.id,
            invoice_number=invoice.invoice_number,
            customer_id=invoice.customer_id,
            document_kind="invoice",
            rendering_id="r-1",
            channel="avtalegiro",
        ),
    )
    await publish(producer, world.prefix + DELIVERY_TOPIC, delivered)
    await eventually(
        lambda: world.dunning.store.cases.find_one({"_id": invoice.id}),
        lambda c: bool(c and c.get("debits")),
        what="the debit on the case",
    )
    world.at(today + timedelta(days=13))
    await world.sweep()
    found = await eventually(lambda: held(world, tenant), lambda h: len(h) == 1, what="the held nudge")
    assert found[0].step == "nudge"
    assert [h.kind for h in found[0].holds] == ["debit_in_flight"]
    assert "avtalegiro" in found[0].holds[0].reason
    # The draw failed for good (the agreement was cancelled): the nudge goes.
    failed = DeliveryFailed(
        tenant_id=tenant.tenant.id,
        subject=invoice.id,
        occurred_at=world.clock.now(),
        data=delivered.data.model_copy(update={"code": "rejected", "reason": "no agreement", "final": True}),
    )
    await publish(producer, world.prefix + DELIVERY_TOPIC, failed)
    await world.wait_history(tenant, invoice.id, "nudged")


async def test_held_steps_are_listed_oldest_first_a_page_at_a_time(dun_world: DunWorld) -> None:
    world = dun_world
    tenant = await world.tenant()
    today = world.clock.today()
    invoices = [
        await tenant.issue(invoice_request(customer=consumer(f"H-{n}"), issue_date=today, due_in_days=10))
        for n in range(3)
    ]
    for invoice in invoices:
        await world.known(invoice.id)
        await world.stub.Pause(
            dpb.PauseRequest(invoice_id=invoice.id, reason=f"call about {invoice.invoice_number}"),
            metadata=tenant.metadata,
        )
    world.at(today + timedelta(days=13))
    await world.sweep()
    await eventually(lambda: held(world, tenant), lambda h: len(h) == 3, what="three held nudges")
    pages: list[list[str]] = []
    token = ""
    while True:
        reply = await world.stub.ListHeld(
            dpb.ListHeldRequest(page=cpb.PageRequest(page_size=2, page_token=token)), metadata=tenant.metadata
        )
        pages.append([h.invoice_number for h in reply.held])
        token = reply.page.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [2, 1]
    assert sorted(n for page in pages for n in page) == sorted(i.invoice_number for i in invoices)
    for bad in ("not-a-token", "!!"):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await world.stub.ListHeld(
                dpb.ListHeldRequest(page=cpb.PageRequest(page_token=bad)), metadata=tenant.metadata
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
