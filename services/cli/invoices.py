"""`fordring invoices`: import a JSONL file, list, show."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import IO

import click
from fordring.dunning.v1 import dunning_pb2
from fordring.ledger.v1 import ledger_pb2
from fordring.renderer.v1 import renderer_pb2

from services.cli.client import QUICK, Connection, ledger_stub
from services.cli.context import CliContext
from services.cli.documents import FORMS, KINDS, documents_or_reason, fetch_document, print_documents
from services.cli.dunning import case_or_none
from services.cli.dunning_views import case_json, print_case
from services.cli.importer import print_report, run_import
from services.cli.invoice_format import parse_jsonl
from services.cli.ledger_reads import list_invoices, read_both
from services.cli.traces import trace
from services.cli.views import STATUS_NAMES, invoices_table, print_invoice, status_value, to_dict, write_json


@click.group()
def invoices() -> None:
    """Import, list and show invoices, write their documents, and trace them."""


invoices.add_command(trace)


@invoices.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="Calls in flight at once.",
)
@click.pass_obj
def import_invoices(ctx: CliContext, file: IO[str], concurrency: int) -> None:
    """Issue the invoices of FILE (JSON lines, customer embedded; - for stdin). Safe to run again."""
    parsed = parse_jsonl(file.read().splitlines())
    if not parsed:
        ctx.console.print(f"{file.name}: no invoices in it.")
        return
    report = ctx.run(run_import(ctx.connection(), parsed, ctx.console, concurrency=concurrency))
    print_report(report, ctx.console, file.name)
    ctx.exit(0 if report.ok else 1)


@invoices.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUS_NAMES),
    help="Only these statuses (repeat for several).",
)
@click.option(
    "--customer", "customer_number", default="", help="Only this customer's invoices (customer number)."
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of invoices.")
@click.pass_obj
def list_command(ctx: CliContext, statuses: tuple[str, ...], customer_number: str, as_json: bool) -> None:
    """List invoices (every page)."""
    connection = ctx.connection()

    async def fetch() -> list[ledger_pb2.Invoice]:
        async with ledger_stub(connection) as stub:
            return await list_invoices(
                stub,
                connection.metadata,
                statuses=[status_value(name) for name in statuses],
                customer_number=customer_number,
            )

    found = ctx.run(fetch())
    if as_json:
        write_json([to_dict(invoice) for invoice in found])
    else:
        ctx.console.print(invoices_table(found, title=f"{len(found)} invoices"))


@invoices.command("show")
@click.argument("number")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='{"invoice": …, "history": […], "documents": […], "dunning": {…}} as JSON ("dunning": the '
    "dunning service's case, with the interest to date and the steps taken; absent without one).",
)
@click.pass_obj
def show(ctx: CliContext, number: str, as_json: bool) -> None:
    """Show invoice NUMBER with its lines, charges, history, documents and dunning."""
    connection = ctx.connection()

    md, timeout = connection.metadata, QUICK.call_timeout
    invoice, history = ctx.run(
        read_both(
            connection,
            lambda stub: stub.GetInvoice(
                ledger_pb2.GetInvoiceRequest(invoice_number=number), metadata=md, timeout=timeout
            ),
            lambda stub: stub.GetInvoiceHistory(
                ledger_pb2.GetInvoiceHistoryRequest(invoice_number=number), metadata=md, timeout=timeout
            ),
        )
    )
    (documents, reason), case = ctx.run(_documents_and_case(connection, number, invoice.invoice.id))
    if as_json:
        shown = {
            "invoice": to_dict(invoice.invoice),
            "history": [to_dict(entry) for entry in history.entries],
            "documents": [to_dict(doc) for doc in documents],
        }
        if case is not None:
            shown["dunning"] = case_json(case)
        write_json(shown)
    else:
        print_invoice(ctx.console, invoice.invoice, history.entries)
        if case is not None:
            ctx.console.print("[bold]Dunning[/bold]")
            print_case(ctx.console, case, invoice=False)
        print_documents(ctx.console, documents, reason)


async def _documents_and_case(
    connection: Connection, number: str, invoice_id: str
) -> tuple[tuple[list[renderer_pb2.DocumentInfo], str], dunning_pb2.Case | None]:
    """The invoice's documents (or why not) and its dunning case (None without a dunning service that
    knows it), side by side: neither fails `show`."""
    return await asyncio.gather(documents_or_reason(connection, number), case_or_none(connection, invoice_id))


@invoices.command("document")
@click.argument("number")
@click.option(
    "--kind", "form", type=click.Choice(sorted(FORMS)), default="pdf", show_default=True, help="The form."
)
@click.option(
    "--document",
    "kind",
    type=click.Choice(sorted(KINDS)),
    default=None,
    help="Which document: the invoice itself (default), a reminder, a collection notice.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, writable=True), help="Write here (default: its file name)."
)
@click.pass_obj
def document(ctx: CliContext, number: str, form: str, kind: str | None, out: str | None) -> None:
    """Write the newest FORM of invoice NUMBER's document from the invoice hotel to a file
    (`--out -` writes it to standard output)."""
    fetched = ctx.run(fetch_document(ctx.connection(), number, form, kind))
    if out == "-":
        sys.stdout.buffer.write(fetched.content)
        return
    path = Path(out or fetched.info.filename)
    path.write_bytes(fetched.content)
    ctx.console.print(
        f"{path}: {len(fetched.content):,} bytes, sha256 {fetched.info.sha256[:16]}…",
        highlight=False,
    )
