"""Does a call cost more as the data grows? An import of 100,000 invoices for 5,000 steady customers,
as `fordring invoices import --concurrency 64` sends it, timed per 10,000, and the reads an ERP makes
(an invoice by number, by KID, a customer's invoices, a page of the list) timed before and after.

    make bench                 # or: python -m bench.ledger_import --invoices 100000 --concurrency 64

Targets (issue 5): the last slice's rate is at least 80 % of the first's, and no read is more than a
few times slower at 100,000 invoices than at none. The baseline is the same run's first slice and
its reads on an empty ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import grpc
from fordring.common.v1 import common_pb2
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import ledger_pb2_grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.stack import embedded_stack
from services.cli.demo_data import generate_invoices
from services.cli.invoice_format import to_request

SLICE_TARGET = 0.80
READ_TARGET = 3.0
console = Console()


@dataclass(frozen=True)
class Slice:
    first: int
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds


@dataclass(frozen=True)
class Reads:
    at: int
    p50_ms: dict[str, float]


async def _timed(calls: int, call: Callable[[int], Awaitable[Any]]) -> float:
    """The median milliseconds of `calls` calls, one after the other."""
    times = []
    for i in range(calls):
        started = time.perf_counter()
        await call(i)
        times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2] * 1000


async def reads(stub: Any, metadata: Any, known: list[pb.Invoice], at: int, calls: int) -> Reads:
    rng = random.Random(at)
    sample = [rng.choice(known) for _ in range(calls)]
    page = common_pb2.PageRequest(page_size=50)

    async def by_number(i: int) -> None:
        await stub.GetInvoice(
            pb.GetInvoiceRequest(invoice_number=sample[i].invoice_number), metadata=metadata
        )

    async def by_kid(i: int) -> None:
        await stub.GetInvoice(pb.GetInvoiceRequest(kid=sample[i].kid), metadata=metadata)

    async def by_customer(i: int) -> None:
        request = pb.ListInvoicesRequest(customer_number=sample[i].customer_number, page=page)
        await stub.ListInvoices(request, metadata=metadata)

    async def first_page(_: int) -> None:
        await stub.ListInvoices(pb.ListInvoicesRequest(page=page), metadata=metadata)

    return Reads(
        at,
        {
            "invoice by number": await _timed(calls, by_number),
            "invoice by KID": await _timed(calls, by_kid),
            "a customer's invoices (a page)": await _timed(calls, by_customer),
            "the list, first page": await _timed(calls, first_page),
        },
    )


async def run(target: str, api_key: str, args: argparse.Namespace) -> tuple[list[Slice], list[Reads]]:
    records = generate_invoices(args.invoices + 200, seed=5, today=date.today(), customers=args.customers)
    requests = [to_request(r) for r in records]
    metadata = (("authorization", f"Bearer {api_key}"),)
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        # 200 invoices to read before the import (and to warm up).
        known = [(await stub.IssueInvoice(r, metadata=metadata, timeout=60)).invoice for r in requests[:200]]
        before = await reads(stub, metadata, known, 200, args.reads)
        slices: list[Slice] = []
        pending = iter(range(200, len(requests)))
        with Progress(
            TextColumn("[bold]importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("import", total=args.invoices)
            for first in range(0, args.invoices, args.slice):
                count = min(args.slice, args.invoices - first)
                taken = [next(pending) for _ in range(count)]
                started = time.perf_counter()
                await _import(stub, metadata, [requests[i] for i in taken], args.concurrency, progress, task)
                slices.append(Slice(first, count, time.perf_counter() - started))
                progress.console.print(
                    f"  invoices {first:>7,}-{first + count:>7,}: {slices[-1].rate:6.1f} per second"
                )
        after = await reads(stub, metadata, known, args.invoices + 200, args.reads)
    return slices, [before, after]


async def _import(
    stub: Any,
    metadata: Any,
    batch: list[pb.IssueInvoiceRequest],
    concurrency: int,
    progress: Progress,
    task: Any,
) -> None:
    queue = iter(batch)

    async def client() -> None:
        for request in queue:
            await stub.IssueInvoice(request, metadata=metadata, timeout=120)
            progress.advance(task)

    await asyncio.gather(*(client() for _ in range(concurrency)))


def report(slices: list[Slice], before_after: list[Reads], out: Path | None) -> bool:
    table = Table(title=f"Import of {sum(s.count for s in slices):,} invoices ({os.cpu_count()} cores)")
    for col in ("invoices", "seconds", "per second", "vs first slice"):
        table.add_column(col, justify="right")
    for s in slices:
        table.add_row(
            f"{s.first:,}-{s.first + s.count:,}",
            f"{s.seconds:.1f}",
            f"{s.rate:.1f}",
            f"{s.rate / slices[0].rate:.2f}",
        )
    console.print(table)
    before, after = before_after
    reads_table = Table(title="Reads, median of sequential calls")
    for col in ("read", f"ms at {before.at:,}", f"ms at {after.at:,}", "ratio"):
        reads_table.add_column(col, justify="right" if col != "read" else "left")
    worst = 0.0
    for name, ms in before.p50_ms.items():
        ratio = after.p50_ms[name] / ms
        worst = max(worst, ratio)
        reads_table.add_row(name, f"{ms:.2f}", f"{after.p50_ms[name]:.2f}", f"{ratio:.2f}")
    console.print(reads_table)
    last_vs_first = slices[-1].rate / slices[0].rate
    ok = last_vs_first >= SLICE_TARGET and worst <= READ_TARGET
    console.print(f"last slice / first slice = {last_vs_first:.2f} (target >= {SLICE_TARGET:.2f})")
    console.print(f"slowest read growth = {worst:.2f}x (target <= {READ_TARGET:.0f}x)")
    console.print("[green]targets met[/]" if ok else "[red]targets missed[/]")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "slices": [{**asdict(s), "rate": s.rate} for s in slices],
                    "reads": [asdict(r) for r in before_after],
                    "last_vs_first": last_vs_first,
                    "worst_read_growth": worst,
                },
                indent=2,
            )
        )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--slice", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--reads", type=int, default=200, help="calls per read kind")
    parser.add_argument("--out", default="bench/results/ledger_import.json")
    args = parser.parse_args()

    async def measure() -> bool:
        with embedded_stack(console) as stack:
            slices, before_after = await run(stack["grpc"]["ledger"], stack["api_key"], args)
        return report(slices, before_after, Path(args.out) if args.out else None)

    sys.exit(0 if asyncio.run(measure()) else 1)


if __name__ == "__main__":
    main()
