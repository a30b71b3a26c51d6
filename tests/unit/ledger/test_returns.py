"""A payment the bank returned: the status it leaves, the postings that reverse it, and what is taken
back from each invoice, written out from the rules rather than from the code."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import FailedPrecondition
from services.common.events import PaymentReversedData, PaymentUnapplied
from services.common.tenancy import Tenant
from services.ledger.documents import Ctx, position_of
from services.ledger.domain.journal import (
    BANK,
    CUSTOMER_CREDIT,
    RECEIVABLE,
    Posting,
    payment_received,
    payment_returned,
)
from services.ledger.domain.status import (
    DunningStage,
    IllegalTransition,
    InvoiceStatus,
    Position,
    status_after_return,
)
from services.ledger.reversals import plan_return

S = InvoiceStatus
DUE = date(2026, 3, 1)
CTX = Ctx(
    tenant=Tenant(id="t1", name="Testkreditor AS"),
    actor="matcher",
    now=datetime(2026, 3, 10, 9, tzinfo=UTC),
    today=date(2026, 2, 20),
    trace_id="",
    traceparent="",
)


def returned(current: S, paid: int, *, today: date, stage: DunningStage = DunningStage.NONE, **kw: int) -> S:
    position = Position(gross=1250, paid=paid, **kw)
    return status_after_return(current, position, due_date=DUE, today=today, dunning_stage=stage)


@pytest.mark.parametrize(
    ("current", "paid", "today", "stage", "expected"),
    [
        (S.PAID, 0, DUE - timedelta(days=1), DunningStage.NONE, S.OPEN),
        (S.PAID, 500, DUE - timedelta(days=1), DunningStage.NONE, S.PART_PAID),
        (S.PAID, 0, DUE + timedelta(days=1), DunningStage.NONE, S.OVERDUE),
        (S.PAID, 0, DUE + timedelta(days=20), DunningStage.REMINDED, S.REMINDED),
        (S.PAID, 0, DUE + timedelta(days=40), DunningStage.COLLECTION_NOTICE, S.COLLECTION_NOTICE),
        (S.PART_PAID, 0, DUE - timedelta(days=1), DunningStage.NONE, S.OPEN),
        (S.OVERDUE, 0, DUE + timedelta(days=1), DunningStage.NONE, S.OVERDUE),
        (S.PAID, 1250, DUE - timedelta(days=1), DunningStage.NONE, S.PAID),
    ],
)
def test_a_returned_payment_opens_the_invoice_again_and_keeps_its_dunning_stage(
    current: S, paid: int, today: date, stage: DunningStage, expected: S
) -> None:
    assert returned(current, paid, today=today, stage=stage) == expected


def test_an_over_paid_invoice_whose_extra_is_returned_is_paid() -> None:
    assert returned(S.OVERPAID, 1250, today=DUE, overpaid=0) == S.PAID


@pytest.mark.parametrize("current", [S.CREDITED, S.WRITTEN_OFF])
def test_a_closed_claim_is_never_reopened_by_a_return(current: S) -> None:
    with pytest.raises(IllegalTransition):
        returned(current, 0, today=DUE)


amounts = st.integers(min_value=0, max_value=10**12)


@given(amounts, amounts)
def test_a_return_reverses_exactly_what_the_payment_posted(allocated: int, unallocated: int) -> None:
    posted: dict[str, int] = {}
    for p in (*payment_received(allocated, unallocated), *payment_returned(allocated, unallocated)):
        posted[p.account] = posted.get(p.account, 0) + p.debit - p.credit
    assert set(posted.values()) <= {0}


def test_payment_returned() -> None:
    assert payment_returned(1000_00, 25_00) == (
        Posting(RECEIVABLE, debit=1000_00),
        Posting(CUSTOMER_CREDIT, debit=25_00),
        Posting(BANK, credit=1025_00),
    )


def invoice(**fields: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "_id": "inv-1",
        "tenant_id": "t1",
        "kind": "invoice",
        "invoice_number": "10042",
        "kid": "0000100428",
        "customer_id": "c1",
        "customer_number": "K-1",
        "customer_kind": "business",
        "currency": "NOK",
        "issue_date": "2026-02-01",
        "due_date": DUE.isoformat(),
        "gross_minor": 1250_00,
        "charges_minor": 0,
        "paid_minor": 1250_00,
        "credited_minor": 0,
        "written_off_minor": 0,
        "overpaid_minor": 0,
        "balance_minor": 0,
        "status": "paid",
        "dunning_stage": 0,
        "version": 3,
        "allocations": [
            {"payment_id": "p1", "amount_minor": 1250_00, "paid_on": "2026-02-10", "method": "kid"}
        ],
        "history": [],
    }
    return {**doc, **fields}


def payment(**fields: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "_id": "p1",
        "tenant_id": "t1",
        "amount_minor": 1300_00,
        "currency": "NOK",
        "customer_id": "c1",
        "allocations": [
            {
                "invoice_id": "inv-1",
                "amount_minor": 1250_00,
                "applied_minor": 1250_00,
                "invoice_credited_minor": 0,
                "invoice_written_off_minor": 0,
            }
        ],
        "unallocated_minor": 50_00,
    }
    return {**doc, **fields}


def reversal(amount: int = 1300_00, currency: str = "NOK") -> PaymentReversedData:
    return PaymentReversedData(
        payment_id="d1", reverses_payment_id="p1", amount_minor=amount, currency=currency,
        paid_on="2026-03-09", reason="AC04 closed account",
    )  # fmt: skip


def test_a_return_takes_back_what_the_payment_applied_and_the_credit_it_left() -> None:
    plan = plan_return(CTX, payment(), {"inv-1": invoice()}, reversal(), "ev-1")

    ((_, after),) = plan.changed
    assert position_of(after).paid == 0
    assert (after["status"], after["balance_minor"], after["version"]) == ("open", 1250_00, 4)
    assert after["allocations"][0]["reversal_payment_id"] == "d1"
    assert after["history"][-1]["type"] == "payment_returned"
    assert "returned by the bank: AC04 closed account" in after["history"][-1]["summary"]
    assert (plan.taken_back, plan.payer) == (50_00, "c1")
    ((event, _),) = plan.events
    assert isinstance(event, PaymentUnapplied)
    assert (event.data.amount_minor, event.data.source_event_id) == (1250_00, "ev-1")
    assert [e["kind"] for e in plan.entries] == ["payment_returned", "payment_returned"]


@pytest.mark.parametrize(
    ("data", "inv", "reason"),
    [
        (reversal(amount=1299_00), invoice(), "AMOUNT_MISMATCH"),
        (reversal(currency="SEK"), invoice(), "CURRENCY_MISMATCH"),
        # Credited or written off after the payment: the money moved on; an operator books the return.
        (
            reversal(),
            invoice(credited_minor=250_00, overpaid_minor=250_00, status="overpaid"),
            "INVOICE_CREDITED",
        ),
        (reversal(), invoice(status="credited", credited_minor=1250_00), "INVOICE_CREDITED"),
        (
            reversal(),
            invoice(paid_minor=0, written_off_minor=1250_00, status="written_off"),
            "INVOICE_WRITTEN_OFF",
        ),
        (reversal(), invoice(allocations=[]), "PAYMENT_NOT_ON_INVOICE"),
    ],
)
def test_a_return_that_does_not_fit_is_refused_with_its_reason(
    data: PaymentReversedData, inv: dict[str, object], reason: str
) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        plan_return(CTX, payment(), {"inv-1": inv}, data, "ev-1")
    assert refused.value.reason == reason


def test_a_payment_credited_before_it_came_is_returned_as_usual() -> None:
    before = invoice(credited_minor=250_00, paid_minor=1000_00)
    paid = payment(
        amount_minor=1000_00,
        unallocated_minor=0,
        allocations=[
            {
                "invoice_id": "inv-1",
                "amount_minor": 1000_00,
                "applied_minor": 1000_00,
                "invoice_credited_minor": 250_00,
                "invoice_written_off_minor": 0,
            }
        ],
    )
    plan = plan_return(CTX, paid, {"inv-1": before}, reversal(amount=1000_00), "ev-1")
    ((_, after),) = plan.changed
    assert (after["status"], after["balance_minor"], plan.taken_back) == ("part_paid", 1000_00, 0)
