"""The matcher as its own process, killed with SIGKILL in the middle of a bank-file import and started
again: the import is finished by the new process from the stored file, every payment is decided and
proposed exactly once, every invoice is paid exactly once in the ledger, and importing the file again
changes nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from fordring.matcher.v1.matcher_pb2_grpc import MatcherServiceStub
from pymongo import AsyncMongoClient

from services.ledger.app import LedgerApp
from services.sandbox.bankfiles import FilePayment, ocr_giro_file
from tests.support.backends import Backend, free_port
from tests.support.clock import MovableClock
from tests.support.ledger import (
    SERVICE_TOKEN,
    customer_input,
    eventually,
    invoice_request,
    line,
    replica_settings,
)
from tests.support.matcher import matcher_settings, new_tenant, topics_for, upload

pytestmark = pytest.mark.e2e

COUNT = 1200


def matcher_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.matcher"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def environment(backend: Backend, prefix: str, ledger_port: int, grpc_port: int) -> dict[str, str]:
    settings = matcher_settings(
        backend,
        prefix,
        ledger_port,
        grpc_port=grpc_port,
        http_port=free_port(),
        import_batch=40,
        import_lease_seconds=3.0,
        log_level="INFO",
        log_format="text",
    )
    return {f"FORDRING_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}


@pytest.fixture
async def ledger(backend: Backend, app_clock: MovableClock) -> AsyncIterator[tuple[LedgerApp, str]]:
    prefix = f"k{os.urandom(6).hex()}."
    await topics_for(backend, prefix)
    app = LedgerApp(
        replica_settings(backend.kafka_bootstrap, backend.mongo_uri, prefix, service_token=SERVICE_TOKEN),
        clock=app_clock,
    )
    await app.start()
    try:
        await asyncio.wait_for(app.consumers_ready.wait(), timeout=90)
        yield app, prefix
    finally:
        await app.stop()


async def test_sigkill_the_matcher_in_the_middle_of_an_import(
    backend: Backend, ledger: tuple[LedgerApp, str], tmp_path: Path
) -> None:
    app, prefix = ledger
    grpc_port = free_port()
    env = environment(backend, prefix, app.grpc.port, grpc_port)
    log = tmp_path / "matcher.log"
    process = matcher_process(env, log)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc.port}") as ledger_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
    ):
        tenant = await new_tenant(app, LedgerServiceStub(ledger_channel))
        invoices: list[pb.Invoice] = []
        for start in range(0, COUNT, 100):
            invoices += await asyncio.gather(
                *(
                    tenant.issue(
                        invoice_request(
                            customer=customer_input(f"K-{n}"), lines=[line(unit_price_minor=100_00 + n)]
                        )
                    )
                    for n in range(start, min(COUNT, start + 100))
                )
            )
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(backend.mongo_uri)
        db = mongo[env["FORDRING_MONGO_DATABASE"]]
        try:

            async def projected() -> int:
                return await db["items"].count_documents({"tenant_id": tenant.tenant.id})

            await eventually(projected, lambda n: n == COUNT, timeout=120, what="the matcher's open items")
            content = ocr_giro_file(
                [FilePayment(int(i.gross_total.minor_units), reference=i.kid) for i in invoices]
            )
            call = asyncio.ensure_future(
                MatcherServiceStub(channel).ImportPayments(
                    iter(upload(content)), metadata=tenant.metadata, timeout=120
                )
            )

            async def recorded() -> int:
                return await db["payments"].count_documents({"tenant_id": tenant.tenant.id})

            await eventually(recorded, lambda n: n >= 200, timeout=60, what="the first payments recorded")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            halfway = await recorded()
            assert 0 < halfway < COUNT, f"killed too late to tell ({halfway} of {COUNT} recorded)"
            with pytest.raises(grpc.aio.AioRpcError):
                await call
            process = matcher_process(env, log)

            # The new process finds the import unfinished and finishes it from the stored file.
            # A batch the kill cut short holds its transaction (and the import document) until the server
            # aborts it (60 s on MongoDB): the new process resumes after that.
            await eventually(recorded, lambda n: n == COUNT, timeout=240, what="every payment recorded")
            imports = await db["imports"].find({"tenant_id": tenant.tenant.id}).to_list()
            assert [(i["state"], i["matched"], i["review"]) for i in imports] == [("done", COUNT, 0)]

            async def paid() -> list[pb.Invoice]:
                return [await tenant.get(i.id) for i in invoices[:: COUNT // 40]]

            await eventually(
                paid, lambda xs: all(x.status == pb.INVOICE_STATUS_PAID for x in xs), timeout=120, what="paid"
            )
            ledger_payments = app.store.db["payments"]

            async def applied() -> int:
                return await ledger_payments.count_documents({"tenant_id": tenant.tenant.id})

            await eventually(applied, lambda n: n == COUNT, timeout=120, what="every payment applied once")
            over = await app.store.db["invoices"].count_documents(
                {"tenant_id": tenant.tenant.id, "status": {"$ne": "paid"}}
            )
            assert over == 0
            # Once more: the same file pays nothing.
            again = await MatcherServiceStub(channel).ImportPayments(
                iter(upload(content)), metadata=tenant.metadata, timeout=60
            )
            assert again.already_imported
            await asyncio.sleep(1)
            assert await applied() == COUNT
        finally:
            await mongo.close()
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
            print(log.read_text()[-3000:])
