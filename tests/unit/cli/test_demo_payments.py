"""The demo's bank file: made from the batch as issued (the same file on every run of the same demo),
credited invoices never paid, and the matcher's decisions compared with what the bank meant."""

from __future__ import annotations

from datetime import date

from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2
from fordring.matcher.v1 import matcher_pb2 as mpb

from services.cli.demo_data import generate_invoices
from services.cli.demo_payments import agreement, bank_invoices, mix_text
from services.common.kid import KidScheme, generate_kid
from services.sandbox.bank import generate_file

TODAY = date(2025, 6, 20)


def issued(batch: list[dict[str, object]], *, paid: int = 0) -> list[ledger_pb2.Invoice]:
    """The batch as the ledger lists it; the first `paid` invoices paid since, every tenth credited."""
    invoices = []
    for n, record in enumerate(batch, 1):
        customer = record["customer"]
        assert isinstance(customer, dict)
        status = ledger_pb2.INVOICE_STATUS_OPEN
        if n % 10 == 0:
            status = ledger_pb2.INVOICE_STATUS_CREDITED
        elif n <= paid:
            status = ledger_pb2.INVOICE_STATUS_PAID
        gross = 1_000_00 + 137 * n
        invoices.append(
            ledger_pb2.Invoice(
                id=f"id-{n}",
                kind=ledger_pb2.INVOICE_KIND_INVOICE,
                external_id=str(record["external_id"]),
                invoice_number=str(n),
                kid=generate_kid(n, length=10, scheme=KidScheme.MOD10),
                customer_number=str(customer["number"]),
                customer_name=str(customer["name"]),
                currency="NOK",
                status=status,
                gross_total=common_pb2.Money(minor_units=gross, currency="NOK"),
                balance=common_pb2.Money(minor_units=0 if n <= paid else gross, currency="NOK"),
            )
        )
    return invoices


def test_the_file_is_the_same_before_and_after_its_payments_are_applied() -> None:
    batch = generate_invoices(60, seed=3, today=TODAY)
    before = generate_file(bank_invoices(issued(batch), batch), seed=3, day=TODAY)
    after = generate_file(bank_invoices(issued(batch, paid=40), batch), seed=3, day=TODAY)
    assert before.content == after.content


def test_credited_invoices_are_not_paid_and_accounts_come_from_the_batch() -> None:
    batch = generate_invoices(60, seed=4, today=TODAY)
    seen = bank_invoices(issued(batch), batch)
    credited = {i.number for i in seen if not i.is_open}
    assert credited == {str(n) for n in range(10, 61, 10)}
    made = generate_file(seen, seed=4, day=TODAY)
    assert not credited & set(made.paid())
    with_accounts = {str(r["customer"]["number"]) for r in batch if r["customer"].get("bank_account")}
    assert {i.customer_number for i in seen if i.customer_account} == with_accounts


def test_the_matchers_decisions_are_compared_with_what_the_bank_meant() -> None:
    batch = generate_invoices(40, seed=5, today=TODAY)
    made = generate_file(bank_invoices(issued(batch), batch), seed=5, day=TODAY)
    decided = []
    for meant in made.payments:
        payment = mpb.Payment(
            bank_ids={"archive_reference": meant.bank_id},
            status="review" if meant.review else "matched",
            allocations=[
                mpb.PaymentAllocation(invoice_number=n, amount_minor=a) for n, a in meant.pays.items()
            ],
        )
        decided.append(payment)
    assert agreement(made, decided) == (len(made.payments), len(made.payments))
    decided[0].status = "review" if decided[0].status == "matched" else "matched"
    assert agreement(made, decided) == (len(made.payments) - 1, len(made.payments))
    assert agreement(made, decided[1:]) == (len(made.payments) - 1, len(made.payments) - 1)
    assert "with the right KID" in mix_text(made)
