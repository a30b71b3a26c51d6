"""VAT categories through the ERP API: an invoice with standard-rated, exempt and export lines keeps
each line's category and reason, refuses a line that contradicts its rate, and a credit note
reverses only categories the invoice used. The money is the same as without categories."""

from __future__ import annotations

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from tests.support.ledger import TenantClient, field_violations, invoice_request, line

pytestmark = pytest.mark.integration


def categorised(
    price: int, rate: str, category: str = "", reason: str = "", text: str = "Vare"
) -> pb.InvoiceLineInput:
    given = line(unit_price_minor=price, vat_rate=rate, description=text)
    given.vat_category = category
    given.vat_exemption_reason = reason
    return given


LINES = [
    categorised(1000_00, "25", text="Konsulenttimer"),
    categorised(400_00, "0", "E", "Helsetjenester, unntatt etter mval. § 3-2", "Behandling"),
    categorised(100_00, "0", "G", "Eksport av varer", "Frakt til Island"),
    categorised(50_00, "0", text="Avis"),
]


async def test_an_invoice_keeps_each_lines_category_and_reason(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request(lines=LINES))

    assert [(ln.vat_category, ln.vat_exemption_reason) for ln in invoice.lines] == [
        ("S", ""),
        ("E", "Helsetjenester, unntatt etter mval. § 3-2"),
        ("G", "Eksport av varer"),
        ("Z", ""),
    ]
    assert (invoice.net_total.minor_units, invoice.vat_total.minor_units) == (1550_00, 250_00)
    assert [(v.vat_rate, v.taxable_amount_minor, v.vat_amount_minor) for v in invoice.vat_breakdown] == [
        ("25", 1000_00, 250_00),
        ("0", 550_00, 0),
    ]
    assert list((await tenant.get(invoice.id)).lines) == list(invoice.lines)


async def test_a_line_that_contradicts_its_rate_is_refused_with_every_field_named(
    tenant: TenantClient,
) -> None:
    request = invoice_request(
        lines=[
            categorised(100_00, "25", "E", "Unntatt"),
            categorised(100_00, "0", "S"),
            categorised(100_00, "0", "AE"),
            categorised(100_00, "0", "Z", "Nullsats"),
            categorised(100_00, "0", "VAT"),
        ]
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tenant.issue(request)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(caught.value)) == {
        "lines[0].vat_category",
        "lines[1].vat_category",
        "lines[2].vat_exemption_reason",
        "lines[3].vat_exemption_reason",
        "lines[4].vat_category",
    }


async def test_a_credit_note_reverses_only_categories_the_invoice_used(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request(lines=LINES))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tenant.credit(invoice, lines=[categorised(100_00, "0", "AE", "Omvendt avgiftsplikt")])
    credited = await tenant.credit(invoice, lines=[categorised(100_00, "0", "G", "Eksport av varer")])

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "VAT category AE" in field_violations(caught.value)["lines[0].vat_category"]
    note = credited.credit_note
    assert [(ln.vat_category, ln.vat_exemption_reason) for ln in note.lines] == [("G", "Eksport av varer")]
    assert note.gross_total.minor_units == 100_00
    assert credited.invoice.balance.minor_units == invoice.gross_total.minor_units - 100_00


async def test_validate_only_checks_categories_too(tenant: TenantClient) -> None:
    request = invoice_request(lines=[categorised(100_00, "0", "K")])
    request.validate_only = True

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tenant.stub.IssueInvoice(request, metadata=tenant.metadata)

    assert set(field_violations(caught.value)) == {"lines[0].vat_exemption_reason"}
