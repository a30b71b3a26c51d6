"""decide(): each rule of the order of trust, its ambiguities, and the traps that must go to review."""

from __future__ import annotations

import pytest

from services.matcher.domain.matching import allocate, decide
from services.matcher.domain.open_items import OpenItems
from services.matcher.domain.references import Mention, mentions
from tests.unit.matcher.matching_fixtures import item, kid, paid, payment

ACCOUNT = "12345678903"


def index(
    *items_: object, accounts: dict[str, list[str]] | None = None, names: dict[str, list[str]] | None = None
) -> OpenItems:
    return OpenItems(items_, payer_accounts=accounts, payer_names=names)  # type: ignore[arg-type]


# --- 1. the KID of an invoice ------------------------------------------------------------------


def test_exact_kid_pays_the_invoice() -> None:
    d = decide(payment(100_000, reference=kid(7)), index(item(7), item(8)))
    assert (d.status, d.method, dict(d.allocations), d.credit_minor) == (
        "matched",
        "kid",
        {"inv-7": 100_000},
        0,
    )
    assert d.confidence == 1.0
    assert d.customer_id == "c1"
    assert d.based_on_versions == {"inv-7": 3}


def test_part_payment_by_kid() -> None:
    d = decide(payment(40_000, reference=kid(7)), index(item(7)))
    assert (d.status, dict(d.allocations), d.credit_minor) == ("matched", {"inv-7": 40_000}, 0)


def test_over_payment_by_kid_leaves_the_excess_as_credit() -> None:
    d = decide(payment(130_000, reference=kid(7)), index(item(7)))
    assert (d.status, dict(d.allocations), d.credit_minor) == ("matched", {"inv-7": 100_000}, 30_000)


@pytest.mark.parametrize("status", ["paid", "credited", "written_off", "overpaid"])
def test_kid_of_a_closed_invoice_is_credit_and_review_never_another_invoice(status: str) -> None:
    closed = item(7, open_minor=0, status=status)
    d = decide(payment(100_000, reference=kid(7)), index(closed, item(8)))
    assert d.status == "review"
    assert d.allocations == {}
    assert (d.credit_minor, d.customer_id) == (100_000, "c1")
    assert status in d.reason


def test_other_currency_goes_to_review() -> None:
    d = decide(payment(100_000, reference=kid(7), currency="SEK"), index(item(7)))
    assert (d.status, d.allocations) == ("review", {})
    assert "SEK" in d.reason
    assert d.candidate_invoice_ids == ("inv-7",)


def test_a_luhn_blind_swap_onto_another_valid_kid_is_not_trusted_when_the_amount_says_otherwise() -> None:
    # 09 <-> 90 keeps the Luhn digit: the payer typed invoice 9's KID with a swap that is invoice 90's KID.
    assert kid(9)[6:8] == "09"
    typed = kid(9)[:6] + "90" + kid(9)[8:]
    other = next(n for n in range(1, 10_000) if kid(n) == typed)
    items = index(item(9, open_minor=55_500), item(other, open_minor=80_000, customer="c2"))
    d = decide(payment(55_500, reference=typed), items)
    assert d.status == "review"
    assert {"inv-9", f"inv-{other}"} <= set(d.candidate_invoice_ids)


def test_a_luhn_blind_swap_of_the_same_amount_is_not_trusted_when_the_account_says_otherwise() -> None:
    # The same swap, both invoices of one amount: the payer's known account is the other customer's,
    # whose invoice is the one keying error away. Found by the stack bench (amounts repeat there).
    typed = kid(9)[:6] + "90" + kid(9)[8:]
    other = next(n for n in range(1, 10_000) if kid(n) == typed)
    items = index(
        item(9, open_minor=80_000, customer="c1"),
        item(other, open_minor=80_000, customer="c2"),
        accounts={"c1": [ACCOUNT]},
    )
    d = decide(payment(80_000, reference=typed, payer_account=ACCOUNT), items)
    assert d.status == "review"
    assert {"inv-9", f"inv-{other}"} <= set(d.candidate_invoice_ids)
    # With no neighbour of the payer's, the valid KID stands (someone paying on another's behalf).
    alone = index(item(other, open_minor=80_000, customer="c2"), accounts={"c1": [ACCOUNT]})
    assert decide(payment(80_000, reference=typed, payer_account=ACCOUNT), alone).status == "matched"


# --- 2. a KID with a keying error --------------------------------------------------------------


def neighbours() -> OpenItems:
    # Dense KIDs: a typo'd KID is one keying error from several real ones.
    return index(
        *(item(n, open_minor=10_000 * n, customer=f"c{n}") for n in range(1200, 1300)),
        accounts={"c1234": [ACCOUNT]},
    )


@pytest.mark.parametrize(
    "typed",
    [
        kid(1234)[:3] + "9" + kid(1234)[4:],  # one digit wrong
        kid(1234)[:4] + kid(1234)[5] + kid(1234)[4] + kid(1234)[6:],  # adjacent swap
        kid(1234)[:5] + kid(1234)[6:],  # one digit missing
        kid(1234)[:5] + "7" + kid(1234)[5:],  # one digit extra
    ],
)
def test_a_keying_error_with_the_exact_amount_is_matched(typed: str) -> None:
    d = decide(payment(12_340_000, reference=typed), neighbours())
    assert (d.status, d.method, dict(d.allocations)) == ("matched", "kid_typo", {"inv-1234": 12_340_000})
    assert any("keying error" in e or "digit" in e for e in d.evidence)


def test_a_keying_error_from_the_customers_account_is_matched_even_as_part_payment() -> None:
    typed = kid(1234)[:3] + "9" + kid(1234)[4:]
    d = decide(payment(5_000, reference=typed, payer_account=ACCOUNT), neighbours())
    assert (d.status, d.method, dict(d.allocations)) == ("matched", "kid_typo", {"inv-1234": 5_000})


def test_a_keying_error_that_fits_nothing_goes_to_review_with_suggestions() -> None:
    typed = kid(1234)[:3] + "9" + kid(1234)[4:]
    d = decide(payment(5_000, reference=typed), neighbours())
    assert (d.status, d.method, d.allocations) == ("review", "kid_typo", {})
    assert "inv-1234" in d.candidate_invoice_ids


def test_two_candidates_with_the_payments_amount_go_to_review() -> None:
    a, b = "1234567897", "1234567823"
    typed = "1234567893"  # one digit wrong from both
    items = index(item(1, kid_=a, open_minor=50_000), item(2, kid_=b, open_minor=50_000, customer="c2"))
    assert {c.item.invoice_id for c in items.kid_candidates(typed)} == {"inv-1", "inv-2"}
    d = decide(payment(50_000, reference=typed), items)
    assert (d.status, d.method, d.allocations) == ("review", "kid_typo", {})
    assert set(d.candidate_invoice_ids) == {"inv-1", "inv-2"}


def test_a_paid_neighbour_with_the_same_amount_makes_it_ambiguous() -> None:
    a, b = "1234567897", "1234567823"
    items = index(
        item(1, kid_=a, open_minor=50_000), item(2, kid_=b, open_minor=0, status="paid", total_minor=50_000)
    )
    d = decide(payment(50_000, reference="1234567893"), items)
    assert (d.status, d.allocations) == ("review", {})


def test_a_typo_whose_only_fit_is_another_customers_account_is_not_matched_on_amount() -> None:
    typed = kid(1234)[:3] + "9" + kid(1234)[4:]
    items = neighbours()
    items.add_payer_account("someone-else", "99998877665")
    d = decide(payment(12_340_000, reference=typed, payer_account="99998877665"), items)
    assert d.status == "review"


def test_two_digits_wrong_is_not_a_keying_error() -> None:
    typed = kid(1234)[:2] + "99" + kid(1234)[4:]
    d = decide(payment(12_340_000, reference=typed), neighbours())
    assert "inv-1234" not in {c.item.invoice_id for c in neighbours().kid_candidates(typed)}
    assert (d.status, d.allocations) == ("review", {})


# --- 3. free text, then the payer --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["Faktura 10042", "fakt.nr 10042", "fakt.nr.10042", "Inv#10042", "Betaling faktura nr. 10042 15.03.2025"],
)
def test_invoice_number_in_the_text(text: str) -> None:
    d = decide(payment(100_000, free_text=text), index(item(10042), item(10043)))
    assert (d.status, d.method, dict(d.allocations)) == ("matched", "free_text", {"inv-10042": 100_000})


def test_kid_in_the_text() -> None:
    d = decide(payment(100_000, free_text=f"KID {kid(10042)}"), index(item(10042)))
    assert (d.status, d.method) == ("matched", "free_text")


def test_several_invoices_in_the_text_that_add_up() -> None:
    items = index(item(10042, open_minor=30_000), item(10043, open_minor=20_000))
    d = decide(payment(50_000, free_text="Fakturaene 10042 og 10043"), items)
    assert dict(d.allocations) == {"inv-10042": 30_000, "inv-10043": 20_000}


def test_several_invoices_in_the_text_that_do_not_add_up_go_to_review() -> None:
    items = index(item(10042, open_minor=30_000), item(10043, open_minor=20_000))
    d = decide(payment(45_000, free_text="Fakturaene 10042 og 10043"), items)
    assert (d.status, d.allocations) == ("review", {})


@pytest.mark.parametrize(
    "text",
    [
        "Betaling 10.04.2042",  # a date
        "kr 10 042,00",  # an amount
        "tlf 100 42 042",  # a phone number
        "Ordre 10042",  # somebody's order number
        "kundenr 10042",  # a customer number
        "Husleie 2025",  # a year
    ],
)
def test_numbers_that_only_look_like_invoices_do_not_match(text: str) -> None:
    items = index(item(10042), item(2025), item(42), item(100))
    d = decide(payment(100_000, free_text=text), items)
    assert d.allocations == {}


def test_a_number_that_is_one_invoices_number_and_anothers_kid_is_ambiguous() -> None:
    items = index(item(10042, customer="c1"), item(1, kid_="10042", number="A-1", customer="c2"))
    d = decide(payment(100_000, free_text="10042"), items)
    assert (d.status, d.allocations) == ("review", {})
    labelled = decide(payment(100_000, free_text="Faktura 10042"), items)
    assert dict(labelled.allocations) == {"inv-10042": 100_000}


def test_an_unlabelled_number_needs_the_amount_or_the_payer() -> None:
    items = index(item(10042))
    assert decide(payment(100_000, free_text="10042"), items).status == "matched"
    assert decide(payment(60_000, free_text="10042"), items).status == "review"


def test_text_naming_a_paid_invoice_is_credit_and_review() -> None:
    d = decide(payment(100_000, free_text="Faktura 10042"), index(paid(10042), item(10043)))
    assert (d.status, d.allocations, d.credit_minor) == ("review", {}, 100_000)


def test_invoice_number_in_the_reference_field() -> None:
    d = decide(payment(100_000, reference="10042"), index(item(10042)))
    assert (d.status, dict(d.allocations)) == ("matched", {"inv-10042": 100_000})


def payer_items() -> OpenItems:
    return index(
        item(1, open_minor=10_000, due_days=30),
        item(2, open_minor=25_000, due_days=10),
        item(3, open_minor=40_000, due_days=20),
        item(4, open_minor=99_000, customer="c2"),
        accounts={"c1": [ACCOUNT]},
        names={"c1": ["Ola Nordmann"], "c2": ["Kari Nordmann"]},
    )


def test_payer_account_and_one_invoices_amount() -> None:
    d = decide(payment(40_000, payer_account=ACCOUNT), payer_items())
    assert (d.status, d.method, dict(d.allocations)) == ("matched", "payer_account_amount", {"inv-3": 40_000})


def test_payer_account_and_a_set_of_invoices() -> None:
    d = decide(payment(75_000, payer_account=ACCOUNT), payer_items())
    assert (d.status, d.method) == ("matched", "payer_set")
    assert list(d.allocations.items()) == [("inv-2", 25_000), ("inv-3", 40_000), ("inv-1", 10_000)]


def test_two_sets_that_fit_go_to_review() -> None:
    # 50,000 = 10,000 + 40,000 and 25,000 + 25,000
    items = payer_items()
    items.add(item(5, open_minor=25_000))
    d = decide(payment(50_000, payer_account=ACCOUNT), items)
    assert (d.status, d.method, d.allocations) == ("review", "payer_set", {})
    assert len(d.suggestions) >= 2


def test_payer_name_and_one_invoices_amount() -> None:
    d = decide(payment(99_000, payer_name="NORDMANN KARI"), payer_items())
    assert (d.status, d.method, dict(d.allocations)) == ("matched", "payer_name_amount", {"inv-4": 99_000})


def test_a_part_payment_without_reference_goes_to_review() -> None:
    d = decide(payment(12_345, payer_account=ACCOUNT), payer_items())
    assert d.status == "review"
    assert d.suggestions


def test_a_payer_with_many_invoices_matches_only_a_unique_single_invoice() -> None:
    items = index(*(item(n, open_minor=1_000 * n) for n in range(1, 30)), accounts={"c1": [ACCOUNT]})
    assert decide(payment(29_000, payer_account=ACCOUNT), items).status == "review"  # 29 alone, and 1+28, ...
    lone = index(*(item(n, open_minor=1_000_000 + n) for n in range(1, 30)), accounts={"c1": [ACCOUNT]})
    d = decide(payment(1_000_007, payer_account=ACCOUNT), lone)
    assert dict(d.allocations) == {"inv-7": 1_000_007}


# --- 4. anything else, debits, odd amounts ------------------------------------------------------


def test_nothing_to_go_on_is_review_with_the_reason() -> None:
    d = decide(payment(100_000, payer_name="Unknown Person"), index(item(1), item(2, open_minor=5)))
    assert (d.status, d.method, d.allocations) == ("review", "none", {})
    assert d.reason
    assert d.candidate_invoice_ids == ("inv-1",)


def test_a_debit_is_not_matched() -> None:
    d = decide(payment(100_000, reference=kid(7), direction="debit"), index(item(7)))
    assert (d.status, d.method, d.allocations) == ("reversal", "debit", {})


def test_allocate_oldest_due_first_never_more_than_open() -> None:
    items = [item(1, open_minor=300, due_days=30), item(2, open_minor=500, due_days=10), paid(3)]
    assert allocate(600, items) == ({"inv-2": 500, "inv-1": 100}, 0)
    assert allocate(1_000, items) == ({"inv-2": 500, "inv-1": 300}, 200)
    assert allocate(0, items) == ({}, 0)


def test_mentions() -> None:
    assert mentions("Faktura nr. 10042 og 10043, 10044") == [
        Mention("10042", "invoice"),
        Mention("10043", "invoice"),
        Mention("10044", "invoice"),
    ]
    assert mentions("KID: 0000 1234 55") == [Mention("0000123455", "kid")]
    assert mentions("kundenr 5512 faktura 77 tlf 912 34 567") == [Mention("77", "invoice")]
    assert mentions("Betaling 15.03.2024 kr 1 234,50 +47 91234567 12:30") == []
