"""Money: integer minor units, EN 16931 rounding, splitting, allocation and formatting."""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.money import (
    CURRENCY_EXPONENTS,
    Totals,
    UnknownCurrency,
    VatLine,
    allocate_in_order,
    check_currency,
    format_money,
    invoice_totals,
    line_net_minor,
    parse_decimal,
    round_half_up,
    split_proportionally,
    vat_amount_minor,
)

D = Decimal

finite_decimals = st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**15), max_value=10**15)
quantities = st.decimals(allow_nan=False, allow_infinity=False, min_value=-10_000, max_value=10_000, places=4)
vat_rates = st.sampled_from([D("25"), D("25.00"), D("15"), D("12"), D("11.11"), D("6"), D("0"), D("12.5")])
amounts = st.integers(min_value=-(10**12), max_value=10**12)


def exact_half_up(value: Decimal) -> int:
    """The oracle: Decimal's own ROUND_HALF_UP with more precision than any input needs."""
    with localcontext() as ctx:
        ctx.prec = 1000
        return int(value.quantize(D(1), rounding=ROUND_HALF_UP))


# --- currencies ---------------------------------------------------------------------------------


REQUIRED_CURRENCIES = [
    "NOK", "SEK", "DKK", "EUR", "USD", "GBP", "ISK", "CHF", "PLN", "JPY", "CAD", "AUD", "NZD", "CZK",
    "HUF", "RON", "BGN", "TRY", "ZAR", "CNY", "HKD", "SGD", "INR", "BRL", "MXN", "KRW",
]  # fmt: skip


@pytest.mark.parametrize("code", REQUIRED_CURRENCIES)
def test_required_currencies_are_known(code: str) -> None:
    assert check_currency(code) == code
    assert code in CURRENCY_EXPONENTS


@pytest.mark.parametrize(
    ("code", "exponent"),
    [("NOK", 2), ("SEK", 2), ("EUR", 2), ("ISK", 0), ("JPY", 0), ("KRW", 0), ("BHD", 3), ("KWD", 3)],
)
def test_currency_exponents(code: str, exponent: int) -> None:
    assert CURRENCY_EXPONENTS[code] == exponent


def test_currency_table_is_well_formed_and_read_only() -> None:
    assert len(CURRENCY_EXPONENTS) > 140
    for code, exponent in CURRENCY_EXPONENTS.items():
        assert len(code) == 3
        assert code.isascii()
        assert code.isupper()
        assert exponent in (0, 2, 3)
    with pytest.raises(TypeError):
        CURRENCY_EXPONENTS["XXX"] = 2  # type: ignore[index]


@pytest.mark.parametrize("code", ["NKR", "nok", "Nok", "", "NOKK", " NOK", "XXX", "XAU", "USN", "HRK"])
def test_unknown_currency_is_rejected_with_a_helpful_message(code: str) -> None:
    with pytest.raises(UnknownCurrency, match=r"ISO 4217 code expected, e\.g\. NOK") as caught:
        check_currency(code)
    assert repr(code) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_lower_case_currency_hints_at_upper_case() -> None:
    with pytest.raises(UnknownCurrency, match="upper case"):
        check_currency("sek")


# --- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2", D(2)), ("1.5", D("1.5")), ("-3", D(-3)), ("0.125", D("0.125")), ("007", D(7)), ("-0.0", D(0))],
)
def test_parse_decimal_accepts_plain_decimals(text: str, expected: Decimal) -> None:
    assert parse_decimal(text) == expected


def test_parse_decimal_keeps_the_given_exponent() -> None:
    assert parse_decimal("1.50").as_tuple().exponent == -2


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "1e3", "1E3", "1.5e-2", "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", "1,5",
        "1 000", " 1", "1 ", "1\n", "+1", ".5", "1.", "-", "1_000", "1.2.3", "--1", "0x10",
        "\u0661\u0662", "\uff11",  # Arabic-Indic and full-width digits
    ],
)  # fmt: skip
def test_parse_decimal_rejects_everything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"^quantity: expected a plain decimal number") as caught:
        parse_decimal(text, field="quantity")
    assert repr(text) in str(caught.value)


def test_parse_decimal_names_value_by_default() -> None:
    with pytest.raises(ValueError, match=r"^value: "):
        parse_decimal("abc")


@given(finite_decimals)
def test_parse_decimal_round_trips_fixed_point_text(value: Decimal) -> None:
    text = f"{value:f}"
    assert parse_decimal(text) == value


# --- rounding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0), ("0.4", 0), ("0.5", 1), ("1.5", 2), ("2.5", 3), ("2.4999", 2), ("-0.4", 0),
        ("-0.5", -1), ("-2.5", -3), ("-2.51", -3), ("-2.49", -2), ("7", 7), ("1E+30", 10**30),
        ("123456789012345678901234567890.5", 123456789012345678901234567891),
    ],
)  # fmt: skip
def test_round_half_up_vectors(value: str, expected: int) -> None:
    assert round_half_up(D(value)) == expected


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_round_half_up_rejects_non_finite(value: str) -> None:
    with pytest.raises(ValueError, match="finite"):
        round_half_up(D(value))


@given(finite_decimals)
def test_round_half_up_matches_decimal_round_half_up(value: Decimal) -> None:
    assert round_half_up(value) == exact_half_up(value)


def test_rounding_ignores_the_ambient_decimal_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = ROUND_FLOOR
        assert line_net_minor(D("1.5"), 123457) == 185186  # 185185.5
        assert round_half_up(D("-2.5")) == -3
        assert vat_amount_minor(123457, D("25")) == 30864  # 30864.25


# --- line and VAT amounts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "price", "expected"),
    [
        ("2", 12_500, 25_000), ("1.5", 999, 1499), ("0.333", 100, 33), ("0.125", 4, 1), ("0.125", 2, 0),
        ("-3", 1000, -3000), ("-0.125", 4, -1), ("0", 5000, 0), ("1000000", 10**12, 10**18),
    ],
)  # fmt: skip
def test_line_net_minor_vectors(quantity: str, price: int, expected: int) -> None:
    assert line_net_minor(D(quantity), price) == expected


@given(quantities, st.integers(min_value=-(10**9), max_value=10**9))
def test_line_net_minor_is_quantity_times_price_rounded_half_up(quantity: Decimal, price: int) -> None:
    with localcontext() as ctx:
        ctx.prec = 1000
        exact = quantity * price
    assert line_net_minor(quantity, price) == exact_half_up(exact)


@pytest.mark.parametrize(
    ("taxable", "rate", "expected"),
    [
        (10_000, "25", 2_500), (999, "15", 150), (1, "12.5", 0), (4, "12.5", 1), (-4, "12.5", -1),
        (10_000, "0", 0), (12_345, "11.11", 1372), (-999, "15", -150), (0, "25", 0),
    ],
)  # fmt: skip
def test_vat_amount_minor_vectors(taxable: int, rate: str, expected: int) -> None:
    assert vat_amount_minor(taxable, D(rate)) == expected


@pytest.mark.parametrize("rate", ["-25", "NaN", "Infinity"])
def test_vat_amount_minor_rejects_bad_rates(rate: str) -> None:
    with pytest.raises(ValueError, match="VAT rate"):
        vat_amount_minor(100, D(rate))


@given(amounts, vat_rates)
def test_vat_amount_minor_matches_exact_rounding(taxable: int, rate: Decimal) -> None:
    with localcontext() as ctx:
        ctx.prec = 1000
        exact = taxable * rate / 100
    assert vat_amount_minor(taxable, rate) == exact_half_up(exact)


@given(amounts, vat_rates)
def test_vat_on_a_credit_mirrors_the_invoice(taxable: int, rate: Decimal) -> None:
    assert vat_amount_minor(-taxable, rate) == -vat_amount_minor(taxable, rate)


# --- invoice totals -----------------------------------------------------------------------------


def test_invoice_totals_worked_example() -> None:
    totals = invoice_totals([(10_000, D("25")), (999, D("15")), (333, D("25.00")), (100, D("0"))])
    assert totals == Totals(
        net_minor=11_432,
        vat_minor=2_733,
        gross_minor=14_165,
        vat_breakdown=(
            VatLine(rate=D("25"), taxable_minor=10_333, vat_minor=2_583),  # 2583.25
            VatLine(rate=D("15"), taxable_minor=999, vat_minor=150),  # 149.85
            VatLine(rate=D("0"), taxable_minor=100, vat_minor=0),
        ),
    )
    assert str(totals.vat_breakdown[0].rate) == "25"  # the first spelling of the rate


def test_vat_is_rounded_per_rate_not_per_line() -> None:
    # Three lines of 0.02 at 25 %: per line 0.005 would round to 0.01 each (0.03); per category
    # 0.06 x 25 % = 0.015 rounds to 0.02 (EN 16931 BR-CO-17).
    totals = invoice_totals([(2, D("25"))] * 3)
    assert totals.vat_minor == 2
    assert totals.gross_minor == 8


def test_invoice_totals_sorts_rates_descending_whatever_the_input_order() -> None:
    totals = invoice_totals([(100, D("6")), (100, D("25")), (100, D("0")), (100, D("12")), (100, D("15"))])
    assert [line.rate for line in totals.vat_breakdown] == [D(25), D(15), D(12), D(6), D(0)]


def test_invoice_totals_of_nothing_is_zero() -> None:
    assert invoice_totals([]) == Totals(0, 0, 0, ())


def test_invoice_totals_of_a_credit_note_is_negative() -> None:
    totals = invoice_totals([(-10_000, D("25")), (-999, D("15"))])
    assert (totals.net_minor, totals.vat_minor, totals.gross_minor) == (-10_999, -2_650, -13_649)


def test_totals_are_immutable() -> None:
    totals = invoice_totals([(100, D("25"))])
    with pytest.raises(AttributeError):
        totals.net_minor = 0  # type: ignore[misc]


@given(st.lists(st.tuples(amounts, vat_rates), max_size=30))
def test_invoice_totals_add_up(lines: list[tuple[int, Decimal]]) -> None:
    totals = invoice_totals(lines)
    assert totals.net_minor == sum(net for net, _ in lines)
    assert totals.gross_minor == totals.net_minor + totals.vat_minor
    assert totals.vat_minor == sum(line.vat_minor for line in totals.vat_breakdown)
    assert totals.net_minor == sum(line.taxable_minor for line in totals.vat_breakdown)
    rates = [line.rate for line in totals.vat_breakdown]
    assert rates == sorted(set(rates), reverse=True)
    assert {line.rate for line in totals.vat_breakdown} == {rate for _, rate in lines}
    for line in totals.vat_breakdown:
        assert line.vat_minor == vat_amount_minor(line.taxable_minor, line.rate)


# --- splitting ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (101, [1, 1], [51, 50]),
        (10, [0, 1, 0], [0, 10, 0]),
        (0, [3, 7], [0, 0]),
        (1, [1, 1, 1], [1, 0, 0]),
        (2, [1, 1, 1], [1, 1, 0]),
        (5, [1, 2], [2, 3]),  # shares 1.67 and 3.33: the larger remainder gets the extra unit
        (100, [50, 30, 20], [50, 30, 20]),
        (7, [5], [7]),
    ],
)
def test_split_proportionally_vectors(total: int, weights: list[int], expected: list[int]) -> None:
    assert split_proportionally(total, weights) == expected


@pytest.mark.parametrize("weights", [[], [0], [0, 0, 0]])
def test_split_needs_a_positive_weight(weights: list[int]) -> None:
    with pytest.raises(ValueError, match="empty or all zero"):
        split_proportionally(100, weights)


def test_split_rejects_negative_weights() -> None:
    with pytest.raises(ValueError, match="negative"):
        split_proportionally(100, [2, -1])


@given(amounts, st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20))
def test_split_proportionally_sums_exactly_and_stays_within_one_of_the_share(
    total: int, weights: list[int]
) -> None:
    if sum(weights) == 0:
        weights = [*weights, 1]
    parts = split_proportionally(total, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(Fraction(part) - Fraction(total * weight, weight_sum)) < 1
        if weight == 0:
            assert part == 0
    assert split_proportionally(total, weights) == parts
    assert split_proportionally(-total, weights) == [-part for part in parts]


# --- allocation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "balances", "expected"),
    [
        (150, [100, 100], ([100, 50], 0)),
        (250, [100, 100], ([100, 100], 50)),
        (0, [100, 100], ([0, 0], 0)),
        (100, [], ([], 100)),
        (100, [0, 60, 60], ([0, 60, 40], 0)),
        (100, [100, 1], ([100, 0], 0)),
    ],
)
def test_allocate_in_order_vectors(amount: int, balances: list[int], expected: tuple[list[int], int]) -> None:
    assert allocate_in_order(amount, balances) == expected


def test_allocate_rejects_a_negative_amount() -> None:
    with pytest.raises(ValueError, match="must not be negative, got -1"):
        allocate_in_order(-1, [100])


def test_allocate_rejects_negative_balances() -> None:
    with pytest.raises(ValueError, match="balances must not be negative"):
        allocate_in_order(100, [100, -5])


@given(
    st.integers(min_value=0, max_value=10**9),
    st.lists(st.integers(min_value=0, max_value=10**8), max_size=20),
)
def test_allocate_in_order_conserves_money_and_pays_oldest_first(amount: int, balances: list[int]) -> None:
    allocations, remainder = allocate_in_order(amount, balances)
    assert sum(allocations) + remainder == amount
    assert remainder >= 0
    for allocation, balance in zip(allocations, balances, strict=True):
        assert 0 <= allocation <= balance
    # Oldest first: a balance is touched only when every earlier one is paid in full.
    for index, allocation in enumerate(allocations):
        if allocation:
            assert allocations[:index] == list(balances[:index])
    if remainder:
        assert allocations == balances


# --- formatting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "expected"),
    [
        (123_450, "NOK", "nb", "1 234,50 kr"),
        (123_450, "SEK", "nb", "1 234,50 SEK"),
        (123_450, "EUR", "nb", "1 234,50 EUR"),
        (1_234, "ISK", "nb", "1 234 ISK"),
        (1_234, "JPY", "en", "JPY 1,234"),
        (123_450, "NOK", "en", "NOK 1,234.50"),
        (123_450, "SEK", "sv", "1 234,50 kr"),
        (123_450, "NOK", "sv", "1 234,50 NOK"),
        (-123_450, "NOK", "nb", "-1 234,50 kr"),
        (-123_450, "NOK", "en", "-NOK 1,234.50"),
        (0, "NOK", "nb", "0,00 kr"),
        (5, "NOK", "nb", "0,05 kr"),
        (-5, "EUR", "en", "-EUR 0.05"),
        (99, "NOK", "nb", "0,99 kr"),
        (100_000_000, "NOK", "nb", "1 000 000,00 kr"),
        (1_234_567, "BHD", "en", "BHD 1,234.567"),
        (5, "KWD", "nb", "0,005 KWD"),
        (999, "NOK", "nb", "9,99 kr"),
    ],
)
def test_format_money(minor: int, currency: str, locale: str, expected: str) -> None:
    assert format_money(minor, currency, locale=locale) == expected


def test_format_money_defaults_to_norwegian_and_uses_plain_spaces() -> None:
    text = format_money(123_456_789, "NOK")
    assert text == "1 234 567,89 kr"
    assert "\u00a0" not in text


def test_format_money_rejects_unknown_currency_and_locale() -> None:
    with pytest.raises(UnknownCurrency):
        format_money(100, "NKR")
    with pytest.raises(ValueError, match="unsupported locale 'de'"):
        format_money(100, "NOK", locale="de")


@given(amounts, st.sampled_from(["NOK", "SEK", "EUR", "ISK", "BHD"]), st.sampled_from(["nb", "sv", "en"]))
def test_format_money_round_trips(minor: int, currency: str, locale: str) -> None:
    text = format_money(minor, currency, locale=locale)
    digits = text.replace(currency, "").replace("kr", "").replace(" ", "").replace(",", "").replace(".", "")
    assert int(digits) == minor
