"""The sandbox bank: its files are valid (the matcher's parser reads them whole, counts and totals
right), the same seed gives the same file, and what it says each payment comes to is what the
matcher's own rules decide, payment after payment, against the same invoices."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta

import pytest

from services.common.kid import KidScheme, generate_kid
from services.matcher.adapters.bankfiles import parse
from services.matcher.domain.matching import decide
from services.matcher.domain.open_items import OpenItem, OpenItems
from services.matcher.domain.payments import BankFile
from services.sandbox.bank import (
    FILE_KINDS,
    SCENARIOS,
    BankInvoice,
    GeneratedFile,
    Scenario,
    generate_file,
    norwegian_account,
    norwegian_iban,
)
from services.sandbox.bank_keying import KEYING_ERRORS, one_keying_error, variants

DAY = date(2025, 6, 20)
NAMES = ("Ola Hansen", "Kari Olsen", "Bergen Bryggeri AS", "Per Berg", "Nordlys Regnskap AS", "Liv Dahl")


def invoices(count: int, seed: int = 1, *, closed: int = 0) -> list[BankInvoice]:
    """Invoices as the ledger issues them: gapless numbers, sequential MOD10 KIDs, a third of the
    customers with several invoices, some amounts shared, some customers with a known account."""
    rng = random.Random(seed)
    customers = [
        (
            f"C{n:04d}",
            f"{rng.choice(NAMES)} {n}",
            norwegian_account(rng) if rng.random() < 0.6 else "",
        )
        for n in range(max(2, count // 3))
    ]
    made = []
    for n in range(1, count + 1):
        number, name, account = rng.choice(customers)
        amount = rng.choice((49_900, 125_000)) if rng.random() < 0.1 else rng.randrange(10_000, 2_000_000)
        made.append(
            BankInvoice(
                number=str(10_000 + n),
                kid=generate_kid(n, length=10, scheme=KidScheme.MOD10),
                amount_minor=amount,
                customer_number=number,
                customer_name=name,
                customer_account=account,
                is_open=n > closed,
            )
        )
    return made


def book(given: list[BankInvoice]) -> OpenItems:
    """The matcher's open items for the same invoices (customer ids are the customer numbers)."""
    items = [
        OpenItem(
            invoice_id=i.number,
            invoice_number=i.number,
            kid=i.kid,
            customer_id=i.customer_number,
            customer_number=i.customer_number,
            currency=i.currency,
            open_minor=i.amount_minor if i.is_open else 0,
            status="open" if i.is_open else "paid",
            due_date=DAY + timedelta(days=int(i.number) % 30),
            version=1,
            total_minor=i.total_minor or i.amount_minor,
        )
        for i in given
    ]
    accounts: dict[str, list[str]] = {}
    names: dict[str, list[str]] = {}
    for i in given:
        if i.customer_account:
            accounts.setdefault(i.customer_number, []).append(i.customer_account)
        names.setdefault(i.customer_number, []).append(i.customer_name)
    return OpenItems(items, payer_accounts=accounts, payer_names=names)


def match_all(
    made: GeneratedFile, given: list[BankInvoice]
) -> tuple[BankFile, list[tuple[str, dict[str, int]]]]:
    """Each payment of the file, in file order, decided as the matcher does against its book, the
    open amounts taken by each match before the next is decided: (status, invoice number → amount;
    for a payment in review, the invoices suggested, with 0)."""
    parsed = parse(made.content)
    items = book(given)
    outcomes: list[tuple[str, dict[str, int]]] = []
    for payment in parsed.payments:
        decision = decide(payment, items)
        suggested = {n for s in decision.suggestions for n in s.invoice_numbers}
        outcomes.append((decision.status, dict(decision.allocations) or dict.fromkeys(suggested, 0)))
        for invoice_id, amount in decision.allocations.items():
            item = items.get(invoice_id)
            assert item is not None
            left = item.open_minor - amount
            items.update(
                replace(
                    item,
                    open_minor=left,
                    status="paid" if left == 0 else "part_paid",
                    version=item.version + 1,
                )
            )
    return parsed, outcomes


@pytest.mark.parametrize("file_format", FILE_KINDS)
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_every_expected_outcome_is_what_the_matcher_decides(file_format: str, seed: int) -> None:
    given = invoices(300, seed, closed=20)
    made = generate_file(given, seed=seed, day=DAY, format=file_format)  # type: ignore[arg-type]

    parsed, outcomes = match_all(made, given)

    assert len(parsed.payments) == len(made.payments)
    for expected, (status, allocations) in zip(made.payments, outcomes, strict=True):
        if expected.review:
            assert status == "review", expected
            if len(expected.candidates) <= 5:  # the matcher suggests the invoices it may be for
                assert set(expected.candidates) <= set(allocations), expected
        else:
            assert status == "matched", expected
            assert allocations == expected.pays, expected


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_holds_on_small_and_large_batches(scenario: str) -> None:
    for count, seed in ((12, 7), (40, 8), (1000, 9)):
        given = invoices(count, seed)
        made = generate_file(given, seed=seed, day=DAY, scenario=scenario)
        _, outcomes = match_all(made, given)
        for expected, (status, allocations) in zip(made.payments, outcomes, strict=True):
            assert (status == "review") == expected.review, expected
            if not expected.review:
                assert allocations == expected.pays, expected


def test_the_realistic_mix() -> None:
    given = invoices(600, 11)
    made = generate_file(given, seed=11, day=DAY)

    kinds = made.kinds()
    assert set(kinds) >= {"exact", "part", "over", "kid_typo", "free_text", "ambiguous_typo", "unknown_payer"}
    assert kinds["multi_text"] + kinds["multi_account"] > 0
    assert kinds["exact"] > len(made.payments) / 2
    assert 0 < len(made.in_review()) <= len(made.payments) / 20
    paid = made.paid()
    assert 0.7 * 600 <= len(paid) <= 0.85 * 600
    # Each invoice is paid by one payment at most; every payment pays what it says or goes to review.
    numbers = [n for p in made.payments for n in p.pays]
    assert len(numbers) == len(set(numbers))
    by_number = {i.number: i for i in given}
    for p in made.payments:
        if p.kind in ("exact", "kid_typo", "free_text", "multi_text", "multi_account"):
            assert p.payment.amount_minor == sum(by_number[n].amount_minor for n in p.pays)
        if p.kind == "part":
            (number,) = p.pays
            assert 0 < p.payment.amount_minor < by_number[number].amount_minor
        if p.kind == "over":
            (number,) = p.pays
            assert p.payment.amount_minor == by_number[number].amount_minor + p.credit_minor
            assert p.credit_minor > 0
        if p.kind == "kid_typo":
            (number,) = p.pays
            assert p.payment.reference != by_number[number].kid
            assert one_keying_error(p.payment.reference, by_number[number].kid)
        if p.kind in ("free_text", "multi_text"):
            assert p.payment.reference == ""
            assert all(n in p.payment.free_text for n in p.pays)
        if p.kind == "ambiguous_typo":
            assert len(p.candidates) == 2
            assert all(one_keying_error(p.payment.reference, by_number[n].kid) for n in p.candidates)
        if p.kind == "unknown_payer":
            assert p.payment.reference == ""
            assert all(by_number[n].amount_minor == p.payment.amount_minor for n in p.candidates)


def test_every_keying_error_occurs() -> None:
    given = invoices(2000, 12)
    made = generate_file(given, seed=12, day=DAY, scenario="messy")
    by_number = {i.number: i for i in given}
    errors: Counter[str] = Counter()
    for p in made.payments:
        if p.kind == "kid_typo":
            kid = by_number[next(iter(p.pays))].kid
            for error in KEYING_ERRORS:
                if p.payment.reference in set(variants(kid, error)):
                    errors[error] += 1
    assert set(errors) == set(KEYING_ERRORS)


@pytest.mark.parametrize("file_format", FILE_KINDS)
def test_the_file_declares_its_counts_and_totals(file_format: str) -> None:
    given = invoices(200, 13)
    made = generate_file(given, seed=13, day=DAY, format=file_format)  # type: ignore[arg-type]

    parsed = parse(made.content)

    assert parsed.format == file_format
    assert len(parsed.payments) == len(made.payments) == parsed.declared_count
    assert sum(p.amount_minor for p in parsed.payments) == made.total_minor
    if file_format == "ocr_giro":
        assert parsed.declared_total_minor == made.total_minor
        assert parsed.creditor_account == made.creditor_account
        text = made.content.decode("iso-8859-1")
        assert all(len(line) == 80 for line in text.splitlines())
    else:
        assert b"camt.054.001.08" in made.content
    for expected, payment in zip(made.payments, parsed.payments, strict=True):
        assert payment.amount_minor == expected.payment.amount_minor
        assert payment.reference == expected.payment.reference
        assert payment.free_text == expected.payment.free_text
        # The payer's account is on every payment (OCR Giro: amount item 2; camt: DbtrAcct as an IBAN).
        assert payment.payer_account
        if file_format == "ocr_giro":
            assert payment.bank_ids["archive_reference"] == expected.bank_id
            assert payment.bank_ids["transaction_number"]
        else:
            assert payment.bank_ids["acct_svcr_ref"] == expected.bank_id
            assert payment.bank_ids.get("end_to_end_id", "NOTPROVIDED") == expected.payment.end_to_end_id
            assert payment.payer_name
    assert len({p.bank_key for p in parsed.payments}) == len(parsed.payments)


def test_the_same_seed_gives_the_same_file_whatever_the_order() -> None:
    given = invoices(150, 14)
    first = generate_file(given, seed=5, day=DAY)
    again = generate_file(list(reversed(given)), seed=5, day=DAY)
    other = generate_file(given, seed=6, day=DAY)
    next_day = generate_file(given, seed=5, day=DAY + timedelta(days=1))

    assert first.content == again.content
    assert first.payments == again.payments
    assert first.filename == again.filename
    assert other.content != first.content
    assert other.file_number != first.file_number
    assert next_day.file_number != first.file_number


@pytest.mark.parametrize("file_format", FILE_KINDS)
def test_a_file_sent_again_has_the_same_transactions_in_another_file(file_format: str) -> None:
    given = invoices(60, 15)
    made = generate_file(given, seed=15, day=DAY, format=file_format)  # type: ignore[arg-type]
    resent = made.resent()

    first, second = parse(made.content), parse(resent.content)

    assert resent.content != made.content
    assert second.file_id != first.file_id
    assert [p.bank_key for p in second.payments] == [p.bank_key for p in first.payments]
    assert resent.payments == made.payments


def test_only_open_invoices_in_nok_are_paid() -> None:
    given = invoices(80, 16, closed=30)
    given.append(
        replace(
            given[-1],
            number="99999",
            kid=generate_kid(9999, length=10, scheme=KidScheme.MOD10),
            currency="EUR",
        )
    )
    made = generate_file(given, seed=16, day=DAY, scenario="clean")

    closed = {i.number for i in given if not i.is_open} | {"99999"}
    assert not closed & set(made.paid())
    assert len(made.paid()) == 80 - 30


def test_an_unknown_scenario_or_format_is_refused() -> None:
    with pytest.raises(KeyError):
        generate_file(invoices(5), seed=1, day=DAY, scenario="nonsense")
    with pytest.raises(ValueError, match="format"):
        generate_file(invoices(5), seed=1, day=DAY, format="bgmax")  # type: ignore[arg-type]
    custom = Scenario("only typos", paid_share=1.0, weights=(("kid_typo", 1),), every_kind=False)
    made = generate_file(invoices(30, 17), seed=1, day=DAY, scenario=custom)
    assert set(made.kinds()) <= {"kid_typo", "exact"}


def test_accounts_are_valid_norwegian_accounts_and_ibans() -> None:
    rng = random.Random(1)
    for _ in range(50):
        account = norwegian_account(rng)
        assert len(account) == 11
        weights = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
        assert sum(w * int(d) for w, d in zip(weights, account, strict=True)) % 11 == 0
        iban = norwegian_iban(account)
        assert iban == "NO" + iban[2:4] + account
        assert int((iban[4:] + iban[:4]).replace("NO", "2324")) % 97 == 1
    assert norwegian_iban("NO9386011117947") == "NO9386011117947"
    assert norwegian_iban("86011117947") == "NO9386011117947"
