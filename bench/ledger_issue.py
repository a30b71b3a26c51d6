"""IssueInvoice over gRPC against raw MongoDB transactions on the same server.

    make bench                      # or: python -m bench.ledger_issue --invoices 3000 --concurrency 100

Starts its own embedded stack (broker, database, ledger as separate processes) in a temporary
folder on free ports, unless --target/--api-key/--mongo point at a running one. Targets
(issue 2): the ledger sustains >= 40 % of the raw transaction rate, and p99 <= 10 x p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import grpc
from fordring.ledger.v1 import ledger_pb2_grpc
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.table import Table

from bench.stack import embedded_stack
from services.cli.demo_data import generate_invoices
from services.cli.invoice_format import to_request
from services.common.ids import new_id

RATIO_TARGET = 0.40
TAIL_TARGET = 10.0
console = Console()


@dataclass(frozen=True)
class Run:
    name: str
    count: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds


async def _drive(
    count: int, concurrency: int, call: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = iter(range(count))

    async def client() -> None:
        for i in queue:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started, sorted(latencies)


def _run(name: str, seconds: float, latencies: list[float]) -> Run:
    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return Run(name, len(latencies), seconds, pct(0.50), pct(0.99))


async def bench_ledger(target: str, api_key: str, count: int, concurrency: int, warmup: int) -> Run:
    records = generate_invoices(count + warmup, seed=int(time.time()), today=date.today())
    requests = [to_request(r) for r in records]
    metadata = (("authorization", f"Bearer {api_key}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)

        async def issue(i: int, offset: int = 0) -> None:
            await stub.IssueInvoice(requests[offset + i], metadata=metadata, timeout=60)

        await _drive(warmup, min(concurrency, warmup), issue)
        seconds, latencies = await _drive(count, concurrency, lambda i: issue(i, warmup))
    return _run("ledger IssueInvoice (gRPC, 100 % new invoices)", seconds, latencies)


async def bench_raw(mongo_uri: str, count: int, concurrency: int) -> Run:
    """The baseline: a bare two-write transaction (an invoice-sized document and an outbox record)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, maxPoolSize=concurrency + 10)
    db = client[f"bench_raw_{new_id()[:8]}"]
    body = {
        "lines": [{"description": "x" * 40, "quantity": "1", "unit_price_minor": 10000}] * 2,
        "pad": "x" * 600,
    }

    async def txn(i: int) -> None:
        async with client.start_session() as session:

            async def work(s: Any) -> None:
                await db.invoices.insert_one({"_id": new_id(), "n": i, **body}, session=s)
                await db.outbox.insert_one({"_id": new_id(), "n": i, "sent": False}, session=s)

            await session.with_transaction(work)

    try:
        await _drive(min(100, count), concurrency, txn)
        seconds, latencies = await _drive(count, concurrency, txn)
    finally:
        await client.drop_database(db.name)
        await client.close()
    return _run("raw MongoDB transaction (2 inserts), same server", seconds, latencies)


def report(ledger: Run, raw: Run, out: Path | None) -> bool:
    table = Table(title=f"IssueInvoice vs raw transactions ({os.cpu_count()} cores)")
    for col in ("run", "count", "seconds", "per second", "p50 ms", "p99 ms", "p99/p50"):
        table.add_column(col, justify="right" if col != "run" else "left")
    for r in (ledger, raw):
        table.add_row(
            r.name,
            str(r.count),
            f"{r.seconds:.2f}",
            f"{r.rate:.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.p99_ms / r.p50_ms:.2f}",
        )
    console.print(table)
    ratio = ledger.rate / raw.rate
    tail = ledger.p99_ms / ledger.p50_ms
    ok = ratio >= RATIO_TARGET and tail <= TAIL_TARGET
    console.print(f"throughput ratio ledger/raw = {ratio:.2f} (target >= {RATIO_TARGET:.2f})")
    console.print(f"ledger p99/p50 = {tail:.2f} (target <= {TAIL_TARGET:.0f})")
    console.print("[green]targets met[/]" if ok else "[red]targets missed[/]")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps({"ledger": asdict(ledger), "raw": asdict(raw), "ratio": ratio, "tail": tail}, indent=2)
        )
    return ok


async def main_async(args: argparse.Namespace) -> bool:
    if args.target:
        stack = {"grpc": {"ledger": args.target}, "api_key": args.api_key, "mongo": args.mongo}
        return await _measure(stack, args)
    with embedded_stack(console) as stack:
        return await _measure(stack, args)


async def _measure(stack: dict[str, Any], args: argparse.Namespace) -> bool:
    console.print(f"{args.invoices} IssueInvoice calls from {args.concurrency} concurrent clients …")
    ledger = await bench_ledger(
        stack["grpc"]["ledger"], stack["api_key"], args.invoices, args.concurrency, args.warmup
    )
    console.print(f"{args.invoices} raw transactions from {args.concurrency} concurrent clients …")
    raw = await bench_raw(stack["mongo"], args.invoices, args.concurrency)
    return report(ledger, raw, Path(args.out) if args.out else None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--target", help="gRPC target of a running ledger (default: start an embedded stack)")
    parser.add_argument("--api-key")
    parser.add_argument("--mongo", help="MongoDB URI of the server the ledger uses (for the baseline)")
    parser.add_argument("--out", default="bench/results/ledger_issue.json")
    args = parser.parse_args()
    if args.target and not (args.api_key and args.mongo):
        parser.error("--target needs --api-key and --mongo")
    sys.exit(0 if asyncio.run(main_async(args)) else 1)


if __name__ == "__main__":
    main()
