"""A payer account the matcher learned (PayerAccountLearned) is kept on the customer apart from the ERP's
accounts: an UpsertCustomer does not erase it, GetCustomer shows it, and it is learned once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from fordring.ledger.v1 import ledger_pb2 as pb

from services.common.events import (
    CUSTOMER_TOPIC,
    PAYMENT_TOPIC,
    PayerAccountLearned,
    PayerAccountLearnedData,
)
from tests.support.backends import Backend
from tests.support.kafka import TopicReader, publish
from tests.support.ledger import TenantClient, customer_input, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("proposal_consumers")]


@pytest.fixture
async def customer_events(backend: Backend, topics: dict[str, str]) -> AsyncIterator[TopicReader]:
    reader = TopicReader(backend.kafka_bootstrap, topics[CUSTOMER_TOPIC])
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


def learned(tenant: TenantClient, customer_id: str, account: str) -> PayerAccountLearned:
    return PayerAccountLearned(
        tenant_id=tenant.tenant.id,
        subject=customer_id,
        occurred_at=datetime.now(UTC),
        data=PayerAccountLearnedData(
            customer_id=customer_id, account=account, payment_id=f"ocr-{uuid.uuid4()}"
        ),
    )


async def upsert(tenant: TenantClient, customer: pb.CustomerInput) -> pb.Customer:
    response = await tenant.stub.UpsertCustomer(
        pb.UpsertCustomerRequest(customer=customer), metadata=tenant.metadata
    )
    return response.customer


async def test_a_learned_account_survives_the_erp_and_is_shown_with_the_customer(
    tenant: TenantClient,
    producer: AIOKafkaProducer,
    topics: dict[str, str],
    customer_events: TopicReader,
) -> None:
    erp = customer_input("K-77")
    erp.bank_accounts.append("1503.12.34562")
    before = await upsert(tenant, erp)

    await publish(producer, topics[PAYMENT_TOPIC], learned(tenant, before.id, "NO93 8601 1117 947"))
    await publish(producer, topics[PAYMENT_TOPIC], learned(tenant, before.id, "no93 8601 1117 947"))  # again
    await publish(producer, topics[PAYMENT_TOPIC], learned(tenant, before.id, "8601.11.17947"))

    after = await eventually(
        lambda: tenant.customer("K-77"),
        lambda c: len(c.learned_bank_accounts) == 2,
        what="two learned accounts",
    )
    assert list(after.learned_bank_accounts) == ["NO9386011117947", "86011117947"]
    assert list(after.bank_accounts) == ["15031234562"]
    assert after.version == before.version + 2

    def upserted() -> list[dict[str, Any]] | None:
        found = [
            e["data"]
            for _, e in customer_events.events(tenant_id=tenant.tenant.id)
            if e["type"] == "CustomerUpserted" and e["subject"] == before.id
        ]
        return found if len(found) >= 3 else None

    announced = await customer_events.wait_for(upserted, what="CustomerUpserted for each change")
    assert [c["version"] for c in announced] == [before.version, before.version + 1, before.version + 2]

    # The ERP sends the customer anew, with another account of its own: what was learned stays.
    erp.email = "regnskap@fjordbris.example"
    del erp.bank_accounts[:]
    erp.bank_accounts.append("8601.11.17947")
    changed = await upsert(tenant, erp)
    assert list(changed.bank_accounts) == ["86011117947"]
    assert list(changed.learned_bank_accounts) == ["NO9386011117947", "86011117947"]
    listed = await tenant.stub.GetCustomers(
        pb.GetCustomersRequest(customer_ids=[before.id]), metadata=tenant.metadata
    )
    assert [list(c.learned_bank_accounts) for c in listed.customers] == [["NO9386011117947", "86011117947"]]


async def test_an_account_for_an_unknown_customer_or_no_account_is_refused(
    tenant: TenantClient, producer: AIOKafkaProducer, topics: dict[str, str], invoice_events: TopicReader
) -> None:
    customer = await upsert(tenant, customer_input("K-78"))
    nobody = learned(tenant, f"customer-{uuid.uuid4()}", "8601.11.17947")
    no_account = learned(tenant, customer.id, "see attached")

    await publish(producer, topics[PAYMENT_TOPIC], nobody)
    await publish(producer, topics[PAYMENT_TOPIC], no_account)

    def refused() -> dict[str, str] | None:
        found = {
            e["data"]["proposal_event_id"]: e["data"]["reason"]
            for _, e in invoice_events.events(tenant_id=tenant.tenant.id)
            if e["type"] == "ProposalRejected"
        }
        return found if len(found) == 2 else None

    assert await invoice_events.wait_for(refused, what="two refusals") == {
        nobody.id: "UNKNOWN_CUSTOMER",
        no_account.id: "INVALID_PROPOSAL",
    }
    after = await tenant.customer("K-78")
    assert (list(after.learned_bank_accounts), after.version) == ([], customer.version)
