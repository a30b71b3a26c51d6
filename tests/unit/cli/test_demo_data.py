"""The demo batch: valid Norwegian data, positive amounts, deterministic, complete for the import format."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import phonenumbers
import pytest
from stdnum.no import kontonr, orgnr

from services.cli.demo_data import customer, generate_invoices
from services.cli.invoice_format import parse_record

TODAY = date(2026, 11, 23)


@pytest.fixture(scope="module")
def batch() -> list[dict[str, Any]]:
    return generate_invoices(300, seed=7, today=TODAY)


def test_count_and_unique_external_ids(batch: list[dict[str, Any]]) -> None:
    assert len(batch) == 300
    assert len({invoice["external_id"] for invoice in batch}) == 300


def test_deterministic_for_a_seed_and_day() -> None:
    assert generate_invoices(120, seed=3, today=TODAY) == generate_invoices(120, seed=3, today=TODAY)
    assert generate_invoices(120, seed=3, today=TODAY) != generate_invoices(120, seed=4, today=TODAY)


def test_every_invoice_is_a_valid_import_record(batch: list[dict[str, Any]]) -> None:
    for number, invoice in enumerate(batch, start=1):
        parsed = parse_record(invoice, number)
        assert parsed.violations == ()
        assert parsed.request is not None


def test_businesses_have_valid_organisation_numbers(batch: list[dict[str, Any]]) -> None:
    businesses = [inv["customer"] for inv in batch if inv["customer"]["kind"] == "business"]
    assert businesses
    for company in businesses:
        assert orgnr.is_valid(company["org_number"]), company


def test_consumers_and_businesses_both_appear(batch: list[dict[str, Any]]) -> None:
    kinds = {invoice["customer"]["kind"] for invoice in batch}
    assert kinds == {"consumer", "business"}


def test_bank_accounts_are_valid_norwegian_accounts(batch: list[dict[str, Any]]) -> None:
    accounts = [invoice["customer"].get("bank_account") for invoice in batch]
    assert any(accounts)
    assert all(kontonr.is_valid(account) for account in accounts if account)


def test_contact_details_look_norwegian(batch: list[dict[str, Any]]) -> None:
    for invoice in batch:
        buyer = invoice["customer"]
        assert isinstance(buyer, dict)
        assert re.fullmatch(r"\+47[49]\d{7}", buyer["phone"])
        assert phonenumbers.is_valid_number(phonenumbers.parse(buyer["phone"])), buyer["phone"]
        assert re.fullmatch(r"[a-z0-9.\-]+@[a-z0-9.\-]+\.[a-z]+", buyer["email"])
        assert re.fullmatch(r"\d{4}", buyer["address"]["postal_code"])
        assert buyer["address"]["country"] == "NO"
        assert buyer["language"] == "nb"


def test_amounts_positive_and_vat_rates_norwegian(batch: list[dict[str, Any]]) -> None:
    for invoice in batch:
        assert invoice["currency"] == "NOK"
        lines = invoice["lines"]
        assert isinstance(lines, list)
        assert lines
        for line in lines:
            assert isinstance(line["unit_price_minor"], int)
            assert line["unit_price_minor"] > 0
            assert Decimal(line["quantity"]) > 0
            assert line["vat_rate"] in {"25", "15", "12", "0"}


def test_due_dates_on_both_sides_of_today(batch: list[dict[str, Any]]) -> None:
    due = [date.fromisoformat(str(invoice["due_date"])) for invoice in batch]
    issued = [date.fromisoformat(str(invoice["issue_date"])) for invoice in batch]
    assert any(day < TODAY for day in due)
    assert any(day > TODAY for day in due)
    assert all(day <= TODAY for day in issued)
    assert all(i < d for i, d in zip(issued, due, strict=True))


def test_a_customer_number_is_always_the_same_customer() -> None:
    assert customer(12345) == customer(12345)
    first = {inv["customer"]["number"]: inv["customer"] for inv in generate_invoices(200, 1, TODAY)}
    second = {inv["customer"]["number"]: inv["customer"] for inv in generate_invoices(200, 2, TODAY)}
    for number in first.keys() & second.keys():
        assert first[number] == second[number]
