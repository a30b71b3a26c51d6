"""How the CLI shows the matcher's imports and payments: rich tables and summaries for people, JSON
for programs (amounts as integers in minor units, allocations as invoice number → amount)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fordring.matcher.v1 import matcher_pb2 as pb
from rich.console import Console
from rich.table import Table

from services.cli.views import money

STATUSES = ("matched", "review", "resolved", "refunded", "reversal", "reversed", "returned", "rejected")
_STATUS_STYLE = {
    "matched": "green",
    "review": "yellow",
    "resolved": "cyan",
    "refunded": "dim",
    "reversal": "magenta",
    "reversed": "magenta",
    "returned": "magenta",
    "rejected": "red",
}
# How each method decided, in words (the matcher's names in --json and --method).
METHOD_NAMES = {
    "kid": "KID",
    "kid_typo": "KID with a keying error",
    "free_text": "invoice number in the text",
    "payer_account_amount": "payer's account and amount",
    "payer_set": "payer's account, several invoices",
    "payer_name_amount": "payer's name and amount",
    "payer_name_set": "payer's name, several invoices",
    "debit": "returned payment",
    "manual": "by hand",
    "none": "nothing fits",
}


def styled_status(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'default')}]{status}[/]"


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method.replace("_", " "))


def allocations_of(payment: pb.Payment) -> dict[str, int]:
    """Invoice number (or id, when the number is unknown) → amount in minor units."""
    allocations: dict[str, int] = {}
    for allocation in payment.allocations:
        key = allocation.invoice_number or allocation.invoice_id
        allocations[key] = allocations.get(key, 0) + allocation.amount_minor
    return allocations


def payment_json(payment: pb.Payment) -> dict[str, Any]:
    """A payment for programs: the bank's facts and ids, then the decision."""
    return {
        "id": payment.id,
        "import_id": payment.import_id,
        "location": payment.location,
        "direction": payment.direction,
        "amount_minor": payment.amount.minor_units,
        "currency": payment.amount.currency,
        "reference": payment.reference,
        "free_text": payment.free_text,
        "payer_name": payment.payer_name,
        "payer_account": payment.payer_account,
        "booking_date": payment.booking_date,
        "value_date": payment.value_date,
        "bank_ids": dict(sorted(payment.bank_ids.items())),
        "return_reason": payment.return_reason,
        "status": payment.status,
        "method": payment.method,
        "confidence": round(payment.confidence, 4),
        "evidence": list(payment.evidence),
        "allocations": allocations_of(payment),
        "credit_minor": payment.credit_minor,
        "customer_number": payment.customer_number,
        "reason": payment.reason,
        "suggestions": [
            {
                "invoice_numbers": list(s.invoice_numbers),
                "invoice_ids": list(s.invoice_ids),
                "score": round(s.score, 4),
                "reason": s.reason,
            }
            for s in payment.suggestions
        ],
        "ledger_state": payment.ledger_state,
        "decided_at": payment.decided_at,
        "resolved_by": payment.resolved_by,
        "note": payment.note,
        "reverses_payment_id": payment.reverses_payment_id,
    }


def import_json(found: pb.Import) -> dict[str, Any]:
    return {
        "id": found.id,
        "filename": found.filename,
        "format": found.format,
        "version": found.version,
        "file_id": found.file_id,
        "sha256": found.sha256,
        "state": found.state,
        "creditor_account": found.creditor_account,
        "payments": found.payments,
        "total_minor": found.total.minor_units,
        "currency": found.total.currency,
        "matched": found.matched,
        "review": found.review,
        "reversals": found.reversals,
        "duplicates": found.duplicates,
        "by_method": dict(sorted(found.by_method.items())),
        "created_at": found.created_at,
        "finished_at": found.finished_at,
        "warnings": list(found.warnings),
    }


def import_response_json(response: pb.ImportPaymentsResponse) -> dict[str, Any]:
    return {"summary": import_json(response.summary), "already_imported": response.already_imported}


def by_method_text(by_method: Iterable[tuple[str, int]]) -> str:
    """ "KID 240 · KID with a keying error 20 · …", the most frequent first."""
    ranked = sorted(((count, method) for method, count in by_method if count), key=lambda t: (-t[0], t[1]))
    return " · ".join(f"{method_name(method)} {count}" for count, method in ranked)


def import_summary(response: pb.ImportPaymentsResponse) -> Table:
    """The summary of one import: payments, matched by method, review, reversals, duplicates, total."""
    found = response.summary
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    table.add_row("payments", str(found.payments), money(found.total.minor_units, found.total.currency))
    table.add_row("matched", f"[green]{found.matched}[/green]", by_method_text(found.by_method.items()))
    review = "fordring payments review" if found.review else ""
    table.add_row(
        "review", f"[yellow]{found.review}[/yellow]" if found.review else "0", f"[dim]{review}[/dim]"
    )
    table.add_row("reversals", str(found.reversals), "")
    table.add_row(
        "duplicates",
        str(found.duplicates),
        "[dim]imported before: nothing applied again[/dim]" if found.duplicates else "",
    )
    return table


def print_import(console: Console, response: pb.ImportPaymentsResponse) -> None:
    found = response.summary
    head = f"[bold]{found.filename}[/bold]: {found.format}"
    if found.version:
        head += f" v{found.version}"
    if found.file_id:
        head += f", {found.file_id}"
    console.print(f"{head} (import {found.id}, {found.state})", highlight=False)
    if response.already_imported:
        console.print(
            f"[yellow]This file was imported before[/yellow] ({_time(found.created_at)}): nothing was "
            "applied now. Its summary:",
            highlight=False,
        )
    console.print(import_summary(response), highlight=False)
    for warning in found.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


def payments_table(payments: Iterable[pb.Payment], title: str = "") -> Table:
    table = Table(title=title or None, title_justify="left")
    table.add_column("Booked", no_wrap=True)
    table.add_column("Amount", justify="right", no_wrap=True)
    table.add_column("Reference / text", overflow="fold", max_width=28)
    table.add_column("Status", no_wrap=True)
    table.add_column("Method", overflow="fold")
    table.add_column("Pays", no_wrap=True)
    table.add_column("Why", overflow="fold", max_width=40)
    for p in payments:
        pays = [f"{number} ← {money(minor)}" for number, minor in allocations_of(p).items()]
        if p.credit_minor:
            pays.append(f"credit {money(p.credit_minor)}")
        table.add_row(
            p.booking_date,
            money(p.amount.minor_units, p.amount.currency),
            _reference(p),
            styled_status(p.status),
            f"{p.method} {p.confidence:.2f}" if p.method else "",
            "\n".join(pays),
            p.reason,
        )
    return table


def print_review(console: Console, payments: Iterable[pb.Payment]) -> None:
    """The review queue, one block per payment: what came, why it waits, the suggestions best first."""
    for p in payments:
        console.print(
            f"[bold]{p.id}[/bold]  {money(p.amount.minor_units, p.amount.currency)}  "
            f"[dim]booked {p.booking_date}, {p.location}[/dim]",
            highlight=False,
        )
        for label, value in (
            ("reference", p.reference),
            ("text", p.free_text),
            ("payer", _payer(p)),
        ):
            if value:
                console.print(f"  {label}: {value}", highlight=False, markup=False)
        console.print(f"  [yellow]why[/yellow]: {p.reason}", highlight=False)
        for rank, s in enumerate(p.suggestions, 1):
            invoices = ", ".join(s.invoice_numbers)
            console.print(f"  {rank}. invoice {invoices} ({s.score:.2f}): {s.reason}", highlight=False)
        if not p.suggestions:
            console.print("  [dim]no suggestions[/dim]")


def imports_table(imports: Iterable[pb.Import]) -> Table:
    table = Table(title_justify="left")
    table.add_column("Imported", no_wrap=True)
    table.add_column("File / import id", overflow="fold", min_width=20)
    table.add_column("Payments", overflow="fold")
    table.add_column("Total", justify="right")
    for i in imports:
        state = "" if i.state == "done" else f", {i.state}"
        outcome = [f"{i.payments}: {i.matched} matched"]
        outcome.append(f"[yellow]{i.review} review[/yellow]" if i.review else "0 review")
        outcome += [
            f"{n} {what}" for n, what in ((i.reversals, "reversals"), (i.duplicates, "duplicates")) if n
        ]
        table.add_row(
            _time(i.created_at).replace(" ", "\n"),
            f"{i.filename} [dim]({i.format}{state})[/dim]\n[dim]{i.id}[/dim]",
            ", ".join(outcome),
            money(i.total.minor_units, i.total.currency),
        )
    return table


def print_payment(console: Console, p: pb.Payment) -> None:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("Payment", f"{p.id}  ({styled_status(p.status)})")
    head.add_row("Amount", f"{money(p.amount.minor_units, p.amount.currency)} ({p.direction})")
    head.add_row("Booked / value", f"{p.booking_date} / {p.value_date}")
    head.add_row("Where", f"import {p.import_id}, {p.location}")
    for label, value in (
        ("Reference", p.reference),
        ("Text", p.free_text),
        ("Payer", p.payer_name),
        ("Payer account", p.payer_account),
        ("Return reason", p.return_reason),
    ):
        if value:
            head.add_row(label, value)
    head.add_row("Bank ids", ", ".join(f"{k} {v}" for k, v in sorted(p.bank_ids.items())))
    head.add_row("Method", f"{method_name(p.method)} ({p.method}), confidence {p.confidence:.2f}")
    for number, minor in allocations_of(p).items():
        head.add_row("Pays", f"invoice {number}: {money(minor, p.amount.currency)}")
    if p.credit_minor:
        who = f" of customer {p.customer_number}" if p.customer_number else ""
        head.add_row("Credit", f"{money(p.credit_minor, p.amount.currency)} to the credit balance{who}")
    if p.reason:
        head.add_row("Why in review", p.reason)
    if p.ledger_state:
        head.add_row("Ledger", p.ledger_state)
    if p.resolved_by or p.note:
        head.add_row("Resolved", f"{p.resolved_by} {_time(p.decided_at)}: {p.note}".strip())
    console.print(head, highlight=False)
    if p.evidence:
        console.print("[bold]Evidence[/bold]")
        for line in p.evidence:
            console.print(f"  • {line}", highlight=False, markup=False)
    if p.suggestions:
        console.print("[bold]Suggestions[/bold]")
        for rank, s in enumerate(p.suggestions, 1):
            console.print(
                f"  {rank}. {', '.join(s.invoice_numbers)} ({s.score:.2f}) {s.reason}",
                highlight=False,
                markup=False,
            )


def _reference(p: pb.Payment) -> str:
    if p.reference and p.free_text:
        return f"{p.reference}\n{p.free_text}"
    return p.reference or p.free_text


def _payer(p: pb.Payment) -> str:
    return " ".join(filter(None, (p.payer_name, p.payer_account)))


def _time(value: str) -> str:
    return value[:19].replace("T", " ") if value else ""
