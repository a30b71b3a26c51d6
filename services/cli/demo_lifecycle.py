"""The demo's customers at work: some pay in full, some in part, some too much; some invoices are
credited. Deterministic for a seed and idempotent (keys derive from the invoice's external id), so
running the demo again changes nothing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, timedelta

from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import ledger_pb2_grpc

from services.cli.client import QUICK, with_retries

Metadata = tuple[tuple[str, str], ...]
Created = pb.RecordPaymentResponse | pb.IssueCreditNoteResponse
# Out of every 20 invoices: 8 paid in full, 2 in part, 1 paid too much, 1 credited; the rest wait.
OUTCOMES = ("paid",) * 8 + ("part_paid",) * 2 + ("overpaid", "credited") + ("unpaid",) * 8
OVERPAYMENT_MINOR = 100_00


def plan_outcomes(invoices: Sequence[pb.Invoice], seed: int) -> dict[str, str]:
    """invoice id → what its customer does; the same for the same invoices and seed."""
    rng = random.Random(seed)  # noqa: S311 - demo behaviour, not a secret
    ordered = sorted(invoices, key=lambda inv: inv.external_id)
    return {inv.id: rng.choice(OUTCOMES) for inv in ordered}


def _paid_on(invoice: pb.Invoice, today: date, rng: random.Random) -> str:
    issued = date.fromisoformat(invoice.issue_date)
    return min(today, issued + timedelta(days=rng.randint(1, 20))).isoformat()


async def act(
    stub: ledger_pb2_grpc.LedgerServiceAsyncStub,
    metadata: Metadata,
    invoices: Sequence[pb.Invoice],
    *,
    seed: int,
    today: date,
    concurrency: int = 16,
) -> Counter[str]:
    """Carry out each invoice's outcome over gRPC; returns how many of each were done now
    ("already" counts those a previous run had done: the ledger answered with the original)."""
    outcomes = plan_outcomes(invoices, seed)
    rng = random.Random(seed)  # noqa: S311 - demo behaviour, not a secret
    limit = asyncio.Semaphore(concurrency)
    done: Counter[str] = Counter()

    def payment(invoice: pb.Invoice, amount: int) -> Callable[[], Awaitable[Created]]:
        request = pb.RecordPaymentRequest(
            idempotency_key=f"{invoice.external_id}-payment",
            amount=common_pb2.Money(minor_units=amount, currency=invoice.currency),
            paid_on=_paid_on(invoice, today, rng),
            customer_number=invoice.customer_number,
            reference=invoice.kid,
            allocations=[pb.PaymentAllocationInput(invoice_id=invoice.id, amount_minor=amount)],
        )
        return lambda: stub.RecordPayment(request, metadata=metadata, timeout=QUICK.call_timeout)

    def credit(invoice: pb.Invoice) -> Callable[[], Awaitable[Created]]:
        request = pb.IssueCreditNoteRequest(
            idempotency_key=f"{invoice.external_id}-credit",
            invoice_id=invoice.id,
            issue_date=max(today, date.fromisoformat(invoice.issue_date)).isoformat(),
            reason="Varen er returnert",
        )
        return lambda: stub.IssueCreditNote(request, metadata=metadata, timeout=QUICK.call_timeout)

    calls: list[tuple[str, Callable[[], Awaitable[Created]]]] = []
    for invoice in sorted(invoices, key=lambda inv: inv.external_id):
        gross = invoice.gross_total.minor_units
        outcome = outcomes[invoice.id]
        if outcome == "paid":
            calls.append((outcome, payment(invoice, gross)))
        elif outcome == "part_paid":
            calls.append((outcome, payment(invoice, gross // 2)))
        elif outcome == "overpaid":
            calls.append((outcome, payment(invoice, gross + OVERPAYMENT_MINOR)))
        elif outcome == "credited":
            calls.append((outcome, credit(invoice)))

    async def run(outcome: str, call: Callable[[], Awaitable[Created]]) -> None:
        async with limit:
            response = await with_retries(call, QUICK)
        done[outcome if response.created else "already"] += 1

    await asyncio.gather(*(run(outcome, call) for outcome, call in calls))
    return done
