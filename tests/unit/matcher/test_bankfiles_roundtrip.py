"""Whatever payments a file is built with, parsing gives them back exactly (amounts in minor units,
references, dates, texts), in every format; and detection never needs the file name."""

from __future__ import annotations

import time
from datetime import date

import netsgiro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matcher.adapters.bankfiles import BankFileError, detect, parse
from services.matcher.domain.payments import BankPayment
from tests.support.bankfiles import CAMT_VERSIONS, FilePayment, bgmax_file, camt053, camt054, ocr_giro_file

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2079, 12, 31))
kids = st.from_regex(r"[0-9]{3,24}[0-9-]", fullmatch=True) | st.just("")
# Printable ISO-8859-1 text without the blanks a fixed-width field pads with at either end.
latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_categories=("Cc", "Zs"))
words = st.text(latin1, min_size=1, max_size=8)


def text(max_words: int, limit: int) -> st.SearchStrategy[str]:
    return st.lists(words, max_size=max_words).map(" ".join).map(lambda s: s[:limit].strip())


def essentials(p: BankPayment) -> tuple[object, ...]:
    return (p.amount_minor, p.direction, p.reference, p.free_text, p.booking_date, p.value_date)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.builds(
            FilePayment,
            amount_minor=st.integers(0, 10**15),
            reference=kids,
            free_text=text(6, 40),
            payer_account=st.from_regex(r"[1-9][0-9]{10}", fullmatch=True) | st.just(""),
            booking_date=days,
            value_date=days | st.none(),
            debit=st.booleans(),
        ),
        max_size=12,
    )
)
def test_ocr_giro_round_trip(payments: list[FilePayment]) -> None:
    file = parse(ocr_giro_file(payments))

    assert [essentials(p) for p in file.payments] == [
        (f.amount_minor, "debit" if f.debit else "credit", f.reference, f.free_text, f.booking_date,
         f.value_date or f.booking_date)
        for f in payments
    ]  # fmt: skip
    assert [p.payer_account for p in file.payments] == [f.payer_account for f in payments]
    assert len({p.bank_key for p in file.payments}) == len(payments)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(CAMT_VERSIONS),
    st.sampled_from([camt054, camt053]),
    st.sampled_from(["NOK", "SEK", "EUR", "JPY", "KWD"]),
    st.lists(
        st.builds(
            FilePayment,
            amount_minor=st.integers(1, 10**12),
            reference=st.from_regex(r"[0-9A-Z]{1,25}", fullmatch=True) | st.just(""),
            free_text=text(8, 140),
            payer_name=text(4, 70),
            booking_date=days,
            value_date=days | st.none(),
            end_to_end_id=st.from_regex(r"[A-Za-z0-9]{1,35}", fullmatch=True) | st.just(""),
            acct_svcr_ref=st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True) | st.just(""),
            entry=st.sampled_from([None, 1, 2]),
        ),
        max_size=10,
    ),
)
def test_camt_round_trip(version: str, build, currency: str, payments: list[FilePayment]) -> None:  # type: ignore[no-untyped-def]
    payments = [FilePayment(**{**p.__dict__, "currency": currency}) for p in payments]
    # An entry's transactions share its dates; give batched payments their entry's dates.
    first_of: dict[int, FilePayment] = {}
    for p in payments:
        if p.entry is not None:
            first_of.setdefault(p.entry, p)
    payments = [
        p if p.entry is None else FilePayment(**{**p.__dict__, "booking_date": first_of[p.entry].booking_date,
                                                 "value_date": first_of[p.entry].value_date})
        for p in payments
    ]  # fmt: skip
    ordered = _entry_order(payments)

    file = parse(build(payments, version, currency=currency))

    assert [(*essentials(p), p.payer_name, p.currency) for p in file.payments] == [
        (f.amount_minor, "credit", f.reference, f.free_text, f.booking_date, f.value_date or f.booking_date,
         f.payer_name, currency)
        for f in ordered
    ]  # fmt: skip
    assert len({p.bank_key for p in file.payments}) == len(payments)


def _entry_order(payments: list[FilePayment]) -> list[FilePayment]:
    """The builder writes one entry per payment, batched payments in their entry where it first appears."""
    groups: list[list[FilePayment]] = []
    by_entry: dict[int, list[FilePayment]] = {}
    for p in payments:
        if p.entry is None:
            groups.append([p])
        elif p.entry in by_entry:
            by_entry[p.entry].append(p)
        else:
            by_entry[p.entry] = [p]
            groups.append(by_entry[p.entry])
    return [p for group in groups for p in group]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.builds(
            FilePayment,
            amount_minor=st.integers(0, 10**15),
            reference=st.from_regex(r"[0-9]{2,25}", fullmatch=True),
            free_text=text(6, 50),
            payer_name=text(4, 35),
            booking_date=days,
            currency=st.sampled_from(["SEK", "EUR"]),
        ),
        max_size=10,
    )
)
def test_bgmax_round_trip(payments: list[FilePayment]) -> None:
    file = parse(bgmax_file(payments))
    sections: dict[tuple[date, str], list[FilePayment]] = {}
    for p in payments:
        sections.setdefault((p.booking_date, p.currency), []).append(p)

    assert [(*essentials(p), p.payer_name, p.currency) for p in file.payments] == [
        (
            f.amount_minor,
            "credit",
            f.reference,
            f.free_text,
            f.booking_date,
            f.booking_date,
            f.payer_name,
            f.currency,
        )
        for group in sections.values()
        for f in group
    ]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_a_file_or_a_refusal(content: bytes) -> None:
    try:
        parse(content)
    except BankFileError as error:
        problems = error.problems
    else:
        problems = ()
    assert all(p.reason for p in problems)


def test_detection_ignores_the_file_name() -> None:
    content = camt054([FilePayment(100)])
    assert detect(content, "payments.ocr") == "camt.054"
    with pytest.raises(BankFileError, match=r"payments\.xml: the file is camt\.054, not ocr_giro"):
        parse(content, format="ocr_giro", filename="payments.xml")


@pytest.mark.slow
def test_fifty_thousand_ocr_giro_payments_parse_faster_than_netsgiro() -> None:
    content = ocr_giro_file(
        [FilePayment(10_000 + i, reference=f"{i:08d}5", free_text="x" * (i % 2)) for i in range(50_000)]
    )

    started = time.perf_counter()
    assert len(parse(content).payments) == 50_000
    ours = time.perf_counter() - started
    started = time.perf_counter()
    netsgiro.parse(content.decode("iso-8859-1"))
    theirs = time.perf_counter() - started

    print(f"OCR Giro: {50_000 / ours:,.0f} payments/s; netsgiro's parse alone {50_000 / theirs:,.0f}/s")
    assert ours < theirs
