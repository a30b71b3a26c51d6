"""The demo's customers pay: the sandbox bank writes the day's Nets OCR Giro file for most of the
batch (right KIDs, part and over-payments, mistyped KIDs, invoice numbers in the text, several invoices
at once, a few ambiguous ones), the file is imported through the matcher as `fordring payments import`
does, and the demo shows what the matcher made of it next to what the bank says each payment was for.

The file depends only on the batch as it was issued, the seed and the day: a second run of the same
demo finds it imported already, and nothing is paid twice."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import grpc
from fordring.ledger.v1 import ledger_pb2
from fordring.matcher.v1 import matcher_pb2 as mpb
from rich.console import Console

from services.cli.bank_import import content_chunks, import_bank_file
from services.cli.client import Connection
from services.cli.payment_views import allocations_of, print_import
from services.cli.payments import list_payments
from services.sandbox.bank import BankInvoice, GeneratedFile, generate_file

# How long the demo waits for the ledger to apply what the matcher proposed.
LEDGER_WAIT_SECONDS = 60.0
_NEVER_PAID = frozenset({ledger_pb2.INVOICE_STATUS_CREDITED, ledger_pb2.INVOICE_STATUS_WRITTEN_OFF})
_KIND_WORDS = (
    ("exact", "with the right KID"),
    ("part", "in part"),
    ("over", "too much"),
    ("kid_typo", "with a mistyped KID"),
    ("free_text", "with the invoice number in the text"),
    ("multi_text", "for several invoices, numbers in the text"),
    ("multi_account", "for several invoices, from a known account"),
    ("ambiguous_typo", "with a KID typo that fits two invoices"),
    ("unknown_payer", "from an unknown payer"),
)


def bank_invoices(
    invoices: Sequence[ledger_pb2.Invoice], batch: Sequence[Mapping[str, Any]]
) -> list[BankInvoice]:
    """The batch as its payers see it, as issued (amounts before any payment, so the file is the same
    on every run); the customers' bank accounts as the ERP sent them."""
    accounts = {
        str(record["external_id"]): str(record.get("customer", {}).get("bank_account", ""))
        for record in batch
    }
    return [
        BankInvoice(
            number=invoice.invoice_number,
            kid=invoice.kid,
            amount_minor=invoice.gross_total.minor_units,
            currency=invoice.currency,
            customer_number=invoice.customer_number,
            customer_name=invoice.customer_name,
            customer_account=accounts.get(invoice.external_id, ""),
            is_open=invoice.status not in _NEVER_PAID,
        )
        for invoice in invoices
        if invoice.kind == ledger_pb2.INVOICE_KIND_INVOICE
    ]


def mix_text(made: GeneratedFile) -> str:
    kinds = made.kinds()
    return ", ".join(f"{kinds[kind]} {words}" for kind, words in _KIND_WORDS if kinds[kind])


def agreement(made: GeneratedFile, payments: Sequence[mpb.Payment]) -> tuple[int, int]:
    """(payments decided as the bank expects, payments compared): matched to exactly the invoices and
    amounts it was for, or in review when it is ambiguous."""
    by_bank_id = {
        p.bank_ids.get("archive_reference") or p.bank_ids.get("acct_svcr_ref", ""): p for p in payments
    }
    agreed = compared = 0
    for expected in made.payments:
        found = by_bank_id.get(expected.bank_id)
        if found is None:
            continue
        compared += 1
        if expected.review:
            agreed += found.status == "review"
        else:
            agreed += found.status == "matched" and allocations_of(found) == dict(expected.pays)
    return agreed, compared


async def pay_by_bank(
    connection: Connection,
    console: Console,
    invoices: Sequence[ledger_pb2.Invoice],
    batch: Sequence[Mapping[str, Any]],
    *,
    seed: int,
    today: date,
    bank_dir: Path | None,
    prefix: str = "",
) -> bool:
    """True when the file was imported (now or by an earlier run)."""
    made = generate_file(bank_invoices(invoices, batch), seed=seed, day=today, format="ocr_giro")
    if not made.payments:
        return True
    where = await asyncio.to_thread(_keep, made, bank_dir) if bank_dir is not None else made.filename
    console.print(
        f"The bank's file of {today}: {len(made.payments)} payments for {len(made.paid())} of the "
        f"{len(invoices)} invoices ({mix_text(made)}), as Nets OCR Giro in {where}",
        highlight=False,
    )
    try:
        response = await import_bank_file(
            connection, made.filename, content_chunks(made.content), len(made.content), console=console
        )
        print_import(console, response)
        payments = await _applied(connection, response.summary.id, console)
    except grpc.aio.AioRpcError as error:
        console.print(
            f"[yellow]The matcher did not take the file ({error.code().name}: {error.details()}).[/yellow]",
            highlight=False,
        )
        return False
    agreed, compared = agreement(made, payments)
    review = sum(1 for p in payments if p.status == "review")
    console.print(
        f"The matcher decided {agreed} of {compared} payments as the bank says they were meant; "
        f"{review} wait for a person. Every payment, and the queue with its suggestions:",
        highlight=False,
    )
    console.print(f"  {prefix}fordring payments list", highlight=False)
    console.print(f"  {prefix}fordring payments review", highlight=False)
    console.print(
        f"  {prefix}fordring payments import {where}   (again: nothing is paid twice)", highlight=False
    )
    return True


def _keep(made: GeneratedFile, bank_dir: Path) -> str:
    """Write the file where the user can look at it (or import it again); its path."""
    bank_dir.mkdir(parents=True, exist_ok=True)
    path = bank_dir / made.filename
    path.write_bytes(made.content)
    return str(path)


async def _applied(connection: Connection, import_id: str, console: Console) -> list[mpb.Payment]:
    """The import's payments once the ledger has answered every proposal (or after LEDGER_WAIT_SECONDS)."""
    deadline = time.monotonic() + LEDGER_WAIT_SECONDS
    with console.status("the ledger applies the matched payments…"):
        while True:
            payments = await list_payments(connection, import_id=import_id, limit=1_000_000)
            waiting = Counter(p.ledger_state for p in payments)["proposed"]
            if not waiting or time.monotonic() > deadline:
                return payments
            await asyncio.sleep(0.5)
