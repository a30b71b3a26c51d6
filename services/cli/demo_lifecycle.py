"""The demo's creditor at work before the customers pay: some invoices are credited (the goods came
back). Deterministic for a seed and idempotent (keys derive from the invoice's external id), so
running the demo again changes nothing. The customers' payments come through the bank
(services/cli/demo_payments.py)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import date

from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import ledger_pb2_grpc

from services.cli.client import QUICK, with_retries

Metadata = tuple[tuple[str, str], ...]
# Out of every 20 invoices, one is credited; the rest are left to their payers.
OUTCOMES = ("credited",) + ("billed",) * 19


def plan_outcomes(invoices: Sequence[pb.Invoice], seed: int) -> dict[str, str]:
    """invoice id → what becomes of it; the same for the same invoices and seed."""
    rng = random.Random(seed)  # noqa: S311 - demo behaviour, not a secret
    ordered = sorted(invoices, key=lambda inv: inv.external_id)
    return {inv.id: rng.choice(OUTCOMES) for inv in ordered}


async def act(
    stub: ledger_pb2_grpc.LedgerServiceAsyncStub,
    metadata: Metadata,
    invoices: Sequence[pb.Invoice],
    *,
    seed: int,
    today: date,
    concurrency: int = 16,
) -> Counter[str]:
    """Credit the invoices planned to be credited, over gRPC; how many were done now ("already":
    those a previous run had done, the ledger answering with the original)."""
    outcomes = plan_outcomes(invoices, seed)
    limit = asyncio.Semaphore(concurrency)
    done: Counter[str] = Counter()

    def credit(invoice: pb.Invoice) -> Callable[[], Awaitable[pb.IssueCreditNoteResponse]]:
        request = pb.IssueCreditNoteRequest(
            idempotency_key=f"{invoice.external_id}-credit",
            invoice_id=invoice.id,
            issue_date=max(today, date.fromisoformat(invoice.issue_date)).isoformat(),
            reason="Varen er returnert",
        )
        return lambda: stub.IssueCreditNote(request, metadata=metadata, timeout=QUICK.call_timeout)

    async def run(call: Callable[[], Awaitable[pb.IssueCreditNoteResponse]]) -> None:
        async with limit:
            response = await with_retries(call, QUICK)
        done["credited" if response.created else "already"] += 1

    credited = [i for i in sorted(invoices, key=lambda inv: inv.external_id) if outcomes[i.id] == "credited"]
    await asyncio.gather(*(run(credit(invoice)) for invoice in credited))
    return done
