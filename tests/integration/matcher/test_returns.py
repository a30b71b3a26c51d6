"""Returned payments: a debit in a bank file that returns an earlier payment re-opens what it paid."""

from __future__ import annotations

import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.matcher.v1 import matcher_pb2 as mpb

from services.sandbox.bankfiles import FilePayment, camt054
from tests.integration.matcher.test_matcher import customer, gross, issue
from tests.support.ledger import eventually
from tests.support.matcher import MatchWorld

pytestmark = pytest.mark.integration


async def test_a_camt054_pays_and_a_returned_payment_reopens_the_invoice(match_world: MatchWorld) -> None:
    world = match_world
    tenant = await world.tenant()
    who = customer("E")
    invoice = await issue(tenant, who, 900_00)
    await world.known(tenant, [invoice])
    paid = FilePayment(
        gross(invoice),
        reference=invoice.kid,
        acct_svcr_ref="REF-1",
        end_to_end_id="E2E-1",
        payer_name="Kunde E AS",
    )
    first = await world.import_file(tenant, camt054([paid], msg_id="NTF-1"))
    assert first.summary.matched == 1
    await eventually(
        lambda: tenant.get(invoice.id), lambda i: i.status == pb.INVOICE_STATUS_PAID, what="paid"
    )
    returned = FilePayment(
        gross(invoice),
        debit=True,
        acct_svcr_ref="REF-2",
        end_to_end_id="E2E-1-RTN",
        return_reason="AC04",
        returned_end_to_end_id="E2E-1",
    )
    second = await world.import_file(tenant, camt054([returned], msg_id="NTF-2"))
    assert (second.summary.reversals, second.summary.review) == (1, 0)
    await eventually(
        lambda: tenant.get(invoice.id),
        lambda i: (
            i.status in (pb.INVOICE_STATUS_OPEN, pb.INVOICE_STATUS_OVERDUE)
            and i.balance.minor_units == gross(invoice)
        ),
        what="the invoice owed again",
    )
    original = await world.stub.GetPayment(
        mpb.GetPaymentRequest(payment_id=_id_of(await world.payments(tenant), "E2E-1")),
        metadata=tenant.metadata,
    )
    assert original.payment.status == "reversed"


def _id_of(payments: list[mpb.Payment], end_to_end_id: str) -> str:
    return next(p.id for p in payments if p.bank_ids.get("end_to_end_id") == end_to_end_id)


async def test_a_return_the_ledger_refuses_waits_in_review_and_the_payment_stands(
    match_world: MatchWorld,
) -> None:
    """The invoice was credited after it was paid: taking the payment back is for a person."""
    world = match_world
    tenant = await world.tenant()
    invoice = await issue(tenant, customer("F"), 500_00)
    await world.known(tenant, [invoice])
    paid = FilePayment(gross(invoice), reference=invoice.kid, acct_svcr_ref="REF-7", end_to_end_id="E2E-7")
    assert (await world.import_file(tenant, camt054([paid], msg_id="NTF-7"))).summary.matched == 1
    await eventually(
        lambda: tenant.get(invoice.id), lambda i: i.status == pb.INVOICE_STATUS_PAID, what="paid"
    )
    await tenant.credit(invoice)
    returned = FilePayment(
        gross(invoice),
        debit=True,
        acct_svcr_ref="REF-8",
        return_reason="AC04",
        returned_end_to_end_id="E2E-7",
    )
    reply = await world.import_file(tenant, camt054([returned], msg_id="NTF-8"))
    assert reply.summary.reversals == 1
    queue = await eventually(
        lambda: world.review(tenant), lambda q: len(q) == 1, what="the refused return in review"
    )
    assert queue[0].status == "rejected"
    assert "INVOICE_CREDITED" in queue[0].reason
    original = next(p for p in await world.payments(tenant) if p.bank_ids.get("end_to_end_id") == "E2E-7")
    assert original.status == "matched"
