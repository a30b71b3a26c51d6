"""A customer asks for a channel: the consent is recorded and the channel preferred first; nothing
else of the customer changes (the ERP's data stays as the ERP sent it)."""

from __future__ import annotations

import grpc
import pytest
from fordring.ledger.v1 import consents_pb2 as cpb
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.consents_pb2_grpc import CustomerConsentServiceStub

from tests.support.ledger import TenantClient, invoice_request

pytestmark = pytest.mark.integration


async def test_a_customer_asks_for_efaktura(tenant: TenantClient, ledger_channel: grpc.aio.Channel) -> None:
    invoice = await tenant.issue(invoice_request())
    before = (
        await tenant.stub.GetCustomer(
            pb.GetCustomerRequest(customer_id=invoice.customer_id), metadata=tenant.metadata
        )
    ).customer
    consents = CustomerConsentServiceStub(ledger_channel)
    ask = cpb.RecordConsentRequest(
        customer_id=invoice.customer_id, channel=pb.CHANNEL_EFAKTURA, source="invoice page"
    )
    reply = await consents.RecordConsent(ask, metadata=tenant.metadata)
    assert reply.changed
    assert reply.customer.consents.efaktura
    assert reply.customer.channel_preferences[0] == pb.CHANNEL_EFAKTURA
    assert reply.customer.version == before.version + 1
    assert reply.customer.national_id_masked == before.national_id_masked
    assert reply.customer.email == before.email
    assert (await consents.RecordConsent(ask, metadata=tenant.metadata)).changed is False

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await consents.RecordConsent(
            cpb.RecordConsentRequest(customer_id=invoice.customer_id, channel=pb.CHANNEL_PRINT),
            metadata=tenant.metadata,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
