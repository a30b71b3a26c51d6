"""Payer accounts the matcher learned are kept as the ERP's accounts are: a Norwegian account number as
its 11 digits, an IBAN in upper case without spaces; another bank's account number as its digits."""

from __future__ import annotations

import pytest

from services.common.errors import Violations
from services.ledger.domain.customer import CustomerData, learned_account, validate_customer


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("8601.11.17947", "86011117947"),
        ("8601 11 17947", "86011117947"),
        ("NO93 8601 1117 947", "NO9386011117947"),
        ("no9386011117947", "NO9386011117947"),
        ("SE45 5000 0000 0583 9825 7466", "SE4550000000058398257466"),
        ("5050-1055", "50501055"),  # a Swedish bankgiro number
    ],
)
def test_an_account_is_kept_in_one_form(given: str, kept: str) -> None:
    assert learned_account(given) == kept


@pytest.mark.parametrize("given", ["", "abc", "12", "NO93 8601 1117 94X", "1" * 65])
def test_what_is_no_account_number_is_refused(given: str) -> None:
    assert learned_account(given) is None


def test_the_erp_s_accounts_are_kept_in_the_same_form() -> None:
    v = Violations()
    customer = validate_customer(
        CustomerData(
            number="K-1",
            name="Fjordbris Kaffe AS",
            kind="consumer",
            bank_accounts=("8601.11.17947", "NO93 8601 1117 947"),
        ),
        v,
    )
    assert customer.bank_accounts == (learned_account("8601.11.17947"), learned_account("NO93 8601 1117 947"))
