"""The open-item index: lookups, the keying-error neighbourhood of a KID, and changes as invoices are paid."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matcher.domain.open_items import (
    OpenItems,
    keying_error,
    normalise_account,
    normalise_name,
)
from tests.unit.matcher.matching_fixtures import item, kid, paid

DENSE = OpenItems([item(n, customer=f"c{n % 50}") for n in range(1, 3000)])


def found(index: OpenItems, typed: str) -> dict[str, str]:
    return {c.item.invoice_id: c.error for c in index.kid_candidates(typed)}


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("0000123476", "wrong_digit"),  # kid(1234) == "0000123406": the variant digit typed as 7
        ("0000213406", "adjacent_swap"),
        ("000123406", "missing_digit"),
        ("00001234066", "extra_digit"),
        ("00001233406", "extra_digit"),
    ],
)
def test_each_keying_error_finds_the_invoice(typed: str, error: str) -> None:
    assert kid(1234) == "0000123406"
    assert found(DENSE, typed)["inv-1234"] == error


@pytest.mark.parametrize(
    "typed",
    [
        "0000128476",  # two digits wrong
        "0000143206",  # 2 and 4 swapped, not adjacent
        "000012345",  # two digits missing... and one wrong
        "000001234066",  # two digits extra
    ],
)
def test_errors_that_are_not_one_keying_error_do_not_find_it(typed: str) -> None:
    assert "inv-1234" not in found(DENSE, typed)


def test_every_candidate_is_one_keying_error_away_and_none_is_missed() -> None:
    for typed in ("0000123476", "0000213406", "000123406", "00001234066", "1234", "00000000000"):
        scan = {i.invoice_id for i in DENSE if keying_error(typed, i.kid) is not None}
        assert set(found(DENSE, typed)) == scan


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=2999),
    st.integers(min_value=0, max_value=9),
    st.sampled_from(["wrong", "swap", "missing", "extra"]),
    st.sampled_from("0123456789"),
)
def test_the_index_finds_exactly_what_a_scan_finds(n: int, position: int, kind: str, digit: str) -> None:
    original = kid(n)
    if kind == "wrong":
        typed = original[:position] + digit + original[position + 1 :]
    elif kind == "swap":
        position = min(position, len(original) - 2)
        typed = original[:position] + original[position + 1] + original[position] + original[position + 2 :]
    elif kind == "missing":
        typed = original[:position] + original[position + 1 :]
    else:
        typed = original[:position] + digit + original[position:]
    scan = {i.invoice_id for i in DENSE if keying_error(typed, i.kid) is not None}
    assert set(found(DENSE, typed)) == scan
    if typed != original:
        assert f"inv-{n}" in scan


def test_keying_error_classes() -> None:
    assert keying_error("12345", "12345") is None
    assert keying_error("12945", "12345") == ("wrong_digit", 2)
    assert keying_error("13245", "12345") == ("adjacent_swap", 1)
    assert keying_error("1245", "12345") == ("missing_digit", 2)
    assert keying_error("123945", "12345") == ("extra_digit", 3)
    assert keying_error("14325", "12345") is None  # non-adjacent swap
    assert keying_error("12399", "12345") is None  # two wrong
    assert keying_error("123", "12345") is None


def test_lookups() -> None:
    items = OpenItems(
        [item(1, customer="c1"), item(2, customer="c1"), paid(3, customer="c1"), item(4, customer="c2")],
        payer_accounts={"c1": ["NO93 8601 1117 947"], "c2": ["1234.56.78903"]},
        payer_names={"c1": ["Ola Hansen AS"]},
    )
    assert items.by_kid(kid(2)) == item(2)
    assert items.by_invoice_number(" 4 ") == item(4, customer="c2")
    assert [i.invoice_id for i in items.open_items_of("c1")] == ["inv-1", "inv-2"]
    assert items.customers_by_account("86011117947") == {"c1"}
    assert items.customers_by_account("12345678903") == {"c2"}
    assert items.customers_by_name("HANSEN OLA") == {"c1"}
    assert items.open_with_amount("NOK", 100_000) == [item(1), item(2), item(4, customer="c2")]
    assert len(items) == 4
    assert "inv-3" in items


def test_changes_keep_every_index_right() -> None:
    items = OpenItems([item(1), item(2)])
    items.add(item(5))
    assert found(items, "000000505")["inv-5"] == "missing_digit"
    assert items.update(paid(1)) is True
    assert items.open_items_of("c1") == [item(2), item(5)]
    assert items.update(dataclasses.replace(item(1), version=1)) is False
    items.update(item(2, kid_="9999999999", open_minor=50_000))
    assert items.by_kid(kid(2)) is None
    assert items.by_kid("9999999999") is not None
    assert "inv-2" in found(items, "999999999")
    assert "inv-2" not in found(items, kid(2)[:-1])
    assert items.open_with_amount("NOK", 50_000)[0].invoice_id == "inv-2"
    items.remove("inv-5")
    assert items.by_kid(kid(5)) is None
    assert found(items, "000000505") == {}
    with pytest.raises(ValueError, match="already"):
        items.add(item(2))


def test_many_changes_repack_without_losing_anything() -> None:
    items = OpenItems([item(n) for n in range(1, 100)])
    for n in range(100, 6000):
        items.put(item(n, customer=f"c{n % 7}"))
    for n in range(1, 4000):
        items.remove(f"inv-{n}")
    assert len(items) == 2000
    assert set(found(items, kid(5000)[:-1])) >= {"inv-5000"}
    assert "inv-10" not in found(items, kid(10)[:-1])
    assert items.by_kid(kid(5999)) == item(5999, customer="c0")


def test_normalisation() -> None:
    assert normalise_account("NO93 8601 1117 947") == "86011117947"
    assert normalise_account("8601.11.17947") == "86011117947"
    assert normalise_account("se45 5000 0000 0583 9825 7466") == "SE4550000000058398257466"
    assert normalise_name("Hansen & Sønn AS") == normalise_name("HANSEN OG SØNN")
    assert normalise_name("Ola  Nordmann") == normalise_name("nordmann, ola")
