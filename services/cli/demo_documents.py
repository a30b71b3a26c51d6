"""The demo's documents: wait until the renderer has put every invoice of the batch in the invoice
hotel (a progress bar), then say what is there and how to open one."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence

import grpc
from fordring.ledger.v1 import ledger_pb2
from fordring.renderer.v1 import renderer_pb2 as rpb
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.cli.client import Connection, renderer_stub
from services.cli.documents import FORM_NAMES, KIND_NAMES

WAIT_SECONDS = 180.0


async def show_documents(
    connection: Connection, console: Console, invoices: Sequence[ledger_pb2.Invoice], *, prefix: str = ""
) -> bool:
    """True when every invoice has its PDF within WAIT_SECONDS (the renderer works through the batch)."""
    ids = [i.id for i in invoices]
    for invoice in invoices:
        ids.extend(invoice.credit_note_ids)
    found: dict[str, list[rpb.DocumentInfo]] = {}
    try:
        async with renderer_stub(connection) as stub:
            with Progress(
                TextColumn("[bold]rendering"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("documents", total=len(ids))
                deadline = time.monotonic() + WAIT_SECONDS
                while True:
                    missing = [
                        i for i in ids if not any(d.form == rpb.DOCUMENT_FORM_PDF for d in found.get(i, []))
                    ]
                    for invoice_id in missing:
                        reply = await stub.ListDocuments(
                            rpb.ListDocumentsRequest(invoice_id=invoice_id),
                            metadata=connection.metadata,
                            timeout=10,
                            # A renderer still starting (or restarting) is waited for, not an error.
                            wait_for_ready=True,
                        )
                        found[invoice_id] = list(reply.documents)
                    done = sum(
                        1 for i in ids if any(d.form == rpb.DOCUMENT_FORM_PDF for d in found.get(i, []))
                    )
                    progress.update(task, completed=done)
                    if done == len(ids) or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(1.0)
    except grpc.aio.AioRpcError as error:
        console.print(
            f"[yellow]The renderer did not answer ({error.code().name}): no documents shown.[/yellow]"
        )
        return False
    counts: Counter[tuple[str, str]] = Counter()
    for documents in found.values():
        for doc in documents:
            counts[(KIND_NAMES.get(doc.kind, "?"), FORM_NAMES.get(doc.form, "?"))] += 1
    table = Table(title="What the invoice hotel holds for the batch", title_justify="left")
    forms = ["pdf", "html", "ehf", "email", "sms"]
    table.add_column("document")
    for form in forms:
        table.add_column(form, justify="right")
    for kind in sorted({k for k, _ in counts}):
        table.add_row(kind, *(str(counts.get((kind, form), 0) or "·") for form in forms))
    console.print(table)
    sample = invoices[0] if invoices else None
    if sample is not None:
        console.print("Open one (the CLI reads it from the invoice hotel, SHA-256 checked):")
        console.print(
            f"  {prefix}fordring invoices document {sample.invoice_number} --kind pdf --out invoice.pdf"
        )
        console.print(f"  {prefix}fordring invoices document {sample.invoice_number} --kind sms --out -")
    complete = all(any(d.form == rpb.DOCUMENT_FORM_PDF for d in found.get(i, [])) for i in ids)
    if not complete:
        console.print(
            "[yellow]Some documents are still being rendered: "
            "`fordring invoices show NUMBER` lists them.[/yellow]"
        )
    return complete
