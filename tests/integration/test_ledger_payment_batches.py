"""The matcher's payments a batch at a time: one transaction for many proposals, with the very rules of
one at a time. Proposals in one batch see each other's effect, refusals are announced with their
reasons, a redelivered batch changes nothing, and one proposal that fails the batch does not hold
back the others."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.events import (
    PAYMENT_TOPIC,
    Allocation,
    Event,
    PaymentMatched,
    PaymentMatchedData,
    PaymentReceived,
    PaymentReceivedData,
    encode_event,
)
from services.common.mongo import Doc
from services.ledger.app import LedgerApp
from services.ledger.handlers import ProposalHandlers
from tests.support.kafka import TopicReader
from tests.support.ledger import MakeTenant, TenantClient, customer_input, eventually, invoice_request, line

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("proposal_consumers")]

GROSS = 1250_00


def matched(
    tenant: TenantClient,
    allocations: list[tuple[pb.Invoice | str, int]],
    amount: int,
    *,
    payment_id: str = "",
    currency: str = "NOK",
    based_on: dict[str, int] | None = None,
) -> PaymentMatched:
    ids = [a if isinstance(a, str) else a.id for a, _ in allocations]
    return PaymentMatched(
        tenant_id=tenant.tenant.id,
        subject=ids[0] if ids else f"payment-{uuid.uuid4()}",
        occurred_at=datetime.now(UTC),
        data=PaymentMatchedData(
            payment_id=payment_id or f"ocr-{uuid.uuid4()}",
            amount_minor=amount,
            currency=currency,
            paid_on=datetime.now(UTC).date().isoformat(),
            method="kid",
            allocations=[
                Allocation(invoice_id=i, amount_minor=a, based_on_version=(based_on or {}).get(i))
                for i, (_, a) in zip(ids, allocations, strict=True)
            ],
        ),
    )


def received(proposal: PaymentMatched) -> PaymentReceived:
    data = proposal.data
    return PaymentReceived(
        tenant_id=proposal.tenant_id,
        subject=proposal.subject,
        occurred_at=proposal.occurred_at,
        data=PaymentReceivedData(
            payment_id=data.payment_id,
            import_id=f"import-{uuid.uuid4()}",
            amount_minor=data.amount_minor,
            currency=data.currency,
            paid_on=data.paid_on,
            status="matched",
            method=data.method,
            confidence=1.0,
            candidate_invoice_ids=[a.invoice_id for a in data.allocations],
        ),
    )


@dataclass
class Scenario:
    """One tenant's invoices and a batch of proposals covering every rule."""

    tenant: TenantClient
    invoices: dict[str, pb.Invoice]
    events: list[PaymentMatched]


async def scenario(tenant: TenantClient, plain: int = 20) -> Scenario:
    p = tenant.tenant.id[-12:]  # payment ids are the matcher's, unique across tenants
    inv = {
        name: await tenant.issue(invoice_request())
        for name in ("twice", "credited", "euro", "over", "dup", "stale", "invalid")
    }
    for i in range(plain):
        inv[f"plain{i}"] = await tenant.issue(invoice_request())
    inv["credited"] = (await tenant.credit(inv["credited"])).invoice
    seen = inv["stale"]  # the matcher saw it before a partial credit note
    inv["stale"] = (await tenant.credit(seen, lines=[line(100_00)])).invoice
    events = [
        matched(tenant, [(inv["twice"], 500_00)], 500_00, payment_id=f"{p}-twice-1"),
        matched(tenant, [(inv["credited"], GROSS)], GROSS),
        matched(tenant, [(inv["euro"], GROSS)], GROSS, currency="EUR"),
        matched(tenant, [(inv["dup"], GROSS)], GROSS, payment_id=f"{p}-dup"),
        matched(tenant, [(inv["over"], GROSS)], GROSS + 300_00),
        matched(tenant, [(inv["stale"], GROSS)], GROSS, based_on={seen.id: seen.version}),
        matched(tenant, [(inv["invalid"], 150_00)], 100_00),
        matched(tenant, [(f"no-such-invoice-{uuid.uuid4()}", 100_00)], 100_00),
        *(
            matched(
                tenant,
                [(inv[f"plain{i}"], GROSS)],
                GROSS,
                based_on={inv[f"plain{i}"].id: inv[f"plain{i}"].version},
            )
            for i in range(plain)
        ),
        # The rest of the first, based on the version the matcher saw before the first part.
        matched(
            tenant,
            [(inv["twice"], 750_00)],
            750_00,
            payment_id=f"{p}-twice-2",
            based_on={inv["twice"].id: inv["twice"].version},
        ),
        matched(tenant, [(inv["dup"], GROSS)], GROSS, payment_id=f"{p}-dup"),  # the same payment again
    ]
    return Scenario(tenant, inv, events)


def batch_of(events: Sequence[Event]) -> list[Event]:
    return list(events)


def handlers(app: LedgerApp) -> ProposalHandlers:
    return ProposalHandlers(app.changes, app.tenants, app.clock)


async def outbox(app: LedgerApp, tenant: TenantClient, after: str = "") -> list[Doc]:
    query: Doc = {"tenant_id": tenant.tenant.id, **({"_id": {"$gt": after}} if after else {})}
    return await app.store.outbox.find(query).sort("_id", 1).to_list()


def rejections(docs: list[Doc]) -> dict[str, tuple[str, str, str]]:
    """proposal event id -> (reason, invoice id, payment id) of each ProposalRejected."""
    out = {}
    for doc in docs:
        if doc["type"] == "ProposalRejected":
            data = _data(doc)
            out[data["proposal_event_id"]] = (data["reason"], data["invoice_id"], data["payment_id"])
    return out


def _data(doc: Doc) -> dict[str, Any]:
    return dict(json.loads(doc["value"])["data"])


async def test_a_batch_applies_every_proposal_as_one_at_a_time_would(
    make_tenant: MakeTenant, ledger_app: LedgerApp
) -> None:
    batch, single = await scenario(await make_tenant()), await scenario(await make_tenant())
    before_batch = (await outbox(ledger_app, batch.tenant))[-1]["_id"]
    before_single = (await outbox(ledger_app, single.tenant))[-1]["_id"]

    assert await handlers(ledger_app).on_payment_batch(batch_of(batch.events)) == {}
    for event in single.events:
        await handlers(ledger_app).on_payment_event(event)

    inv = {name: await batch.tenant.get(i.id) for name, i in batch.invoices.items()}
    assert (inv["twice"].status, inv["twice"].paid_total.minor_units) == (pb.INVOICE_STATUS_PAID, GROSS)
    assert [a.amount_minor for a in inv["twice"].allocations] == [500_00, 750_00]
    # The invoice was given what it owed; the rest of the payment is the customer's credit.
    assert (inv["over"].status, inv["over"].paid_total.minor_units) == (pb.INVOICE_STATUS_PAID, GROSS)
    assert (inv["dup"].status, len(inv["dup"].allocations)) == (pb.INVOICE_STATUS_PAID, 1)
    assert all(inv[f"plain{i}"].status == pb.INVOICE_STATUS_PAID for i in range(20))
    for name in ("credited", "euro", "stale", "invalid"):
        assert inv[name].paid_total.minor_units == 0, name
        assert inv[name].version == batch.invoices[name].version, name
    customer = await batch.tenant.customer("K-1000")
    assert customer.credit_balance.minor_units == 300_00

    announced = await outbox(ledger_app, batch.tenant, before_batch)
    refused = rejections(announced)
    e = batch.events
    assert {k: v[:2] for k, v in refused.items()} == {
        e[1].id: ("INVOICE_CREDITED", batch.invoices["credited"].id),
        e[2].id: ("CURRENCY_MISMATCH", batch.invoices["euro"].id),
        e[5].id: ("STALE", batch.invoices["stale"].id),
        e[6].id: ("INVALID_PROPOSAL", batch.invoices["invalid"].id),
        e[7].id: ("UNKNOWN_INVOICE", e[7].data.allocations[0].invoice_id),
    }
    # Each refusal names the payment, so the matcher finds it.
    assert all(v[2] == next(ev.data.payment_id for ev in e if ev.id == k) for k, v in refused.items())
    applied = [_data(d) for d in announced if d["type"] == "PaymentApplied"]
    assert Counter(a["source_event_id"] for a in applied) == {
        ev.id: 1 for ev in e if ev.id not in refused and ev is not e[-1]
    }
    # The two parts saw each other: the second found the first's version and balance.
    twice = [a["invoice"] for a in applied if a["invoice"]["invoice_id"] == batch.invoices["twice"].id]
    assert [(t["paid_minor"], t["balance_minor"], t["status"]) for t in twice] == [
        (500_00, 750_00, "part_paid"),
        (GROSS, 0, "paid"),
    ]
    assert twice[1]["version"] == twice[0]["version"] + 1
    history = await batch.tenant.history(batch.invoices["credited"].id)
    assert history[-1].type == "proposal_rejected"
    assert "INVOICE_CREDITED" in history[-1].summary

    # One at a time, the other tenant's invoices, customer, journal and announcements ended the same.
    assert await _story(ledger_app, batch, before_batch) == await _story(ledger_app, single, before_single)

    # Delivered again, the batch changes nothing.
    last = (await outbox(ledger_app, batch.tenant))[-1]["_id"]
    assert await handlers(ledger_app).on_payment_batch(batch_of(batch.events)) == {}
    assert await outbox(ledger_app, batch.tenant, last) == []
    assert [(await batch.tenant.get(i.id)).version for i in batch.invoices.values()] == [
        i.version for i in inv.values()
    ]


async def _story(app: LedgerApp, s: Scenario, after: str) -> dict[str, Any]:
    """What a tenant's proposals did, without ids and times: invoices, customer, journal, events."""
    ids = {i.id: name for name, i in s.invoices.items()}
    events = {e.id: n for n, e in enumerate(s.events)}
    docs = await app.store.invoices.find({"_id": {"$in": list(ids)}}).to_list()
    invoices = {
        ids[d["_id"]]: (
            d["status"],
            d["version"],
            d["paid_minor"],
            d["overpaid_minor"],
            d["balance_minor"],
            [a["amount_minor"] for a in d["allocations"]],
            [(h["type"], h["status_before"], h["status_after"], h["version"]) for h in d["history"]],
        )
        for d in docs
    }
    customer = await app.store.customers.find_one({"tenant_id": s.tenant.tenant.id})
    assert customer is not None
    journal = await app.store.journal.find(
        {"tenant_id": s.tenant.tenant.id, "kind": "payment_received"}
    ).to_list()
    announced = []
    for doc in await outbox(app, s.tenant, after):
        data = _data(doc)
        invoice = data.get("invoice") or {}
        announced.append(
            (
                doc["type"],
                ids.get(doc["key"], "?"),
                data["reason"] if doc["type"] == "ProposalRejected" else None,
                events.get(data.get("proposal_event_id") or data.get("source_event_id", ""), "-"),
                invoice.get("version"),
                invoice.get("paid_minor"),
                data.get("credit_balance_minor"),
            )
        )
    return {
        "invoices": invoices,
        "credit": (customer["credit_balances"], customer["version"]),
        "journal": sorted(
            (
                ids.get(j["invoice_id"], ""),
                tuple((p["account"], p["debit"], p["credit"]) for p in j["postings"]),
            )
            for j in journal
        ),
        "announced": sorted(announced, key=str),
    }


async def test_a_batch_on_kafka_is_applied_once_however_often_it_comes(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    invoices = [await tenant.issue(invoice_request()) for _ in range(30)]
    events = [matched(tenant, [(i, 400_00)], 400_00) for i in invoices]
    events += [matched(tenant, [(i, 850_00)], 850_00) for i in invoices]  # the rest, same key

    # As the matcher publishes them: each proposal after the PaymentReceived that announces it.
    stream: list[Event] = []
    for proposal in events:
        stream += [received(proposal), proposal]

    for _ in range(2):  # the whole lot redelivered
        for event in stream:
            await producer.send(
                topics[PAYMENT_TOPIC],
                encode_event(event),
                key=event.subject.encode(),
                headers=[("content-type", b"application/json")],
            )
        await producer.flush()

    for invoice in invoices:
        paid = await eventually(
            lambda i=invoice: tenant.get(i.id),  # type: ignore[misc]
            lambda i: i.paid_total.minor_units >= GROSS,
            what=f"invoice {invoice.invoice_number} paid",
        )
        assert (paid.status, paid.paid_total.minor_units, len(paid.allocations)) == (
            pb.INVOICE_STATUS_PAID,
            GROSS,
            2,
        )

    def all_announced() -> Counter[str] | None:
        found = Counter(
            e["data"]["payment_id"]
            for _, e in invoice_events.events(tenant_id=tenant.tenant.id)
            if e["type"] == "PaymentApplied"
        )
        return found if len(found) == len(events) else None

    announced = await invoice_events.wait_for(all_announced, what="a PaymentApplied per payment")
    assert set(announced.values()) == {1}


async def test_a_proposal_that_fails_the_batch_does_not_hold_back_the_others(
    make_tenant: MakeTenant, ledger_app: LedgerApp
) -> None:
    other, tenant = await make_tenant(), await make_tenant()
    theirs = await other.issue(invoice_request())
    taken = f"ocr-{uuid.uuid4()}"
    assert (
        await handlers(ledger_app).on_payment_batch(
            batch_of([matched(other, [(theirs, GROSS)], GROSS, payment_id=taken)])
        )
        == {}
    )
    ours = [await tenant.issue(invoice_request(customer=customer_input("K-2"))) for _ in range(3)]
    # The same payment id as another tenant's payment: the batch's insert of payments fails on it.
    events = [matched(tenant, [(i, GROSS)], GROSS) for i in ours[:2]]
    events.insert(1, matched(tenant, [(ours[2], GROSS)], GROSS, payment_id=taken))

    assert await handlers(ledger_app).on_payment_batch(batch_of(events)) == {}

    paid = [await tenant.get(i.id) for i in ours]
    assert [p.status for p in paid] == [
        pb.INVOICE_STATUS_PAID,
        pb.INVOICE_STATUS_PAID,
        pb.INVOICE_STATUS_OPEN,
    ]
    assert (await other.get(theirs.id)).paid_total.minor_units == GROSS
