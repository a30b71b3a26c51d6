"""Double-entry postings: every entry balances, no posting is empty, accounts follow NS 4102."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.domain import journal
from services.ledger.domain.journal import (
    BAD_DEBT,
    BANK,
    CUSTOMER_CREDIT,
    FEE_INCOME,
    INTEREST_INCOME,
    RECEIVABLE,
    REVENUE,
    VAT_OUTPUT,
    Posting,
    UnbalancedEntry,
    charge_added,
    credit_note_issued,
    invoice_issued,
    payment_received,
    written_off,
)

amounts = st.integers(min_value=0, max_value=10**12)


def assert_balanced(entry: tuple[Posting, ...]) -> None:
    assert sum(p.debit for p in entry) == sum(p.credit for p in entry)
    for posting in entry:
        assert posting.debit >= 0
        assert posting.credit >= 0
        assert (posting.debit == 0) != (posting.credit == 0), posting


def test_accounts_are_the_ns_4102_ones() -> None:
    assert (RECEIVABLE, BANK, VAT_OUTPUT, CUSTOMER_CREDIT) == ("1500", "1920", "2700", "2900")
    assert (REVENUE, FEE_INCOME, BAD_DEBT, INTEREST_INCOME) == ("3000", "3900", "7830", "8050")


# --- each entry, concretely ---------------------------------------------------------------------


def test_invoice_issued() -> None:
    assert invoice_issued(1000_00, 250_00) == (
        Posting(RECEIVABLE, debit=1250_00),
        Posting(REVENUE, credit=1000_00),
        Posting(VAT_OUTPUT, credit=250_00),
    )


def test_invoice_without_vat_has_no_vat_posting() -> None:
    assert invoice_issued(500_00, 0) == (Posting(RECEIVABLE, debit=500_00), Posting(REVENUE, credit=500_00))


def test_credit_note_on_an_unpaid_invoice() -> None:
    assert credit_note_issued(800_00, 200_00) == (
        Posting(REVENUE, debit=800_00),
        Posting(VAT_OUTPUT, debit=200_00),
        Posting(RECEIVABLE, credit=1000_00),
    )


def test_credit_note_on_a_paid_invoice_goes_to_customer_credit() -> None:
    assert credit_note_issued(800_00, 200_00, to_customer_credit=1000_00) == (
        Posting(REVENUE, debit=800_00),
        Posting(VAT_OUTPUT, debit=200_00),
        Posting(CUSTOMER_CREDIT, credit=1000_00),
    )


def test_credit_note_on_a_part_paid_invoice_splits_the_credit() -> None:
    # 1000 invoiced, 700 paid: crediting it all clears the 300 still owed and owes the customer 700.
    assert credit_note_issued(800_00, 200_00, to_customer_credit=700_00) == (
        Posting(REVENUE, debit=800_00),
        Posting(VAT_OUTPUT, debit=200_00),
        Posting(RECEIVABLE, credit=300_00),
        Posting(CUSTOMER_CREDIT, credit=700_00),
    )


def test_payment_received() -> None:
    assert payment_received(1000_00, 0) == (Posting(BANK, debit=1000_00), Posting(RECEIVABLE, credit=1000_00))


def test_overpayment_goes_to_customer_credit() -> None:
    assert payment_received(1000_00, 25_00) == (
        Posting(BANK, debit=1025_00),
        Posting(RECEIVABLE, credit=1000_00),
        Posting(CUSTOMER_CREDIT, credit=25_00),
    )


def test_payment_for_nothing_owed() -> None:
    assert payment_received(0, 99_00) == (Posting(BANK, debit=99_00), Posting(CUSTOMER_CREDIT, credit=99_00))


@pytest.mark.parametrize(("interest", "account"), [(False, FEE_INCOME), (True, INTEREST_INCOME)])
def test_charge_added(interest: bool, account: str) -> None:
    assert charge_added(35_00, interest=interest) == (
        Posting(RECEIVABLE, debit=35_00),
        Posting(account, credit=35_00),
    )


def test_written_off() -> None:
    assert written_off(1035_00) == (Posting(BAD_DEBT, debit=1035_00), Posting(RECEIVABLE, credit=1035_00))


ZERO_ENTRIES: list[Callable[[], tuple[Posting, ...]]] = [
    lambda: invoice_issued(0, 0),
    lambda: credit_note_issued(0, 0),
    lambda: payment_received(0, 0),
    lambda: charge_added(0, interest=False),
    lambda: written_off(0),
]


@pytest.mark.parametrize("make", ZERO_ENTRIES)
def test_zero_amounts_give_an_empty_entry(make: Callable[[], tuple[Posting, ...]]) -> None:
    assert make() == ()


def test_an_unbalanced_entry_is_refused() -> None:
    with pytest.raises(UnbalancedEntry) as caught:
        journal._entry(Posting(BANK, debit=100), Posting(RECEIVABLE, credit=99))
    assert isinstance(caught.value, ValueError)
    assert "differ" in str(caught.value)


# --- properties ---------------------------------------------------------------------------------


@given(amounts, amounts)
def test_invoice_issued_balances(net: int, vat: int) -> None:
    entry = invoice_issued(net, vat)
    assert_balanced(entry)
    assert sum(p.debit for p in entry) == net + vat


@given(amounts, amounts, st.data())
def test_credit_note_issued_balances(net: int, vat: int, data: st.DataObject) -> None:
    to_customer_credit = data.draw(st.integers(min_value=0, max_value=net + vat))
    entry = credit_note_issued(net, vat, to_customer_credit=to_customer_credit)
    assert_balanced(entry)
    credits = {p.account: p.credit for p in entry if p.credit}
    assert credits.get(RECEIVABLE, 0) + credits.get(CUSTOMER_CREDIT, 0) == net + vat
    assert credits.get(CUSTOMER_CREDIT, 0) == to_customer_credit


@given(amounts, amounts)
def test_payment_received_balances(allocated: int, unallocated: int) -> None:
    entry = payment_received(allocated, unallocated)
    assert_balanced(entry)
    assert sum(p.debit for p in entry if p.account == BANK) == allocated + unallocated


@given(amounts, st.booleans())
def test_charge_added_balances(amount: int, interest: bool) -> None:
    assert_balanced(charge_added(amount, interest=interest))


@given(amounts)
def test_written_off_balances(amount: int) -> None:
    assert_balanced(written_off(amount))


@given(amounts, amounts, amounts, amounts, st.booleans())
def test_no_public_constructor_raises_unbalanced_entry(
    a: int, b: int, c: int, d: int, interest: bool
) -> None:
    entries = [
        invoice_issued(a, b),
        credit_note_issued(a, b, to_customer_credit=c),
        payment_received(c, d),
        charge_added(d, interest=interest),
        written_off(a),
    ]
    for entry in entries:
        assert sum(p.debit for p in entry) == sum(p.credit for p in entry)


@given(st.lists(st.tuples(amounts, amounts), max_size=6), st.data())
def test_receivable_follows_the_life_of_an_invoice(
    invoices: list[tuple[int, int]], data: st.DataObject
) -> None:
    """Issue, pay part, charge a fee, credit part, write off the rest: receivable ends at zero."""
    for net, vat in invoices:
        gross = net + vat
        paid = data.draw(st.integers(min_value=0, max_value=gross))
        fee = data.draw(st.integers(min_value=0, max_value=10_000))
        credited = data.draw(st.integers(min_value=0, max_value=gross - paid))
        credited_net = credited * net // gross if gross else 0
        entries = [
            invoice_issued(net, vat),
            payment_received(paid, 0),
            charge_added(fee, interest=False),
            credit_note_issued(credited_net, credited - credited_net),
            written_off(gross + fee - paid - credited),
        ]
        receivable = sum(p.debit - p.credit for entry in entries for p in entry if p.account == RECEIVABLE)
        assert receivable == 0
        for entry in entries:
            assert_balanced(entry)
