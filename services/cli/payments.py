"""`fordring payments`: the matcher's client — import bank files, list payments and imports, work the
review queue (allocate a payment to invoices, or mark it refunded)."""

from __future__ import annotations

from pathlib import Path

import click
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2
from fordring.matcher.v1 import matcher_pb2 as pb

from services.cli.bank_import import FORMATS, file_chunks, import_bank_file
from services.cli.client import QUICK, Connection, all_pages, ledger_stub, matcher_stub, with_retries
from services.cli.context import CliContext
from services.cli.payment_views import (
    METHOD_NAMES,
    STATUSES,
    allocations_of,
    import_json,
    import_response_json,
    imports_table,
    payment_json,
    payments_table,
    print_import,
    print_payment,
    print_review,
)
from services.cli.resolution import (
    InvoiceShare,
    ResolutionError,
    parse_invoice_option,
    plan_allocations,
    resolve_request,
)
from services.cli.views import money, write_json


async def list_payments(
    connection: Connection, *, status: str = "", import_id: str = "", method: str = "", limit: int
) -> list[pb.Payment]:
    async with matcher_stub(connection) as stub:

        async def fetch(page: common_pb2.PageRequest) -> tuple[list[pb.Payment], str]:
            reply = await stub.ListPayments(
                pb.ListPaymentsRequest(status=status, import_id=import_id, method=method, page=page),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            )
            return list(reply.payments), reply.page.next_page_token

        return await all_pages(fetch, limit)


async def review_queue(connection: Connection, limit: int) -> list[pb.Payment]:
    async with matcher_stub(connection) as stub:

        async def fetch(page: common_pb2.PageRequest) -> tuple[list[pb.Payment], str]:
            reply = await stub.ListReviewQueue(
                pb.ListReviewQueueRequest(page=page), metadata=connection.metadata, timeout=QUICK.call_timeout
            )
            return list(reply.payments), reply.page.next_page_token

        return await all_pages(fetch, limit)


async def list_imports(connection: Connection, limit: int) -> list[pb.Import]:
    async with matcher_stub(connection) as stub:

        async def fetch(page: common_pb2.PageRequest) -> tuple[list[pb.Import], str]:
            reply = await stub.ListImports(
                pb.ListImportsRequest(page=page), metadata=connection.metadata, timeout=QUICK.call_timeout
            )
            return list(reply.imports), reply.page.next_page_token

        return await all_pages(fetch, limit)


async def get_payment(connection: Connection, payment_id: str) -> pb.Payment:
    async with matcher_stub(connection) as stub:
        reply = await with_retries(
            lambda: stub.GetPayment(
                pb.GetPaymentRequest(payment_id=payment_id),
                metadata=connection.metadata,
                timeout=QUICK.call_timeout,
            ),
            QUICK,
        )
    return reply.payment


async def open_amounts(connection: Connection, numbers: list[str]) -> dict[str, int]:
    """What is open on each invoice, from the ledger."""
    found: dict[str, int] = {}
    async with ledger_stub(connection) as stub:
        for number in numbers:
            reply = await with_retries(
                lambda number=number: stub.GetInvoice(  # type: ignore[misc]
                    ledger_pb2.GetInvoiceRequest(invoice_number=number),
                    metadata=connection.metadata,
                    timeout=QUICK.call_timeout,
                ),
                QUICK,
            )
            found[number] = reply.invoice.balance.minor_units
    return found


async def resolve(
    connection: Connection,
    payment_id: str,
    *,
    shares: list[InvoiceShare],
    customer_number: str,
    refund: bool,
    learn: bool,
    note: str,
) -> pb.Payment:
    allocations: list[tuple[str, int]] = []
    if shares:
        payment = await get_payment(connection, payment_id)
        wanted = [s.number for s in shares if s.amount is None]
        owed = await open_amounts(connection, wanted) if wanted else {}
        try:
            allocations = plan_allocations(payment.amount.minor_units, payment.amount.currency, shares, owed)
        except ResolutionError as exc:
            raise click.ClickException(str(exc)) from None
    request = resolve_request(
        payment_id,
        refund=refund,
        allocations=allocations,
        customer_number=customer_number,
        learn=learn,
        note=note,
    )
    async with matcher_stub(connection) as stub:
        # Not retried: a decision is taken once (a second one is refused).
        reply = await stub.ResolvePayment(request, metadata=connection.metadata, timeout=QUICK.call_timeout)
    return reply.payment


@click.group()
def payments() -> None:
    """Incoming payments: import bank files, see how each payment was matched, work the review queue."""


@payments.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "file_format",
    type=click.Choice(FORMATS),
    default=None,
    help="The file's format.  [default: detected from the content]",
)
@click.option("--json", "as_json", is_flag=True, help='{"summary": …, "already_imported": …} as JSON.')
@click.pass_obj
def import_command(ctx: CliContext, file: Path, file_format: str | None, as_json: bool) -> None:
    """Import the bank file FILE (Nets OCR Giro, camt.053, camt.054, BgMax): every payment is matched to
    the invoices it pays or put in the review queue. Safe to run again: nothing is applied twice.

    A file with a problem is refused whole, with every problem and its line or record."""
    response = ctx.run(
        import_bank_file(
            ctx.connection(),
            file.name,
            file_chunks(file),
            file.stat().st_size,
            file_format=file_format or "",
            console=ctx.errors,
        )
    )
    if as_json:
        write_json(import_response_json(response))
    else:
        print_import(ctx.console, response)


@payments.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only payments in this status.")
@click.option("--import", "import_id", default="", help="Only the payments of this import (its id).")
@click.option(
    "--method",
    default="",
    metavar="METHOD",
    help=f"Only payments decided this way: {', '.join(METHOD_NAMES)}.",
)
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="A JSON array: each payment with its bank ids, status, method, confidence, allocations "
    "(invoice number → amount), credit and reason.",
)
@click.pass_obj
def list_command(
    ctx: CliContext, status: str | None, import_id: str, method: str, limit: int, as_json: bool
) -> None:
    """Payments, newest import first, in file order within an import."""
    found = ctx.run(
        list_payments(ctx.connection(), status=status or "", import_id=import_id, method=method, limit=limit)
    )
    if as_json:
        write_json([payment_json(p) for p in found])
    elif found:
        ctx.console.print(payments_table(found, title=f"{len(found)} payments"))
    else:
        ctx.console.print("No payments.")


@payments.command("review")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of the payments with their suggestions.")
@click.pass_obj
def review_command(ctx: CliContext, limit: int, as_json: bool) -> None:
    """The review queue: payments the matcher would not decide alone, oldest first, each with why and
    the invoices it may be for (best first). `fordring payments resolve` decides one."""
    found = ctx.run(review_queue(ctx.connection(), limit))
    if as_json:
        write_json([payment_json(p) for p in found])
        return
    if not found:
        ctx.console.print("The review queue is empty.")
        return
    total: dict[str, int] = {}
    for p in found:
        total[p.amount.currency] = total.get(p.amount.currency, 0) + p.amount.minor_units
    amounts = ", ".join(money(minor, currency) for currency, minor in sorted(total.items()))
    print_review(ctx.console, found)
    ctx.console.print(f"{len(found)} payments in review ({amounts}).", highlight=False)
    ctx.console.print(
        "Decide one: fordring payments resolve PAYMENT_ID --invoice NUMBER[=AMOUNT] … | --refund",
        highlight=False,
    )


@payments.command("show")
@click.argument("payment_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show_command(ctx: CliContext, payment_id: str, as_json: bool) -> None:
    """One payment: what the bank said, how it was decided and why (evidence), its suggestions."""
    payment = ctx.run(get_payment(ctx.connection(), payment_id))
    if as_json:
        write_json(payment_json(payment))
    else:
        print_payment(ctx.console, payment)


def _invoice_shares(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> list[InvoiceShare]:
    try:
        return [parse_invoice_option(value) for value in values]
    except ResolutionError as exc:
        raise click.BadParameter(str(exc)) from None


@payments.command("resolve")
@click.argument("payment_id")
@click.option(
    "--invoice",
    "shares",
    multiple=True,
    callback=_invoice_shares,
    metavar="NUMBER[=AMOUNT]",
    help="Pay this invoice (repeatable): AMOUNT in kroner (1250 or 1250,50), or without one what is "
    "open on it, as far as the payment reaches.",
)
@click.option(
    "--customer",
    "customer_number",
    default="",
    help="The customer whose credit balance takes what is left (required when no invoice is given; "
    "default: the invoices' customer).",
)
@click.option("--refund", is_flag=True, help="The payment is paid back to the payer: nothing is allocated.")
@click.option("--note", default="", help="Why (kept with the decision).")
@click.option(
    "--no-learn",
    "no_learn",
    is_flag=True,
    help="Do not record the payer's account on the customer (by default it is learned, so the next "
    "payment from it matches by itself).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def resolve_command(
    ctx: CliContext,
    payment_id: str,
    shares: list[InvoiceShare],
    customer_number: str,
    refund: bool,
    note: str,
    no_learn: bool,
    as_json: bool,
) -> None:
    """Decide PAYMENT_ID from the review queue: allocate it to invoices (the rest to a customer's credit
    balance), or mark it refunded."""
    if refund and (shares or customer_number):
        raise click.UsageError(
            "--refund allocates nothing: it cannot be combined with --invoice or --customer"
        )
    if not refund and not shares and not customer_number:
        raise click.UsageError("give --invoice NUMBER[=AMOUNT] (and/or --customer NUMBER), or --refund")
    payment = ctx.run(
        resolve(
            ctx.connection(),
            payment_id,
            shares=shares,
            customer_number=customer_number,
            refund=refund,
            learn=not no_learn,
            note=note,
        )
    )
    if as_json:
        write_json(payment_json(payment))
        return
    currency = payment.amount.currency
    if payment.status == "refunded":
        ctx.console.print(f"Payment {payment.id} is marked refunded.", highlight=False)
        return
    parts = [
        f"invoice {number} ← {money(minor, currency)}" for number, minor in allocations_of(payment).items()
    ]
    if payment.credit_minor:
        who = f" of customer {payment.customer_number}" if payment.customer_number else ""
        parts.append(f"{money(payment.credit_minor, currency)} to the credit balance{who}")
    ctx.console.print(
        f"Payment {payment.id} ({money(payment.amount.minor_units, currency)}) is {payment.status}: "
        + "; ".join(parts)
        + (f" (the ledger: {payment.ledger_state})" if payment.ledger_state else ""),
        highlight=False,
    )


@payments.command("imports")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of imports.")
@click.pass_obj
def imports_command(ctx: CliContext, limit: int, as_json: bool) -> None:
    """Bank files imported, newest first, with what became of their payments."""
    found = ctx.run(list_imports(ctx.connection(), limit))
    if as_json:
        write_json([import_json(i) for i in found])
    elif found:
        ctx.console.print(imports_table(found))
    else:
        ctx.console.print("No bank files imported yet.")
