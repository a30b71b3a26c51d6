"""`fordring invoices import` reports every problem of a line in one run: the file's own (shape,
types) and the ledger's (business rules), and issues nothing for that line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from services.cli.client import RetryPolicy
from services.cli.importer import send_invoices
from services.cli.invoice_format import parse_line
from tests.support.ledger import ORG_NUMBER, TenantClient

pytestmark = pytest.mark.integration

FAST = RetryPolicy(give_up_after=5.0, first_delay=0.01, max_delay=0.1, call_timeout=5.0)


def record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "external_id": "ERP-1",
        "customer": {
            "number": "K-1",
            "name": "Fjordbris Kaffe AS",
            "kind": "business",
            "org_number": ORG_NUMBER,
            "address": {"lines": ["Storgata 1"], "postal_code": "0155", "city": "Oslo", "country": "NO"},
            "language": "nb",
        },
        "issue_date": "2026-11-23",
        "due_date": "2026-12-07",
        "currency": "NOK",
        "lines": [{"description": "Kaffe", "quantity": "1", "unit_price_minor": 10000, "vat_rate": "25"}],
    }
    base.update(changes)
    return base


async def test_one_run_names_every_problem_of_a_line(tenant: TenantClient) -> None:
    bad = record(
        customer={**record()["customer"], "name": "", "org_number": "123456789", "color": "red"},
        due_date="2026-W50-1",
        lines=[{"description": "Kaffe\u202e", "quantity": "1", "unit_price_minor": 10000, "vat_rate": "24"}],
    )
    good = record(external_id="ERP-2")
    parsed = [parse_line(json.dumps(bad), 1), parse_line(json.dumps(good), 2)]

    report = await send_invoices(tenant.stub, parsed, tenant.metadata, concurrency=2, retries=FAST)

    assert report.created == 1
    assert [f.line_no for f in report.failures] == [1]
    fields = {v.field for v in report.failures[0].violations}
    # From the file's own checks ...
    assert {"customer.name", "customer.color", "due_date"} <= fields
    # ... and, in the same run, from the ledger's.
    assert {"customer.org_number", "lines[0].vat_rate", "lines[0].description"} <= fields
    listed = await tenant.stub.ListInvoices(pb.ListInvoicesRequest(), metadata=tenant.metadata)
    assert [i.external_id for i in listed.invoices] == ["ERP-2"]
