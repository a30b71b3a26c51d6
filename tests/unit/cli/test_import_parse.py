"""The import format: one JSON line → IssueInvoiceRequest, or the line's problems with their field paths."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fordring.ledger.v1 import ledger_pb2

from services.cli.invoice_format import parse_jsonl, parse_line, parse_record, to_request
from services.cli.violations import FieldViolation

RECORD: dict[str, Any] = {
    "external_id": "ERP-2026-0001",
    "invoice_number": "100234",
    "kid": "0001002345",
    "customer": {
        "number": "10001",
        "name": "Fjord Bygg AS",
        "kind": "business",
        "org_number": "974760673",
        "email": "faktura@fjordbygg.no",
        "phone": "+4791234567",
        "address": {
            "lines": ["Storgata 1", "Bakgården"], "postal_code": "0150", "city": "OSLO", "country": "NO"
        },
        "language": "nb",
        "bank_account": "15030100001",
    },
    "issue_date": "2026-11-01",
    "due_date": "2026-12-01",
    "currency": "NOK",
    "buyer_reference": "Kari Nordmann",
    "order_reference": "ORD-1",
    "contract_reference": "AVT-7",
    "lines": [
        {"description": "Konsulenttimer", "quantity": "7.5", "unit_price_minor": 125000, "vat_rate": "25",
         "unit_code": "HUR"},
        {"description": "Matvarer", "quantity": "1", "unit_price_minor": 9990, "vat_rate": "15"},
    ],
}  # fmt: skip


def record(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(RECORD)
    data.update(changes)
    return data


def fields(violations: tuple[FieldViolation, ...]) -> set[str]:
    return {violation.field for violation in violations}


def test_maps_every_field() -> None:
    request = to_request(RECORD)
    assert request.idempotency_key == "ERP-2026-0001"
    assert request.WhichOneof("customer_ref") == "customer"
    assert request.invoice_number == "100234"
    assert request.kid == "0001002345"
    assert (request.issue_date, request.due_date, request.currency) == ("2026-11-01", "2026-12-01", "NOK")
    assert (request.buyer_reference, request.order_reference, request.contract_reference) == (
        "Kari Nordmann",
        "ORD-1",
        "AVT-7",
    )
    customer = request.customer
    assert customer.number == "10001"
    assert customer.name == "Fjord Bygg AS"
    assert customer.kind == ledger_pb2.CUSTOMER_KIND_BUSINESS
    assert customer.org_number == "974760673"
    assert customer.email == "faktura@fjordbygg.no"
    assert customer.phone == "+4791234567"
    assert list(customer.address.lines) == ["Storgata 1", "Bakgården"]
    assert (customer.address.postal_code, customer.address.city, customer.address.country) == (
        "0150",
        "OSLO",
        "NO",
    )
    assert customer.language == "nb"
    assert list(customer.bank_accounts) == ["15030100001"]
    assert [(line.description, line.quantity, line.unit_price_minor, line.vat_rate, line.unit_code)
            for line in request.lines] == [
        ("Konsulenttimer", "7.5", 125000, "25", "HUR"),
        ("Matvarer", "1", 9990, "15", ""),
    ]  # fmt: skip


def test_optional_fields_may_be_left_out_or_null() -> None:
    data = record(invoice_number=None, buyer_reference=None)
    for name in ("kid", "order_reference", "contract_reference"):
        del data[name]
    for name in ("org_number", "email", "phone", "bank_account"):
        del data["customer"][name]
    data["customer"]["kind"] = "consumer"
    data["customer"]["national_id"] = None
    request = to_request(data)
    assert request.invoice_number == ""
    assert request.kid == ""
    assert request.customer.kind == ledger_pb2.CUSTOMER_KIND_CONSUMER
    assert list(request.customer.bank_accounts) == []
    assert not request.HasField("reminder_fee_agreed")


@pytest.mark.parametrize("agreed", [True, False])
def test_a_swedish_reminder_fee_agreement_is_carried_as_said(agreed: bool) -> None:
    request = to_request(record(reminder_fee_agreed=agreed))
    assert request.HasField("reminder_fee_agreed")
    assert request.reminder_fee_agreed is agreed


def test_json_numbers_are_accepted_for_decimals() -> None:
    data = record()
    data["lines"][0]["quantity"] = 2
    data["lines"][0]["vat_rate"] = 25
    data["lines"][1]["quantity"] = 1.5
    request = to_request(data)
    assert [line.quantity for line in request.lines] == ["2", "1.5"]
    assert request.lines[0].vat_rate == "25"


def test_a_good_line_parses_with_its_line_number() -> None:
    parsed = parse_line(json.dumps(RECORD), 12)
    assert parsed.line_no == 12
    assert parsed.external_id == "ERP-2026-0001"
    assert parsed.violations == ()
    assert parsed.request == to_request(RECORD)


def test_invalid_json_is_reported_not_raised() -> None:
    parsed = parse_line('{"external_id": "x", ', 3)
    assert parsed.line_no == 3
    assert parsed.request is None
    assert len(parsed.violations) == 1
    assert parsed.violations[0].description.startswith("not valid JSON")


def test_a_line_that_is_not_an_object() -> None:
    parsed = parse_line("[1, 2]", 1)
    assert parsed.request is None
    assert parsed.violations == (FieldViolation("", "must be a JSON object"),)


def test_missing_fields_are_all_named() -> None:
    data = record()
    for name in ("external_id", "issue_date", "currency"):
        del data[name]
    del data["customer"]["name"]
    del data["customer"]["address"]["city"]
    del data["lines"][1]["unit_price_minor"]
    parsed = parse_record(data, 5)
    assert parsed.request is None
    assert fields(parsed.violations) == {
        "external_id",
        "issue_date",
        "currency",
        "customer.name",
        "customer.address.city",
        "lines[1].unit_price_minor",
    }
    assert all(violation.description == "is required" for violation in parsed.violations)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"issue_date": "01.11.2026"}, "issue_date"),
        ({"due_date": "2026-02-30"}, "due_date"),
        ({"currency": "kr"}, "currency"),
        ({"lines": []}, "lines"),
        ({"lines": "none"}, "lines"),
        ({"customer": "10001"}, "customer"),
        ({"external_id": 17}, "external_id"),
        ({"external_id": "  "}, "external_id"),
        ({"due_dte": "2026-12-01"}, "due_dte"),
        ({"reminder_fee_agreed": "yes"}, "reminder_fee_agreed"),
    ],
)
def test_bad_invoice_fields(change: dict[str, Any], field: str) -> None:
    parsed = parse_record(record(**change), 1)
    assert parsed.request is None
    assert field in fields(parsed.violations)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("customer", "kind"), "robot", "customer.kind"),
        (("customer", "address", "lines"), [], "customer.address.lines"),
        (("customer", "address", "lines"), "Storgata 1", "customer.address.lines"),
        (("lines", 0, "quantity"), "seven", "lines[0].quantity"),
        (("lines", 0, "quantity"), "NaN", "lines[0].quantity"),
        (("lines", 0, "quantity"), True, "lines[0].quantity"),
        (("lines", 1, "unit_price_minor"), 99.9, "lines[1].unit_price_minor"),
        (("lines", 1, "unit_price_minor"), "9990", "lines[1].unit_price_minor"),
        (("lines", 1, "vat_rate"), "25%", "lines[1].vat_rate"),
        (("lines", 1, "colour"), "blue", "lines[1].colour"),
        (("customer", "shoe_size"), 44, "customer.shoe_size"),
    ],
)
def test_bad_nested_fields(path: tuple[str | int, ...], value: object, field: str) -> None:
    data = record()
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    parsed = parse_record(data, 1)
    assert parsed.request is None
    assert field in fields(parsed.violations), parsed.violations


def test_every_problem_of_a_line_is_reported_at_once() -> None:
    data = record(currency="nok", due_date="soon")
    data["lines"][0]["quantity"] = "x"
    data["customer"]["kind"] = "robot"
    parsed = parse_record(data, 1)
    assert fields(parsed.violations) == {"currency", "due_date", "lines[0].quantity", "customer.kind"}


def test_a_file_keeps_editor_line_numbers_and_skips_blank_lines() -> None:
    bad = record()
    del bad["currency"]
    text = "\n".join(
        [json.dumps(RECORD), "", "not json", "   ", json.dumps(bad), json.dumps(record(external_id="B"))]
    )
    parsed = parse_jsonl(text.splitlines())
    assert [line.line_no for line in parsed] == [1, 3, 5, 6]
    assert [line.request is not None for line in parsed] == [True, False, False, True]
    assert parsed[2].external_id == "ERP-2026-0001"
    assert fields(parsed[2].violations) == {"currency"}
    assert parsed[3].request is not None
    assert parsed[3].request.idempotency_key == "B"


def test_payment_terms_stand_in_for_a_due_date_and_neither_leaves_it_to_the_creditor() -> None:
    with_terms = record(payment_terms_days=14, language="en")
    del with_terms["due_date"]
    request = to_request(with_terms)
    assert (request.due_date, request.payment_terms_days, request.language) == ("", 14, "en")

    neither = record()
    del neither["due_date"]
    del neither["customer"]["language"]
    request = to_request(neither)
    assert (request.due_date, request.payment_terms_days, request.customer.language) == ("", 0, "")


def test_payment_terms_are_a_whole_number_of_days() -> None:
    parsed = parse_record(record(payment_terms_days="14"), 1)
    assert [(v.field, v.description) for v in parsed.violations] == [
        ("payment_terms_days", "must be a whole number of days, got '14'")
    ]


def test_the_customer_carries_channel_choices_and_consents() -> None:
    customer = {
        **RECORD["customer"],
        "channels": ["efaktura", "email"],
        "consents": {"email": True, "sms": False, "efaktura": True},
    }
    request = to_request(record(customer=customer))
    assert list(request.customer.channel_preferences) == [
        ledger_pb2.CHANNEL_EFAKTURA,
        ledger_pb2.CHANNEL_EMAIL,
    ]
    consents = request.customer.consents
    assert (consents.email, consents.sms, consents.efaktura, consents.avtalegiro) == (
        True,
        False,
        True,
        False,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channels": ["fax"]}, "customer.channels"),
        ({"channels": "email"}, "customer.channels"),
        ({"channels": ["sms", "sms"]}, "customer.channels"),
        ({"consents": ["email"]}, "customer.consents"),
        ({"consents": {"email": "yes"}}, "customer.consents.email"),
        ({"consents": {"telepathy": True}}, "customer.consents.telepathy"),
    ],
)
def test_bad_channel_choices_and_consents_are_named(changes: dict[str, Any], field: str) -> None:
    parsed = parse_record(record(customer={**RECORD["customer"], **changes}), 1)
    assert parsed.request is None
    assert field in fields(parsed.violations)
