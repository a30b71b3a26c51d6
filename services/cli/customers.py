"""`fordring customers`: a customer as the ledger knows it, with its statement."""

from __future__ import annotations

import click
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2
from rich.table import Table

from services.cli.client import QUICK, Connection, all_pages, ledger_stub
from services.cli.context import CliContext
from services.cli.ledger_reads import read_both
from services.cli.views import print_customer, to_dict, write_json


@click.group()
def customers() -> None:
    """Look up customers."""


@customers.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True, help='{"customer": …, "statement": …} as JSON.')
@click.pass_obj
def show(ctx: CliContext, number: str, as_json: bool) -> None:
    """Show customer NUMBER (the ERP's customer number) with open items and aging."""
    connection = ctx.connection()

    md, timeout = connection.metadata, QUICK.call_timeout
    customer, statement = ctx.run(
        read_both(
            connection,
            lambda stub: stub.GetCustomer(
                ledger_pb2.GetCustomerRequest(customer_number=number), metadata=md, timeout=timeout
            ),
            lambda stub: stub.GetCustomerStatement(
                ledger_pb2.GetCustomerStatementRequest(customer_number=number), metadata=md, timeout=timeout
            ),
        )
    )
    if as_json:
        write_json({"customer": to_dict(customer.customer), "statement": to_dict(statement)})
    else:
        print_customer(ctx.console, customer.customer, statement)


@customers.command("flagged")
@click.option("--limit", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of customers with their flags.")
@click.pass_obj
def flagged(ctx: CliContext, limit: int, as_json: bool) -> None:
    """Customers with a contact that proved unusable (bounced e-mail, dead number, mail returned)."""
    connection = ctx.connection()
    found = ctx.run(list_flagged(connection, limit))
    if as_json:
        write_json([to_dict(c) for c in found])
        return
    if not found:
        ctx.console.print("No flagged contacts.")
        return
    table = Table(title=f"{len(found)} customers with contacts to clean", title_justify="left")
    for column in ("customer", "name", "contact", "channel", "reason", "flagged", "invoice"):
        table.add_column(column)
    for customer in found:
        for flag in customer.flags:
            table.add_row(
                customer.number,
                customer.name,
                flag.contact,
                ledger_pb2.Channel.Name(flag.channel).removeprefix("CHANNEL_").lower(),
                flag.reason,
                flag.flagged_at[:19].replace("T", " "),
                flag.invoice_id,
            )
    ctx.console.print(table)


async def list_flagged(connection: Connection, limit: int) -> list[ledger_pb2.Customer]:
    async with ledger_stub(connection) as stub:

        async def fetch(page: common_pb2.PageRequest) -> tuple[list[ledger_pb2.Customer], str]:
            reply = await stub.ListFlaggedCustomers(
                ledger_pb2.ListFlaggedCustomersRequest(page=page),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            )
            return list(reply.customers), reply.page.next_page_token

        return await all_pages(fetch, limit)
