"""`fordring demo`: act as an ERP against a running stack, then show the documents the renderer made,
how the dispatcher delivered them, how the matcher matched the bank's payments, how the unpaid ones
were dunned as the sandbox clock moved on, and what the ledger holds."""

from __future__ import annotations

from datetime import date

import click
from fordring.ledger.v1 import ledger_pb2
from pymongo.errors import PyMongoError
from rich.console import Console

from services.cli.client import Connection, ledger_stub
from services.cli.context import CliContext
from services.cli.demo_data import generate_invoices
from services.cli.demo_deliveries import queue_faults, show_deliveries
from services.cli.demo_documents import show_documents
from services.cli.demo_dunning import StackClock, dun
from services.cli.demo_lifecycle import act
from services.cli.demo_payments import pay_by_bank
from services.cli.home import Home
from services.cli.importer import print_report, run_import
from services.cli.invoice_format import parse_record
from services.cli.ledger_reads import list_invoices
from services.cli.views import status_summary_table
from services.common.clock import OSLO, SystemClock, local_today

DEFAULT_COUNT = 300
DEFAULT_SEED = 1


@click.command()
@click.option(
    "--count",
    type=click.IntRange(1, 100_000),
    default=DEFAULT_COUNT,
    show_default=True,
    help="How many invoices to send.",
)
@click.option(
    "--seed",
    type=int,
    default=DEFAULT_SEED,
    show_default=True,
    help="Same seed on the same day = the same batch (a re-run finds it all already there).",
)
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True)
@click.option(
    "--faults/--no-faults",
    default=True,
    show_default=True,
    help="On the local stack, have the channel sandbox bounce, ignore and return a few sends, to show "
    "the fallbacks and deviations.",
)
@click.option(
    "--dunning/--no-dunning",
    default=True,
    show_default=True,
    help="On the local stack, move its sandbox clock forward through the dunning of the unpaid "
    "invoices (nudges, reminders, inkassovarsel; the clock never goes back).",
)
@click.pass_obj
def demo(ctx: CliContext, count: int, seed: int, concurrency: int, faults: bool, dunning: bool) -> None:
    """Send a batch of realistic Norwegian invoices, as an ERP would; the customers pay through the
    bank (a Nets OCR Giro file in the stack's folder, matched by the matcher); the unpaid ones are
    dunned as the local stack's sandbox clock moves on (nudges, reminders, inkassovarsel, one dispute);
    summarise the ledger."""
    record = ctx.home.read_stack() if ctx.target is None else None
    sandbox_url = str(dict((record or {}).get("sandbox", {})).get("url", "")) if faults else ""
    succeeded = ctx.run(
        demo_session(
            ctx.connection(),
            ctx.console,
            count=count,
            seed=seed,
            concurrency=concurrency,
            sandbox_url=sandbox_url,
            home=ctx.home,
            dunning=dunning,
        )
    )
    ctx.exit(0 if succeeded else 1)


async def demo_day(home: Home | None) -> date:
    """The day the demo's invoices (and the bank's file) are of: the stack's day, which its sandbox
    clock may have moved ahead of the real one (a demo run again after the dunning demo moved it)."""
    clock = StackClock.of(home)
    if clock is None:
        return local_today(SystemClock())
    try:
        return (await clock.now()).astimezone(OSLO).date()
    except PyMongoError:  # the clock's database is away: the demo's next steps will say so
        return local_today(SystemClock())


async def demo_session(
    connection: Connection,
    console: Console,
    *,
    count: int,
    seed: int,
    concurrency: int,
    sandbox_url: str = "",
    home: Home | None = None,
    dunning: bool = True,
) -> bool:
    today = await demo_day(home)
    console.print(
        f"[bold]Demo[/bold]: an ERP sends {count} invoices of {today} (seed {seed}) to {connection.target}",
        highlight=False,
    )
    faults = await queue_faults(sandbox_url, console) if sandbox_url else False
    batch = generate_invoices(count, seed, today)
    parsed = [parse_record(invoice, number) for number, invoice in enumerate(batch, start=1)]
    report = await run_import(connection, parsed, console, concurrency=concurrency)
    print_report(report, console, f"the demo batch (seed {seed})")
    batch_ids = {invoice["external_id"] for invoice in batch}
    async with ledger_stub(connection) as stub:
        ours = [i for i in await list_invoices(stub, connection.metadata) if i.external_id in batch_ids]
        done = await act(stub, connection.metadata, ours, seed=seed, today=today, concurrency=concurrency)
        console.print(
            f"{done['credited']} invoices were credited (the goods came back)."
            + (f" {done['already']} credit notes were issued by an earlier run." if done["already"] else ""),
            highlight=False,
        )
        ours = [i for i in await list_invoices(stub, connection.metadata) if i.external_id in batch_ids]
    await show_documents(connection, console, ours)
    invoices_only = [i for i in ours if i.kind == ledger_pb2.INVOICE_KIND_INVOICE]
    await show_deliveries(connection, console, invoices_only, watch_fallbacks=faults)
    await pay_by_bank(
        connection,
        console,
        invoices_only,
        batch,
        seed=seed,
        today=today,
        bank_dir=home.bank if home is not None else None,
    )
    if dunning:
        async with ledger_stub(connection) as stub:
            ours = [i for i in await list_invoices(stub, connection.metadata) if i.external_id in batch_ids]
        await dun(connection, console, ours, home=home)
    async with ledger_stub(connection) as stub:
        held = await list_invoices(stub, connection.metadata)
    console.print(status_summary_table(i for i in held if i.kind == ledger_pb2.INVOICE_KIND_INVOICE))
    return report.ok
