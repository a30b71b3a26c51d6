"""Credit notes: whole or by lines, never more than is left, and money paid becomes credit balance."""

from __future__ import annotations

from collections import defaultdict

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb

from services.ledger.app import LedgerApp
from tests.support.ledger import TenantClient, field_violations, invoice_request, line

pytestmark = pytest.mark.integration


async def test_full_credit_note_credits_the_invoice(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())

    response = await tenant.credit(invoice, reason="Cancelled order")

    assert response.created is True
    credit_note, credited = response.credit_note, response.invoice
    assert credited.status == pb.INVOICE_STATUS_CREDITED
    assert credited.balance.minor_units == 0
    assert credited.credited_total.minor_units == invoice.gross_total.minor_units
    assert list(credited.credit_note_ids) == [credit_note.id]
    assert credit_note.kind == pb.INVOICE_KIND_CREDIT_NOTE
    assert credit_note.invoice_number == "CN-1"
    assert credit_note.credits_invoice_id == invoice.id
    assert credit_note.gross_total.minor_units == invoice.gross_total.minor_units
    assert (await tenant.get(invoice.id)).status == pb.INVOICE_STATUS_CREDITED


async def test_partial_credit_by_lines_leaves_the_rest_to_pay(tenant: TenantClient) -> None:
    # 4 x 100,00 + 1 x 200,00, plus 25 % VAT = 750,00 kr.
    invoice = await tenant.issue(invoice_request(lines=[line(100_00, quantity="4"), line(200_00)]))

    response = await tenant.credit(invoice, lines=[line(100_00)])

    assert response.credit_note.gross_total.minor_units == 125_00
    assert response.invoice.status == pb.INVOICE_STATUS_PART_PAID
    assert response.invoice.balance.minor_units == 625_00
    assert response.invoice.credited_total.minor_units == 125_00


async def test_credit_beyond_what_is_left_is_refused(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request(lines=[line(100_00, quantity="4"), line(200_00)]))
    await tenant.credit(invoice, lines=[line(100_00)])

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.credit(invoice, lines=[line(100_00, quantity="6")])  # 750,00 > 625,00 left

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(refused.value)) == {"lines"}
    after = await tenant.get(invoice.id)
    assert after.balance.minor_units == 625_00
    assert len(after.credit_note_ids) == 1


async def test_crediting_a_paid_invoice_gives_the_customer_credit_balance(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())
    await tenant.pay(invoice, invoice.gross_total.minor_units)
    assert (await tenant.customer("K-1000")).credit_balance.minor_units == 0

    response = await tenant.credit(invoice)

    assert response.invoice.status == pb.INVOICE_STATUS_CREDITED
    assert response.invoice.balance.minor_units == 0
    customer = await tenant.customer("K-1000")
    assert customer.credit_balance.minor_units == 1250_00
    assert customer.credit_balance.currency == "NOK"
    statement = await tenant.stub.GetCustomerStatement(
        pb.GetCustomerStatementRequest(customer_number="K-1000"), metadata=tenant.metadata
    )
    assert statement.credit_balance.minor_units == 1250_00
    assert list(statement.open_items) == []


async def test_credit_note_retry_returns_the_original(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request(lines=[line(100_00, quantity="4")]))
    first = await tenant.credit(invoice, key="ERP-CN-1", lines=[line(100_00)])

    again = await tenant.credit(invoice, key="ERP-CN-1", lines=[line(100_00)])

    assert again.created is False
    assert again.credit_note.id == first.credit_note.id
    assert again.invoice.credited_total.minor_units == 125_00
    assert (await tenant.get(invoice.id)).balance.minor_units == 375_00
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.credit(invoice, key="ERP-CN-1", lines=[line(100_00, quantity="2")])
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (await tenant.get(invoice.id)).balance.minor_units == 375_00


async def test_an_erp_credit_note_number_already_used_is_refused_at_once(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request(lines=[line(100_00, quantity="4")]))
    numbered = pb.IssueCreditNoteRequest(
        idempotency_key="ERP-CN-7",
        invoice_id=invoice.id,
        lines=[line(100_00)],
        reason="Returned goods",
        credit_note_number="K-7",
    )
    await tenant.stub.IssueCreditNote(numbered, metadata=tenant.metadata)
    numbered.idempotency_key = "ERP-CN-8"

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tenant.stub.IssueCreditNote(numbered, metadata=tenant.metadata, timeout=10)

    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "K-7" in (refused.value.details() or "")
    # The tenant's credit notes are not blocked behind it.
    after = await tenant.credit(invoice, key="ERP-CN-9", lines=[line(100_00)])
    assert after.created
    assert after.invoice.credited_total.minor_units == 250_00


async def test_a_credit_note_reverses_only_vat_the_invoice_charged(tenant: TenantClient) -> None:
    # 4 x 100 kr at 25 % and 1 x 200 kr at 15 %.
    invoice = await tenant.issue(
        invoice_request(lines=[line(100_00, quantity="4"), line(200_00, vat_rate="15", description="Mat")])
    )
    with pytest.raises(grpc.aio.AioRpcError) as wrong_rate:
        await tenant.credit(invoice, lines=[line(100_00, vat_rate="12")])
    assert wrong_rate.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "lines[0].vat_rate" in field_violations(wrong_rate.value)

    await tenant.credit(invoice, lines=[line(150_00, vat_rate="15", description="Mat")])
    with pytest.raises(grpc.aio.AioRpcError) as too_much:
        await tenant.credit(invoice, lines=[line(100_00, vat_rate="15", description="Mat")])
    assert too_much.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "only 5000 is left to credit at that rate" in field_violations(too_much.value)["lines"]
    # 172,50 kr credited (150 + 15 % VAT); the refused ones changed nothing.
    assert (await tenant.get(invoice.id)).credited_total.minor_units == 172_50


async def journal_balances(ledger_app: LedgerApp, tenant: TenantClient, invoice_id: str) -> dict[str, int]:
    """Debits less credits per account over the invoice's journal entries, each checked to balance."""
    entries = await ledger_app.store.journal.find(
        {"tenant_id": tenant.tenant.id, "invoice_id": invoice_id}
    ).to_list()
    net: dict[str, int] = defaultdict(int)
    for entry in entries:
        assert sum(p["debit"] for p in entry["postings"]) == sum(p["credit"] for p in entry["postings"])
        for posting in entry["postings"]:
            net[posting["account"]] += posting["debit"] - posting["credit"]
    return {account: amount for account, amount in net.items() if amount}


@pytest.mark.parametrize(
    ("unit_price", "credit_notes"),
    [
        (10_02, [12_53, 12_52]),  # the second was refused: "1253 exceeds what is left to credit (1252)"
        (10_01, [12_51, 12_52]),  # the second was 12,51, leaving 1 øre to be dunned
    ],
)
async def test_crediting_line_by_line_credits_exactly_the_invoice(
    tenant: TenantClient, ledger_app: LedgerApp, unit_price: int, credit_notes: list[int]
) -> None:
    invoice = await tenant.issue(invoice_request(lines=[line(unit_price), line(unit_price)]))

    issued = [await tenant.credit(invoice, lines=[line(unit_price)]) for _ in credit_notes]

    assert [r.credit_note.gross_total.minor_units for r in issued] == credit_notes
    last = issued[-1].credit_note
    assert last.vat_total.minor_units == last.gross_total.minor_units - unit_price
    assert [v.vat_amount_minor for v in last.vat_breakdown] == [last.vat_total.minor_units]
    after = await tenant.get(invoice.id)
    assert after.status == pb.INVOICE_STATUS_CREDITED
    assert after.balance.minor_units == 0
    assert after.credited_total.minor_units == invoice.gross_total.minor_units
    # Receivable, revenue and output VAT are all back to nothing.
    assert await journal_balances(ledger_app, tenant, invoice.id) == {}


async def test_no_lines_after_a_partial_credit_credit_the_rest(
    tenant: TenantClient, ledger_app: LedgerApp
) -> None:
    # 10,01 at 25 % and 2 x 10,04 at 12 %: 3 009 + 250 + 241 = 3 500 øre.
    invoice = await tenant.issue(
        invoice_request(lines=[line(10_01), line(10_04, quantity="2", vat_rate="12", description="Reise")])
    )
    assert invoice.gross_total.minor_units == 35_00
    await tenant.credit(invoice, lines=[line(10_04, vat_rate="12", description="Reise")])

    rest = await tenant.credit(invoice)

    assert [(ln.description, ln.vat_rate, ln.net_amount_minor) for ln in rest.credit_note.lines] == [
        (f"Remaining amount of invoice {invoice.invoice_number} at 25 % VAT", "25", 10_01),
        (f"Remaining amount of invoice {invoice.invoice_number} at 12 % VAT", "12", 10_04),
    ]
    assert rest.invoice.status == pb.INVOICE_STATUS_CREDITED
    assert rest.invoice.balance.minor_units == 0
    assert rest.invoice.credited_total.minor_units == 35_00
    assert await journal_balances(ledger_app, tenant, invoice.id) == {}
