"""`fordring customers`: a customer as the ledger knows it, with its statement."""

from __future__ import annotations

import asyncio

import click
from fordring.ledger.v1 import ledger_pb2

from services.cli.client import QUICK, ledger_stub, with_retries
from services.cli.context import CliContext
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

    async def fetch() -> tuple[ledger_pb2.GetCustomerResponse, ledger_pb2.GetCustomerStatementResponse]:
        async with ledger_stub(connection) as stub:
            timeout = QUICK.call_timeout
            return await asyncio.gather(
                with_retries(
                    lambda: stub.GetCustomer(
                        ledger_pb2.GetCustomerRequest(customer_number=number),
                        metadata=connection.metadata,
                        timeout=timeout,
                    ),
                    QUICK,
                ),
                with_retries(
                    lambda: stub.GetCustomerStatement(
                        ledger_pb2.GetCustomerStatementRequest(customer_number=number),
                        metadata=connection.metadata,
                        timeout=timeout,
                    ),
                    QUICK,
                ),
            )

    customer, statement = ctx.run(fetch())
    if as_json:
        write_json({"customer": to_dict(customer.customer), "statement": to_dict(statement)})
    else:
        print_customer(ctx.console, customer.customer, statement)
