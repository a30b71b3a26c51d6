"""`fordring customers`: a customer as the ledger knows it, with its statement."""

from __future__ import annotations

import click
from fordring.ledger.v1 import ledger_pb2

from services.cli.client import QUICK
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
