"""GetInvoices and GetCustomers: a batch of reads in one call, only the caller's own."""

from __future__ import annotations

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from tests.support.ledger import MakeTenant, customer_input, invoice_request

pytestmark = pytest.mark.integration


async def test_many_by_id_only_the_tenants_own(make_tenant: MakeTenant) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    first = await tenant.issue(invoice_request(customer=customer_input("K-1")))
    second = await tenant.issue(invoice_request(customer=customer_input("K-2")))
    foreign = await other.issue(invoice_request(customer=customer_input("K-1")))
    reply = await tenant.stub.GetInvoices(
        pb.GetInvoicesRequest(invoice_ids=[first.id, second.id, foreign.id, "no-such-invoice", first.id]),
        metadata=tenant.metadata,
    )
    assert sorted(i.id for i in reply.invoices) == sorted([first.id, second.id])
    assert {i.invoice_number for i in reply.invoices} == {first.invoice_number, second.invoice_number}
    customers = await tenant.stub.GetCustomers(
        pb.GetCustomersRequest(customer_ids=[first.customer_id, second.customer_id, foreign.customer_id]),
        metadata=tenant.metadata,
    )
    assert sorted(c.number for c in customers.customers) == ["K-1", "K-2"]


async def test_a_batch_is_bounded(make_tenant: MakeTenant) -> None:
    tenant = await make_tenant()
    for ids in ([], [f"id-{n}" for n in range(501)], ["x" * 129]):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tenant.stub.GetInvoices(pb.GetInvoicesRequest(invoice_ids=ids), metadata=tenant.metadata)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_customers_found_by_name_number_or_org_number(make_tenant: MakeTenant) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    await tenant.issue(invoice_request(customer=customer_input("K-1", name="Fjordbris Kaffe AS")))
    await tenant.issue(
        invoice_request(customer=customer_input("K-2", name="Nordlys (Bergen) AS", org_number="923609016"))
    )
    await other.issue(invoice_request(customer=customer_input("K-9", name="Fjordbris Kaffe AS")))

    async def found(text: str) -> list[str]:
        reply = await tenant.stub.GetCustomers(pb.GetCustomersRequest(search=text), metadata=tenant.metadata)
        return [c.number for c in reply.customers]

    assert await found("fjordBRIS") == ["K-1"]
    assert await found("(bergen)") == ["K-2"]
    assert await found("K-2") == ["K-2"]
    assert await found("974 760 673") == ["K-1"]
    assert await found("K-9") == []
