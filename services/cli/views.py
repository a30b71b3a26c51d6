"""How the CLI shows ledger data: rich tables for people, JSON (proto field names) for programs."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import click
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

STATUS_PREFIX = "INVOICE_STATUS_"
STATUS_NAMES = tuple(
    name.removeprefix(STATUS_PREFIX).lower()
    for name in ledger_pb2.InvoiceStatus.DESCRIPTOR.values_by_name
    if name != "INVOICE_STATUS_UNSPECIFIED"
)
_STATUS_STYLE = {
    "open": "cyan",
    "part_paid": "yellow",
    "paid": "green",
    "overpaid": "green",
    "credited": "dim",
    "overdue": "red",
    "reminded": "red",
    "collection_notice": "bold red",
    "in_collection": "bold red",
    "written_off": "dim",
}


# The ledger's Invoice.dunning_stage (and the dunning service's Case.stage).
DUNNING_STAGES = {0: "none", 1: "reminded", 2: "collection notice", 3: "in collection"}


def status_value(name: str) -> ledger_pb2.InvoiceStatus.ValueType:
    return ledger_pb2.InvoiceStatus.Value(STATUS_PREFIX + name.upper())


def status_name(value: int) -> str:
    return ledger_pb2.InvoiceStatus.Name(value).removeprefix(STATUS_PREFIX).lower()  # type: ignore[arg-type]


def styled_status(value: int) -> str:
    name = status_name(value)
    return f"[{_STATUS_STYLE.get(name, 'default')}]{name}[/]"


def money(minor: int, currency: str = "") -> str:
    """Norwegian style: 12 345,50 (a space between thousands, a comma before the øre)."""
    sign = "-" if minor < 0 else ""
    major, cents = divmod(abs(minor), 100)
    text = f"{sign}{major:,}".replace(",", "\u00a0") + f",{cents:02d}"
    return f"{text} {currency}" if currency else text


def amount(value: common_pb2.Money) -> str:
    return money(value.minor_units, value.currency)


def to_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def write_json(data: object) -> None:
    """Plain JSON on stdout, never wrapped or coloured, for programs to read."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def invoices_table(invoices: Iterable[ledger_pb2.Invoice], title: str = "") -> Table:
    table = Table(title=title or None, title_justify="left")
    table.add_column("Number", no_wrap=True)
    table.add_column("Customer", no_wrap=True, overflow="ellipsis", ratio=1)
    table.add_column("Issued", no_wrap=True)
    table.add_column("Due", no_wrap=True)
    table.add_column("Gross", justify="right", no_wrap=True)
    table.add_column("Balance", justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    for invoice in invoices:
        table.add_row(
            invoice.invoice_number,
            f"{invoice.customer_number} {invoice.customer_name}",
            invoice.issue_date,
            invoice.due_date,
            amount(invoice.gross_total),
            amount(invoice.balance),
            styled_status(invoice.status),
        )
    return table


def status_summary_table(invoices: Iterable[ledger_pb2.Invoice]) -> Table:
    """Count, gross amount and open balance per status and currency, with totals."""
    counts: dict[tuple[int, str], int] = defaultdict(int)
    gross: dict[tuple[int, str], int] = defaultdict(int)
    balance: dict[tuple[int, str], int] = defaultdict(int)
    for invoice in invoices:
        key = (int(invoice.status), invoice.currency)
        counts[key] += 1
        gross[key] += invoice.gross_total.minor_units
        balance[key] += invoice.balance.minor_units
    table = Table(title="What the ledger holds", title_justify="left", show_footer=True)
    table.add_column("Status", footer="total")
    table.add_column("Invoices", justify="right", footer=str(sum(counts.values())))
    table.add_column("Gross", justify="right", footer=_per_currency(gross))
    table.add_column("Open balance", justify="right", footer=_per_currency(balance))
    for status, currency in sorted(counts):
        key = (status, currency)
        table.add_row(
            styled_status(status),
            str(counts[key]),
            money(gross[key], currency),
            money(balance[key], currency),
        )
    return table


def _per_currency(amounts: dict[tuple[int, str], int]) -> str:
    totals: dict[str, int] = defaultdict(int)
    for (_, currency), minor in amounts.items():
        totals[currency] += minor
    return "\n".join(money(minor, currency) for currency, minor in sorted(totals.items())) or "0,00"


def print_invoice(
    console: Console, invoice: ledger_pb2.Invoice, history: Iterable[ledger_pb2.HistoryEntry]
) -> None:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Invoice", f"{invoice.invoice_number}  ({styled_status(invoice.status)})")
    head.add_row("Customer", f"{invoice.customer_number} {invoice.customer_name}")
    head.add_row("Issued / due", f"{invoice.issue_date} / {invoice.due_date}")
    head.add_row("KID", invoice.kid)
    head.add_row("External id", invoice.external_id)
    for label, value in (
        ("Buyer reference", invoice.buyer_reference),
        ("Order reference", invoice.order_reference),
        ("Contract reference", invoice.contract_reference),
    ):
        if value:
            head.add_row(label, value)
    head.add_row("Gross", amount(invoice.gross_total))
    head.add_row("Paid", amount(invoice.paid_total))
    if invoice.credited_total.minor_units:
        head.add_row("Credited", amount(invoice.credited_total))
    if invoice.written_off_total.minor_units:
        head.add_row("Written off", amount(invoice.written_off_total))
    head.add_row("Balance", f"[bold]{amount(invoice.balance)}[/bold]")
    if invoice.dunning_stage:
        stage = DUNNING_STAGES.get(invoice.dunning_stage, "?")
        head.add_row("Dunning stage", f"{invoice.dunning_stage} ({stage})")
    console.print(head)

    lines = Table(title="Lines", title_justify="left")
    lines.add_column("#", justify="right")
    lines.add_column("Description")
    for column in ("Qty", "Unit price", "VAT %", "Net"):
        lines.add_column(column, justify="right")
    for line in invoice.lines:
        lines.add_row(
            str(line.number),
            line.description,
            f"{line.quantity} {line.unit_code}".strip(),
            money(line.unit_price_minor),
            line.vat_rate,
            money(line.net_amount_minor),
        )
    vat = Table(title="VAT", title_justify="left")
    for column in ("Rate %", "Taxable", "VAT"):
        vat.add_column(column, justify="right")
    for row in invoice.vat_breakdown:
        vat.add_row(row.vat_rate, money(row.taxable_amount_minor), money(row.vat_amount_minor))
    console.print(lines)
    console.print(vat)
    if invoice.charges:
        charges = Table(title="Charges", title_justify="left")
        for column in ("Added", "Kind", "Description", "Amount"):
            charges.add_column(column)
        for charge in invoice.charges:
            charges.add_row(charge.added_at, charge.kind, charge.description, money(charge.amount_minor))
        console.print(charges)

    events = Table(title="History", title_justify="left")
    for column in ("At", "Event", "Status", "By", "Summary"):
        events.add_column(column)
    for entry in history:
        events.add_row(
            entry.at,
            entry.type,
            f"{status_name(entry.status_before)} → {status_name(entry.status_after)}"
            if entry.status_before not in (entry.status_after, ledger_pb2.INVOICE_STATUS_UNSPECIFIED)
            else status_name(entry.status_after),
            entry.actor,
            entry.summary,
        )
    console.print(events)


def print_customer(
    console: Console, customer: ledger_pb2.Customer, statement: ledger_pb2.GetCustomerStatementResponse
) -> None:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Customer", f"{customer.number} {customer.name}")
    head.add_row("Kind", ledger_pb2.CustomerKind.Name(customer.kind).removeprefix("CUSTOMER_KIND_").lower())
    if customer.org_number:
        head.add_row("Org. number", customer.org_number)
    if customer.national_id_masked:
        head.add_row("National id", customer.national_id_masked)
    address = customer.address
    head.add_row(
        "Address", ", ".join([*address.lines, f"{address.postal_code} {address.city}", address.country])
    )
    for label, value in (
        ("E-mail", customer.email),
        ("Phone", customer.phone),
        ("Language", customer.language),
    ):
        if value:
            head.add_row(label, value)
    if customer.bank_accounts:
        head.add_row("Bank accounts", ", ".join(customer.bank_accounts))
    head.add_row("Credit balance", amount(customer.credit_balance))
    head.add_row("Open", f"[bold]{amount(statement.total_open)}[/bold] as of {statement.as_of}")
    console.print(head)
    if statement.aging:
        aging = Table(title="Aging", title_justify="left")
        for column in ("Bucket", "Invoices", "Amount"):
            aging.add_column(column, justify="right" if column != "Bucket" else "left")
        for bucket in statement.aging:
            aging.add_row(bucket.label, str(bucket.count), amount(bucket.amount))
        console.print(aging)
    if statement.open_items:
        console.print(invoices_table(statement.open_items, title="Open items"))
