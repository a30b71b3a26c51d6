"""Dunning tests: a ledger and a dunning service of their own (own topics, databases and clock) on the
session's broker and database. The clock is theirs alone: the tests move it by weeks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import grpc
from fordring.common.v1 import common_pb2 as cpb
from fordring.dunning.v1 import dunning_pb2 as dpb
from fordring.dunning.v1.dunning_pb2_grpc import DunningServiceStub
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub

from services.common.clock import OSLO
from services.dunning.app import DunningApp
from services.dunning.domain.policy import default_policy
from services.dunning.settings import DunningSettings
from services.ledger.app import LedgerApp
from tests.support.backends import Backend
from tests.support.clock import MovableClock
from tests.support.ledger import SERVICE_TOKEN, TenantClient, eventually, invoice_request, replica_settings
from tests.support.matcher import new_tenant, topics_for


def dunning_settings(backend: Backend, prefix: str, ledger_port: int, **over: Any) -> DunningSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "kafka_bootstrap": backend.kafka_bootstrap,
        "mongo_uri": backend.mongo_uri,
        "mongo_database": f"dunning_{prefix.strip('.')}",
        "topic_prefix": prefix,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "ledger_target": f"127.0.0.1:{ledger_port}",
        "service_token": SERVICE_TOKEN,
        "shutdown_grace": 2.0,
        "step_lease_seconds": 5.0,
        "rejected_recheck_seconds": 1.0,
    }
    values.update(over)
    return DunningSettings(**values)


def all_day_policy(debtor_kind: str = "consumer", **changes: Any) -> str:
    """The default Norwegian policy, sent at any hour and without the bank-files wait: the tests run at
    whatever time of day it is."""
    policy = default_policy("NO", debtor_kind)  # type: ignore[arg-type]
    doc = json.loads(policy.to_json())
    doc.update(
        {"window_opens": "00:00:00", "window_closes": "23:59:00", "bank_files_cutoff": None}, **changes
    )
    return json.dumps(doc)


def consumer(number: str, name: str = "Kari Nordmann") -> pb.CustomerInput:
    """A private person (the consumer policy: fees, no compensation)."""
    return pb.CustomerInput(
        number=number,
        name=name,
        kind=pb.CUSTOMER_KIND_CONSUMER,
        email=f"{number.lower()}@example.org",
        phone="+4791234567",
        address=cpb.Address(lines=["Storgata 2"], postal_code="0155", city="Oslo", country="NO"),
        language="nb",
        channel_preferences=[pb.CHANNEL_EMAIL],
        consents=pb.Consents(email=True, sms=True),
    )


@dataclass
class DunWorld:
    ledger: LedgerApp
    dunning: DunningApp
    ledger_stub: Any
    stub: Any
    clock: MovableClock
    prefix: str
    backend: Backend

    async def ledger_tenant(self) -> TenantClient:
        """A tenant with the default policies (nothing saved)."""
        return await new_tenant(self.ledger, self.ledger_stub)

    async def tenant(self, *, policy: str | None = None) -> TenantClient:
        tenant = await new_tenant(self.ledger, self.ledger_stub)
        for kind in ("consumer", "business"):
            await self.stub.SetPolicy(
                dpb.SetPolicyRequest(policy_json=all_day_policy(kind)), metadata=tenant.metadata
            )
        if policy is not None:
            await self.stub.SetPolicy(dpb.SetPolicyRequest(policy_json=policy), metadata=tenant.metadata)
        return tenant

    def at(self, day: date, hour: int = 12) -> None:
        """Move the clock to `day` at `hour` o'clock in Oslo (never backwards)."""
        target = datetime.combine(day, time(hour), tzinfo=OSLO)
        delta = target - self.clock.now()
        if delta > timedelta(0):
            self.clock.advance(delta)
        self.dunning.timers.wake()

    def to(self, at: datetime) -> None:
        """Move the clock to `at` (never backwards) and let the step timers look."""
        delta = at - self.clock.now()
        if delta > timedelta(0):
            self.clock.advance(delta + timedelta(seconds=1))
        self.dunning.timers.wake()

    async def next_step(
        self, tenant: TenantClient, invoice_id: str, step: str, timeout: float = 30
    ) -> dpb.Case:
        """Wait until the case's next step is `step`, waiting for its time (the ledger has applied the
        one before), then move the clock to that time."""

        async def case() -> dpb.Case:
            return await self.case(tenant, invoice_id)

        found = await eventually(
            case,
            lambda c: c.next_step == step and c.outcome in ("waiting", "due", "held"),
            timeout=timeout,
            what=f"{step} being the next step",
        )
        if found.outcome == "waiting":
            self.to(datetime.fromisoformat(found.next_at.replace("Z", "+00:00")))
        case_now: dpb.Case = found
        return case_now

    async def sweep(self) -> None:
        await self.ledger.sweep_overdue()

    async def nudged(self, tenant: TenantClient, customer_number: str) -> pb.Invoice:
        """A consumer's invoice issued today, due in 10 days, nudged once overdue (the clock moved
        13 days on)."""
        today = self.clock.today()
        invoice: pb.Invoice = await tenant.issue(
            invoice_request(customer=consumer(customer_number), issue_date=today, due_in_days=10)
        )
        await self.known(invoice.id)
        self.at(today + timedelta(days=13))
        await self.sweep()
        await self.wait_history(tenant, invoice.id, "nudged")
        return invoice

    async def case(self, tenant: TenantClient, invoice_id: str) -> dpb.Case:
        case: dpb.Case = await self.stub.GetCase(
            dpb.GetCaseRequest(invoice_id=invoice_id), metadata=tenant.metadata
        )
        return case

    async def known(self, invoice_id: str, version: int = 1) -> None:
        async def seen() -> int:
            doc = await self.dunning.store.cases.find_one({"_id": invoice_id}, projection={"version": 1})
            return int((doc or {}).get("version", 0))

        await eventually(seen, lambda v: v >= version, timeout=30, what=f"dunning seeing version {version}")

    async def history_types(self, tenant: TenantClient, invoice_id: str) -> list[str]:
        return [e.type for e in await tenant.history(invoice_id)]

    async def wait_history(
        self, tenant: TenantClient, invoice_id: str, kind: str, timeout: float = 30
    ) -> list[str]:
        async def types() -> list[str]:
            self.dunning.timers.wake()
            return await self.history_types(tenant, invoice_id)

        return await eventually(
            types, lambda t: kind in t, timeout=timeout, what=f"{kind} in the ledger's history"
        )


@contextlib.asynccontextmanager
async def dun_world_running(backend: Backend, **over: Any) -> AsyncIterator[DunWorld]:
    prefix = f"d{uuid.uuid4().hex[:12]}."
    await topics_for(backend, prefix)
    clock = MovableClock()
    ledger = LedgerApp(
        replica_settings(backend.kafka_bootstrap, backend.mongo_uri, prefix, service_token=SERVICE_TOKEN),
        clock=clock,
    )
    await ledger.start()
    app = DunningApp(dunning_settings(backend, prefix, ledger.grpc.port, **over), clock=clock)
    await app.start()
    try:
        await asyncio.wait_for(
            asyncio.gather(ledger.consumers_ready.wait(), app.consumers_ready.wait()), timeout=90
        )
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{ledger.grpc.port}") as ledger_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc.port}") as channel,
        ):
            yield DunWorld(
                ledger,
                app,
                LedgerServiceStub(ledger_channel),
                DunningServiceStub(channel),
                clock,
                prefix,
                backend,
            )
    finally:
        await app.stop()
        await ledger.stop()
