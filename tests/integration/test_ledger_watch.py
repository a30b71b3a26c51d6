"""WatchInvoice at scale: thousands of watchers on one replica, the rest of the API still fast, one
change stream behind them all, per-tenant caps, and clients that hang up leaving nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import multiprocessing
import statistics
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common import attributes as attr
from services.ledger.app import LedgerApp
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.ledger import (
    MakeTenant,
    TenantClient,
    customer_input,
    eventually,
    invoice_request,
    line,
    replica_settings,
)

if TYPE_CHECKING:
    from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceAsyncStub

pytestmark = pytest.mark.integration

WATCH = "/fordring.ledger.v1.LedgerService/WatchInvoice"
Call = Any  # grpc.aio.UnaryStreamCall[pb.WatchInvoiceRequest, pb.WatchInvoiceResponse]


def watch(client: TenantClient, invoice_id: str, stub: LedgerServiceAsyncStub | None = None) -> Call:
    return (stub or client.stub).WatchInvoice(
        pb.WatchInvoiceRequest(invoice_id=invoice_id), metadata=client.metadata
    )


async def receive(call: Call) -> pb.WatchInvoiceResponse:
    message = await asyncio.wait_for(call.read(), timeout=30)
    assert isinstance(message, pb.WatchInvoiceResponse), message
    return message


async def open_watches(starts: Sequence[Callable[[], Call]]) -> list[tuple[Call, pb.WatchInvoiceResponse]]:
    """Start the calls and read each one's first message, a few hundred at a time.

    (grpc sheds load when far more than a thousand calls arrive at the same instant: some of them
    end CANCELLED before any handler runs, unary calls as much as these.)
    """
    opened: list[tuple[Call, pb.WatchInvoiceResponse]] = []
    for i in range(0, len(starts), 250):
        calls = [start() for start in starts[i : i + 250]]
        opened += zip(calls, await asyncio.gather(*(receive(call) for call in calls)), strict=True)
    return opened


async def readyz(app: LedgerApp) -> int:
    def fetch() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{app.http.port}/readyz", timeout=5) as reply:
                return int(reply.status)
        except OSError:  # an HTTPError (503) or no answer within the timeout
            return 0

    return await asyncio.to_thread(fetch)


# A call that waits this long (seconds) is queued behind the watch streams, not merely slow.
STARVED = 10.0


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def timed(samples: list[float], call: Callable[[], Awaitable[object]]) -> None:
    start = time.perf_counter()
    await call()
    samples.append(time.perf_counter() - start)


async def follow(call: Call, last: int) -> list[int]:
    """The versions the call brings until `last`."""
    versions: list[int] = []
    while not versions or versions[-1] < last:
        versions.append((await receive(call)).invoice.version)
    return versions


def watch_elsewhere(port: int, watches: list[tuple[str, str, int]], results: Connection) -> None:
    """The ERPs' side of the watches (api key, invoice id, last version), in a process of its own
    as it would be: sends the first versions once all are open, then what each call brought."""

    async def run() -> None:
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(4)]
        stubs = [LedgerServiceStub(c) for c in channels]
        starts = [
            functools.partial(
                stubs[n % len(stubs)].WatchInvoice,
                pb.WatchInvoiceRequest(invoice_id=invoice_id),
                metadata=(("authorization", f"Bearer {key}"),),
            )
            for n, (key, invoice_id, _) in enumerate(watches)
        ]
        try:
            opened = await open_watches(starts)
            results.send([m.invoice.version for _, m in opened])
            results.send(
                await asyncio.gather(
                    *(follow(call, last) for (call, _), (_, _, last) in zip(opened, watches, strict=True))
                )
            )
            for call, _ in opened:
                call.cancel()
        finally:
            for channel in channels:
                await channel.close(grace=None)

    try:
        asyncio.run(run())
    except BaseException as exc:
        results.send(f"the watching process failed: {exc!r}")
        raise


async def receive_from(process: BaseProcess, results: Connection, timeout: float = 120) -> Any:
    if not await asyncio.to_thread(results.poll, timeout):
        alive = "alive" if process.is_alive() else "ended"
        raise AssertionError(f"the watching process ({alive}) sent nothing in {timeout:.0f} s")
    message = results.recv()
    assert not isinstance(message, str), message
    return message


async def test_two_thousand_watchers_get_every_version_while_the_api_stays_fast(
    ledger_app: LedgerApp, make_tenant: MakeTenant
) -> None:
    tenants = [await make_tenant() for _ in range(5)]
    invoices = [(t, await t.issue(invoice_request())) for t in tenants for _ in range(10)]
    payments_each = 8
    watchers_each = 40  # 50 invoices x 40 = 2,000 watchers, 400 per tenant
    watches = [
        (client.api_key, invoice.id, invoice.version + payments_each)
        for client, invoice in invoices
        for _ in range(watchers_each)
    ]
    opened_before = ledger_app.watch_hub.stats.streams_opened
    results, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(
        target=watch_elsewhere, args=(ledger_app.grpc.port, watches, sender), daemon=True
    )
    process.start()
    try:
        firsts = await receive_from(process, results)
        assert firsts == [invoice.version for _, invoice in invoices for _ in range(watchers_each)]
        assert ledger_app.watch_hub.stats.watchers >= len(watches)

        async def pay_all(share: list[tuple[TenantClient, pb.Invoice]]) -> None:
            for _ in range(payments_each):
                for client, invoice in share:
                    await client.pay(invoice, 10_00)

        get_latency: list[float] = []
        issue_latency: list[float] = []
        ready: list[int] = []
        streams_open: list[int] = []
        started = time.perf_counter()
        # Ten payers at a time, each paying its five invoices in turn.
        payers = asyncio.gather(*(pay_all(invoices[n::10]) for n in range(10)))
        delivered = asyncio.ensure_future(receive_from(process, results))

        async def get_invoices() -> None:
            n = 0
            while not delivered.done():
                client, invoice = invoices[n % len(invoices)]
                await timed(get_latency, lambda: client.get(invoice.id))  # noqa: B023 - awaited at once
                n += 1

        async def issue_invoices() -> None:
            n = 0
            while not delivered.done():
                client = tenants[n % len(tenants)]
                await timed(issue_latency, lambda: client.issue(invoice_request()))  # noqa: B023
                n += 1

        async def check_readiness() -> None:
            while not delivered.done():
                ready.append(await readyz(ledger_app))
                streams_open.append(ledger_app.watch_hub.stats.streams_open)
                await asyncio.sleep(0.2)

        await asyncio.gather(
            payers,
            delivered,
            check_readiness(),
            *(issue_invoices() for _ in range(3)),
            *(get_invoices() for _ in range(4)),
        )
        seen: list[list[int]] = delivered.result()
        elapsed = time.perf_counter() - started
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()

    for versions, (_, invoice_id, last) in zip(seen, watches, strict=True):
        assert versions == list(range(last - payments_each + 1, last + 1)), invoice_id
    stats = ledger_app.watch_hub.stats
    print(
        f"\n{len(watches)} watchers, {len(invoices) * payments_each} payments, "
        f"{len(watches) * payments_each} messages in {elapsed:.1f} s: "
        f"GetInvoice p50 {statistics.median(get_latency) * 1000:.0f} ms "
        f"p99 {percentile(get_latency, 0.99) * 1000:.0f} ms (n={len(get_latency)}), "
        f"IssueInvoice p50 {statistics.median(issue_latency) * 1000:.0f} ms "
        f"p99 {percentile(issue_latency, 0.99) * 1000:.0f} ms (n={len(issue_latency)}); "
        f"change streams open at most {max(streams_open)}, opened {stats.streams_opened - opened_before}, "
        f"versions skipped {stats.skipped_versions}"
    )
    # Not starved: every read and issue is answered while 2,000 streams are served (latency itself is
    # the bench's business; this bound only catches calls queued behind the streams, on any machine).
    assert percentile(get_latency, 0.99) < STARVED
    assert percentile(issue_latency, 0.99) < STARVED
    assert ready
    assert set(ready) == {200}
    # One change stream, and so one pooled connection at a time, served them all.
    assert max(streams_open) == 1
    assert stats.streams_opened - opened_before <= 1


async def test_a_tenant_may_hold_only_so_many_watchers_and_hanging_up_frees_them(
    ledger_app: LedgerApp, make_tenant: MakeTenant
) -> None:
    greedy, other = await make_tenant(), await make_tenant()
    invoice = await greedy.issue(invoice_request())
    others_invoice = await other.issue(invoice_request())
    cap = ledger_app.settings.watch_max_per_tenant
    calls: list[Call] = []
    try:
        calls += [call for call, _ in await open_watches([lambda: watch(greedy, invoice.id)] * cap)]

        refused = watch(greedy, invoice.id)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await refused.read()
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"already watches {cap} invoices" in (error.value.details() or "")
        # Another tenant is not held back by this one.
        others_call = watch(other, others_invoice.id)
        calls.append(others_call)
        assert (await receive(others_call)).invoice.id == others_invoice.id

        for call in calls[:10]:
            call.cancel()

        async def watchers() -> int:
            return ledger_app.watch_hub.stats.watchers

        await eventually(watchers, lambda n: n <= cap - 10 + 1, what="cancelled watchers leaving")
        again = [watch(greedy, invoice.id) for _ in range(10)]
        calls += again
        await asyncio.gather(*(receive(call) for call in again))
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await watch(greedy, invoice.id).read()
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        for call in calls:
            call.cancel()


async def test_a_watcher_sees_only_its_own_tenants_invoice(make_tenant: MakeTenant) -> None:
    owner, stranger = await make_tenant(), await make_tenant()
    invoice = await owner.issue(invoice_request())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await watch(stranger, invoice.id).read()
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_no_change_is_missed_right_after_the_first_message(tenant: TenantClient) -> None:
    invoice = await tenant.issue(invoice_request())
    for _ in range(5):
        call = watch(tenant, invoice.id)
        try:
            # Pay while the watch starts: the version may reach the watcher in its first message or
            # after it, but always, and never twice.
            paid, now = await asyncio.gather(tenant.pay(invoice, 1_00), receive(call))
            after = paid.invoices[0].version
            versions = [now.invoice.version]
            while versions[-1] < after:
                versions.append((await receive(call)).invoice.version)
            assert versions == list(range(versions[0], after + 1))
        finally:
            call.cancel()


async def test_clients_hanging_up_leave_no_context_errors_and_end_their_spans(
    tenant: TenantClient,
    ledger_app: LedgerApp,
    span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    # Large messages written while the clients hang up one by one: some hang up in the middle of a
    # write. (Before the fix, 2 to 10 of these 100 left "Failed to detach context" behind.)
    text = "Konsulenttimer, prosjekt Fjordbris, fase 2: analyse, utvikling, testing og dokumentasjon. " * 10
    invoice = await tenant.issue(
        invoice_request(lines=[line(unit_price_minor=100_00, description=text[:1000]) for _ in range(300)])
    )
    calls = [call for call, _ in await open_watches([lambda: watch(tenant, invoice.id)] * 100)]

    async def read_on(call: Call) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            while isinstance(await call.read(), pb.WatchInvoiceResponse):
                pass

    readers = [asyncio.create_task(read_on(call)) for call in calls]

    async def pay() -> None:
        for _ in range(30):
            await tenant.pay(invoice, 1_00)

    payer = asyncio.create_task(pay())
    for call in calls:
        await asyncio.sleep(0.01)
        call.cancel()
    await payer
    await asyncio.gather(*readers)

    async def watchers() -> int:
        return ledger_app.watch_hub.stats.watchers

    await eventually(watchers, lambda n: n == 0, what="the watchers leaving")
    gc.collect()
    await asyncio.sleep(0.5)  # what the garbage collector finalizes runs on the loop

    assert [r.getMessage() for r in caplog.records if r.name == "opentelemetry.context"] == []
    spans = [
        s
        for s in span_exporter.get_finished_spans()
        if s.name == WATCH and (s.attributes or {}).get(attr.TENANT_ID) == tenant.tenant.id
    ]
    assert len(spans) == len(calls)
    assert all(s.end_time is not None for s in spans)


async def test_stopping_the_server_ends_open_watches_promptly(
    backend: Backend, app_clock: MovableClock, make_tenant: MakeTenant
) -> None:
    # A replica of its own (own database and topics), to stop it under its watchers.
    prefix = f"t{uuid.uuid4().hex[:12]}."
    app = LedgerApp(
        replica_settings(
            backend.kafka_bootstrap,
            backend.mongo_uri,
            prefix,
            shutdown_grace=10.0,
            sandbox_api_key="watch-stop-key",
        ),
        clock=app_clock,
    )
    await app.start()
    stopped = False
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc.port}") as channel:
            stub = LedgerServiceStub(channel)
            metadata = (("authorization", "Bearer watch-stop-key"),)
            issued = await stub.IssueInvoice(
                invoice_request(customer=customer_input("K-STOP")), metadata=metadata
            )
            calls = [
                stub.WatchInvoice(pb.WatchInvoiceRequest(invoice_id=issued.invoice.id), metadata=metadata)
                for _ in range(50)
            ]
            await asyncio.gather(*(receive(call) for call in calls))

            start = time.perf_counter()
            await app.stop()
            stopped = True
            took = time.perf_counter() - start
            codes = await asyncio.gather(*(c.code() for c in calls))
    finally:
        if not stopped:
            await app.stop()
    assert took < 5.0, f"stop took {took:.1f} s with open watches (grace 10 s)"
    assert set(codes) == {grpc.StatusCode.OK}
