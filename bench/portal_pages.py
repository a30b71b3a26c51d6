"""The portal's invoice pages: how many a replica serves per second beside a static page from the
same server in the same run, and the live fan-out — many open pages of one invoice, one payment
lands, how long until every page has it.

    make bench                 # or: python -m bench.portal_pages --requests 2000 --pages 1000

A ledger (its own process, on an embedded broker and database) holds the invoice; the portal runs
as its own process (uvicorn, one core); the dispatcher is a stand-in in this process that answers
whose invoice a link names and that it has no deliveries (its own cost is not the portal's). The
load comes from this process over HTTP/1.1 keep-alive connections.
1. pages: GET / (a static page, no reads) and GET /i/<token> (a customer opening the link: a new
   session, the dispatcher told, the invoice, customer, creditor, history and thread read from the
   ledger, the page rendered), each `--requests` times with `--concurrency` in flight;
2. fan-out: `--pages` pages of one invoice opened and their live streams (server-sent events) held
   open; a payment is recorded on the ledger; the time from the call until each stream has the new
   amount (p50, p95, max — the last is "every page has it").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import httpx
from fordring.common.v1 import common_pb2
from fordring.dispatcher.v1 import links_pb2, links_pb2_grpc
from fordring.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from rich.console import Console

from services.cli.demo_data import generate_invoices
from services.cli.invoice_format import to_request
from services.common.events import INVOICE_TOPIC
from services.common.links import invoice_token
from tests.support.backends import embedded_backend, free_port
from tests.support.kafka import create_topics

console = Console()
SANDBOX_TENANT = "sandbox"


class StandInDispatcher(links_pb2_grpc.InvoiceLinkServiceServicer):
    """Whose invoice a link names (the sandbox tenant's). It offers no deliveries service: the page
    asks, is told UNIMPLEMENTED (a round trip like any other) and shows no deliveries."""

    async def RecordOpen(  # noqa: N802 - gRPC method name
        self, request: links_pb2.RecordOpenRequest, context: Any
    ) -> links_pb2.RecordOpenResponse:
        return links_pb2.RecordOpenResponse(tenant_id=SANDBOX_TENANT)


async def _wait_http(url: str, patience: float = 90) -> None:
    deadline = time.monotonic() + patience
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(url, timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer")
            await asyncio.sleep(0.5)


async def _ledger_ready(target: str, patience: float = 90) -> None:
    deadline = time.monotonic() + patience
    while True:
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                await asyncio.wait_for(channel.channel_ready(), timeout=2)
                return
        except (TimeoutError, grpc.aio.AioRpcError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _rate(http: httpx.AsyncClient, path: str, requests: int, concurrency: int) -> float:
    """Pages per second: `requests` GETs of `path`, `concurrency` at a time, every one a 200."""
    left = iter(range(requests))

    async def worker() -> None:
        for _ in left:
            reply = await http.get(path)
            if reply.status_code != 200:
                raise RuntimeError(f"{path}: {reply.status_code} {reply.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


async def _fan_out(base: str, link: str, pages: int, pay: Any) -> list[float]:
    """Seconds from the payment until each open page's stream had the new amount."""
    limits = httpx.Limits(max_connections=pages + 50, max_keepalive_connections=pages + 50)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=httpx.Timeout(120)) as http:
        sessions: list[tuple[str, int]] = []
        gate = asyncio.Semaphore(16)

        async def open_page() -> None:
            async with gate:
                page = await http.get(link)
                version = int(page.text.split('data-version="', 1)[1].split('"', 1)[0])
                sessions.append((page.headers["set-cookie"].split(";", 1)[0], version))

        await asyncio.gather(*(open_page() for _ in range(pages)))
        connected = 0
        all_connected = asyncio.Event()
        paid_at = asyncio.get_running_loop().create_future()
        arrivals: list[float] = []

        async def listen(cookie: str, version: int) -> None:
            nonlocal connected
            async with http.stream(
                "GET", f"{link}/live?v={version}", headers={"cookie": cookie, "accept": "text/event-stream"}
            ) as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("retry:"):
                        connected += 1
                        if connected == pages:
                            all_connected.set()
                    elif line.startswith("data: ") and "750,00 kr" in line:
                        arrivals.append(time.perf_counter() - await paid_at)
                        return

        listeners = [asyncio.create_task(listen(cookie, version)) for cookie, version in sessions]
        await asyncio.wait_for(all_connected.wait(), timeout=120)
        await asyncio.sleep(1.0)  # every stream has subscribed to the invoice's feed
        paid_at.set_result(time.perf_counter())
        await pay()
        await asyncio.wait_for(asyncio.gather(*listeners), timeout=120)
        return arrivals


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    token, link_secret, api_key = (secrets.token_urlsafe(16) for _ in range(3))
    with (
        tempfile.TemporaryDirectory(prefix="fordring-bench-portal-") as work,
        embedded_backend(Path(work)) as backend,
    ):
        prefix = "bench."
        await create_topics(backend.kafka_bootstrap, [prefix + INVOICE_TOPIC])
        ledger_port, portal_port = free_port(), free_port()
        dispatcher = grpc.aio.server()
        stand_in = StandInDispatcher()
        links_pb2_grpc.add_InvoiceLinkServiceServicer_to_server(stand_in, dispatcher)
        dispatcher_port = dispatcher.add_insecure_port("127.0.0.1:0")
        await dispatcher.start()
        common = {
            **os.environ,
            "FORDRING_KAFKA_BOOTSTRAP": backend.kafka_bootstrap,
            "FORDRING_MONGO_URI": backend.mongo_uri,
            "FORDRING_TOPIC_PREFIX": prefix,
            "FORDRING_HTTP_HOST": "127.0.0.1",
            "FORDRING_SERVICE_TOKEN": token,
            "FORDRING_LOG_LEVEL": "WARNING",
        }
        ledger = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
            [sys.executable, "-m", "services.ledger"],
            env={
                **common,
                "FORDRING_GRPC_HOST": "127.0.0.1",
                "FORDRING_GRPC_PORT": str(ledger_port),
                "FORDRING_HTTP_PORT": str(free_port()),
                "FORDRING_SANDBOX_API_KEY": api_key,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        portal = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
            [sys.executable, "-m", "services.portal"],
            env={
                **common,
                "FORDRING_HTTP_PORT": str(portal_port),
                "FORDRING_PUBLIC_URL": f"http://127.0.0.1:{portal_port}",
                "FORDRING_LINK_SECRET": link_secret,
                "FORDRING_LEDGER_TARGET": f"127.0.0.1:{ledger_port}",
                "FORDRING_DISPATCHER_TARGET": f"127.0.0.1:{dispatcher_port}",
                "FORDRING_LIVE_MAX": str(args.pages + 100),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            target = f"127.0.0.1:{ledger_port}"
            base = f"http://127.0.0.1:{portal_port}"
            await _ledger_ready(target)
            await _wait_http(f"{base}/healthz")
            (record,) = generate_invoices(1, seed=11, today=date.today(), customers=1)
            record["due_date"] = date.today().replace(year=date.today().year + 1).isoformat()
            record["lines"] = [
                {"description": "Strøm", "quantity": "1", "unit_price_minor": 100_000, "vat_rate": "25"}
            ]
            metadata = (("authorization", f"Bearer {api_key}"),)
            async with grpc.aio.insecure_channel(target) as channel:
                stub = ledger_pb2_grpc.LedgerServiceStub(channel)
                invoice = (await stub.IssueInvoice(to_request(record), metadata=metadata, timeout=60)).invoice
                link = f"/i/{invoice_token(invoice.id, link_secret, expires=None)}"

                async with httpx.AsyncClient(
                    base_url=base, limits=httpx.Limits(max_connections=args.concurrency), timeout=60
                ) as http:
                    await _rate(http, link, 50, args.concurrency)  # warm: channels, templates, caches
                    static_rate = await _rate(http, "/", args.requests, args.concurrency)
                    page_rate = await _rate(http, link, args.requests, args.concurrency)

                async def pay() -> None:
                    await stub.RecordPayment(
                        ledger_pb2.RecordPaymentRequest(
                            idempotency_key=f"bench-{invoice.id}",
                            amount=common_pb2.Money(minor_units=50_000, currency="NOK"),
                            paid_on=date.today().isoformat(),
                            customer_number=invoice.customer_number,
                            allocations=[
                                ledger_pb2.PaymentAllocationInput(invoice_id=invoice.id, amount_minor=50_000)
                            ],
                        ),
                        metadata=metadata,
                        timeout=60,
                    )

                arrivals = await _fan_out(base, link, args.pages, pay)
        finally:
            for process in (portal, ledger):
                process.terminate()
            for process in (portal, ledger):
                process.wait(timeout=30)
            await dispatcher.stop(None)
    arrivals.sort()
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "static_per_second": static_rate,
        "invoice_pages_per_second": page_rate,
        "ratio": page_rate / static_rate,
        "pages": args.pages,
        "fan_out_p50_seconds": statistics.median(arrivals),
        "fan_out_p95_seconds": arrivals[int(len(arrivals) * 0.95) - 1],
        "fan_out_all_seconds": arrivals[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--out", default="bench/results/portal_pages.json")
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    console.print(
        f"portal, one replica, {os.cpu_count()} cores shared with the ledger and the database:\n"
        f"  static page (GET /)         {result['static_per_second']:8.1f} per second\n"
        f"  invoice page (GET /i/…)     {result['invoice_pages_per_second']:8.1f} per second"
        f"   ({result['ratio']:.2f} of the static page; a new session and six reads each)\n"
        f"  live fan-out: {result['pages']} open pages of one invoice, one payment recorded:\n"
        f"    every page had it after {result['fan_out_all_seconds']:.2f} s "
        f"(p50 {result['fan_out_p50_seconds']:.2f} s, p95 {result['fan_out_p95_seconds']:.2f} s)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
