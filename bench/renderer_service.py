"""The renderer as a service against its bare engine, in the same run.

    make bench                 # or: python -m bench.renderer_service --invoices 300

A ledger (its own process, on an embedded broker and database) issues a batch of realistic
invoices (a third to businesses, which also get EHF). Then, in this process:
1. the bare engine: the same documents' views rendered to every form (`Forms.render`), one after
   the other, nothing stored;
2. the service: a renderer replica consumes the ledger's events from the beginning and, for each
   invoice, reads it from the ledger, renders every form, stores the documents and announces them
   (one transaction) — timed from its consumer joining to the last invoice's documents stored.
Target (issue 6): the service at >= 70 % of the bare engine's rate, per CPU second of the renderer
(on a machine of 2 cores, the wall-clock rate of the service also pays for the database and the
ledger answering it, which are idle while the bare engine runs; both ratios are printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import grpc
from fordring.ledger.v1 import ledger_pb2_grpc
from rich.console import Console

from services.cli.demo_data import generate_invoices
from services.cli.invoice_format import to_request
from services.common.events import INVOICE_TOPIC
from services.renderer.app import RendererApp
from services.renderer.forms import forms_for
from services.renderer.rendering import Target
from services.renderer.settings import RendererSettings
from tests.support.backends import embedded_backend, free_port
from tests.support.kafka import create_topics

TARGET = 0.70
console = Console()


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


async def measure(args: argparse.Namespace) -> dict[str, float]:
    token, secret, api_key = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(24)
    with (
        tempfile.TemporaryDirectory(prefix="fordring-bench-render-") as work,
        embedded_backend(Path(work)) as backend,
    ):
        prefix = "bench."
        await create_topics(backend.kafka_bootstrap, [prefix + INVOICE_TOPIC])
        grpc_port = free_port()
        env = {
            **os.environ,
            "FORDRING_KAFKA_BOOTSTRAP": backend.kafka_bootstrap,
            "FORDRING_MONGO_URI": backend.mongo_uri,
            "FORDRING_TOPIC_PREFIX": prefix,
            "FORDRING_GRPC_HOST": "127.0.0.1",
            "FORDRING_GRPC_PORT": str(grpc_port),
            "FORDRING_HTTP_HOST": "127.0.0.1",
            "FORDRING_HTTP_PORT": str(free_port()),
            "FORDRING_SANDBOX_API_KEY": api_key,
            "FORDRING_SERVICE_TOKEN": token,
            "FORDRING_LOG_LEVEL": "WARNING",
        }
        ledger = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
            [sys.executable, "-m", "services.ledger"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            target = f"127.0.0.1:{grpc_port}"
            await _ledger_ready(target)
            console.print(f"issuing {args.invoices} invoices …")
            records = generate_invoices(args.invoices, seed=3, today=date.today())
            ids: list[str] = []
            async with grpc.aio.insecure_channel(target) as channel:
                stub = ledger_pb2_grpc.LedgerServiceStub(channel)
                metadata = (("authorization", f"Bearer {api_key}"),)
                for record in records:
                    reply = await stub.IssueInvoice(to_request(record), metadata=metadata, timeout=60)
                    ids.append(reply.invoice.id)
            settings = RendererSettings(
                kafka_bootstrap=backend.kafka_bootstrap,
                mongo_uri=backend.mongo_uri,
                mongo_database="bench_renderer",
                topic_prefix=prefix,
                grpc_host="127.0.0.1",
                grpc_port=0,
                http_host="127.0.0.1",
                http_port=0,
                ledger_target=target,
                service_token=token,
                link_secret=secret,
                render_workers=args.workers,
                log_level="WARNING",
            )
            app = RendererApp(settings)
            # 1. The bare engine: the same views, every form, nothing stored.
            views = [
                (await app.renderer.view("sandbox", Target("invoice", invoice_id)))[0] for invoice_id in ids
            ]
            started, cpu = time.perf_counter(), time.process_time()
            for view in views:
                app.forms.render(view, forms_for(view), attach_pdf=True)
            engine_seconds = time.perf_counter() - started
            engine_cpu = time.process_time() - cpu
            # 2. The service, events in to documents stored and announced.
            await app.start()
            await asyncio.wait_for(app.consumers_ready.wait(), timeout=120)
            started, cpu = time.perf_counter(), time.process_time()
            while await app.store.files.count_documents({"metadata.form": "pdf"}) < len(ids):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            service_seconds = time.perf_counter() - started
            service_cpu = time.process_time() - cpu
            await app.stop()
        finally:
            ledger.terminate()
            ledger.wait(timeout=30)
    engine_rate = len(ids) / engine_seconds
    service_rate = len(ids) / service_seconds
    return {
        "invoices": len(ids),
        "engine_per_second": engine_rate,
        "service_per_second": service_rate,
        "wall_ratio": service_rate / engine_rate,
        # Per CPU second of this process (the renderer alone; its database and the ledger are other
        # processes on the same two cores, busy during the service run and idle during the engine's).
        "engine_per_cpu_second": len(ids) / engine_cpu,
        "service_per_cpu_second": len(ids) / service_cpu,
        "ratio": engine_cpu / service_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="bench/results/renderer_service.json")
    args = parser.parse_args()
    result = asyncio.run(measure(args))
    console.print(
        "invoices (every form: PDF, HTML, e-mail, SMS, EHF for businesses), "
        f"{os.cpu_count()} cores shared with the database and the ledger:\n"
        f"                per second   per CPU second of the renderer\n"
        f"  bare engine   {result['engine_per_second']:10.1f}   {result['engine_per_cpu_second']:10.1f}\n"
        f"  service       {result['service_per_second']:10.1f}   {result['service_per_cpu_second']:10.1f}"
        "   (events in, documents stored and announced)\n"
        f"  ratio         {result['wall_ratio']:10.2f}   {result['ratio']:10.2f}"
        f"  (target >= {TARGET:.2f}, per CPU second)"
    )
    ok = result["ratio"] >= TARGET
    console.print("[green]target met[/]" if ok else "[red]target missed[/]")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
