"""The demo's deliveries: wait until the dispatcher has sent every document of the batch (a progress
bar), then show which channels carried them, what came back, the fallbacks and the deviations."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Sequence

import aiohttp
import grpc
from fordring.dispatcher.v1 import dispatcher_pb2 as dpb
from fordring.ledger.v1 import ledger_pb2
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.cli.client import Connection, dispatcher_stub
from services.cli.deliveries import deviations_table, list_deviations

WAIT_SECONDS = 180.0
STATUSES = ("queued", "accepted", "delivered", "opened", "failed", "cancelled")


# What the sandbox does to the demo's next sends, so the fallbacks and deviations can be watched.
DEMO_FAULTS = (
    ("email", "bounce", 2),
    ("email", "unopened", 4),
    ("print", "return", 1),
)
# "Not opened in 3 days" on the embedded stack (its rules' days are seconds), plus the reader
# (FORDRING_DEMO_FALLBACK_WATCH_SECONDS: shorter for a test that does not look at the fallbacks).
FALLBACK_WATCH_SECONDS = float(os.environ.get("FORDRING_DEMO_FALLBACK_WATCH_SECONDS", "20"))


async def queue_faults(sandbox_url: str, console: Console) -> bool:
    """Ask the channel sandbox to bounce, ignore and return a few of the demo's sends."""
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            for channel, outcome, count in DEMO_FAULTS:
                body = {"channel": channel, "outcome": outcome, "count": count}
                async with session.post(f"{sandbox_url}/control/faults", json=body) as reply:
                    reply.raise_for_status()
    except (aiohttp.ClientError, TimeoutError) as exc:
        console.print(
            f"[dim]The channel sandbox did not take the demo's faults ({exc}); all sends succeed.[/dim]"
        )
        return False
    console.print(
        "The channel sandbox will bounce 2 e-mails, leave 4 unopened and return 1 letter: watch the "
        'dispatcher fall back (an unopened e-mail becomes an SMS after "3 days", seconds here, unless '
        "the invoice is paid by then).",
        highlight=False,
    )
    return True


async def show_deliveries(
    connection: Connection,
    console: Console,
    invoices: Sequence[ledger_pb2.Invoice],
    *,
    prefix: str = "",
    watch_fallbacks: bool = False,
) -> bool:
    """True when every invoice's primary delivery left the queue within WAIT_SECONDS."""
    found: dict[str, list[dpb.Delivery]] = {}
    ids = [i.id for i in invoices]
    try:
        async with dispatcher_stub(connection) as stub:
            with Progress(
                TextColumn("[bold]delivering"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("deliveries", total=len(ids))
                deadline = time.monotonic() + WAIT_SECONDS
                while True:
                    for invoice_id in [i for i in ids if not _sent(found.get(i, []))]:
                        reply = await stub.ListDeliveries(
                            dpb.ListDeliveriesRequest(invoice_id=invoice_id),
                            metadata=connection.metadata,
                            timeout=10,
                            wait_for_ready=True,
                        )
                        found[invoice_id] = list(reply.deliveries)
                    done = sum(1 for i in ids if _sent(found.get(i, [])))
                    progress.update(task, completed=done)
                    if done == len(ids) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(1.0)
            # A moment for receipts and opens to come back (and, with the demo's faults, for the
            # fallbacks to fire), then the picture as it is now.
            await _wait(console, FALLBACK_WATCH_SECONDS if watch_fallbacks else 3.0)
            for invoice_id in ids:
                reply = await stub.ListDeliveries(
                    dpb.ListDeliveriesRequest(invoice_id=invoice_id), metadata=connection.metadata, timeout=10
                )
                found[invoice_id] = list(reply.deliveries)
        deviations = [d for d in await list_deviations(connection, 1000) if d.invoice_id in set(ids)]
    except grpc.aio.AioRpcError as error:
        console.print(
            f"[yellow]The dispatcher did not answer ({error.code().name}): no deliveries shown.[/yellow]"
        )
        return False
    counts: Counter[tuple[str, str]] = Counter()
    routes: Counter[str] = Counter()
    for deliveries in found.values():
        for d in deliveries:
            counts[(d.channel, d.status)] += 1
            routes[d.route] += 1
    table = Table(title="How the batch reached the customers", title_justify="left")
    table.add_column("channel")
    for status in STATUSES:
        table.add_column(status, justify="right")
    for channel in sorted({c for c, _ in counts}):
        table.add_row(channel, *(str(counts.get((channel, s), 0) or "·") for s in STATUSES))
    console.print(table)
    console.print(
        f"{routes['primary']} primary deliveries, {routes['fallback']} fallbacks (another channel after a "
        f"bounce, a rejection or an unopened e-mail), {len(deviations)} deviations for a person.",
        highlight=False,
    )
    if deviations:
        console.print(deviations_table(deviations[:10]))
    sample = next((i for i in invoices if len(found.get(i.id, [])) > 1), invoices[0] if invoices else None)
    if sample is not None:
        console.print("Follow one invoice's deliveries, and what needs a person:")
        console.print(f"  {prefix}fordring deliveries list --invoice {sample.invoice_number}")
        console.print(f"  {prefix}fordring deliveries deviations")
        console.print(f"  {prefix}fordring deliveries stats")
        console.print(f"  {prefix}fordring customers flagged")
    complete = all(_sent(found.get(i, [])) for i in ids)
    if not complete:
        console.print(
            "[yellow]Some deliveries are still queued: `fordring deliveries list --invoice N`.[/yellow]"
        )
    return complete


async def _wait(console: Console, seconds: float) -> None:
    with Progress(
        TextColumn("[bold]receipts, opens and fallbacks"), BarColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("wait", total=seconds)
        for _ in range(int(seconds)):
            await asyncio.sleep(1.0)
            progress.advance(task)


def _sent(deliveries: list[dpb.Delivery]) -> bool:
    return any(d.route == "primary" and d.status != "queued" for d in deliveries)
