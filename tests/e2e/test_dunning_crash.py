"""Two dunning replicas, each its own process, share the step run of 400 overdue invoices; one is killed
with SIGKILL while the run is under way and a new one started: every invoice is nudged once and
reminded once in the ledger, and the dunning outbox holds one proposal per step.

The processes run on the real clock, so nothing moves time: the invoices are issued back-dated (due 30
days ago), overdue from the start; each gets its nudge and, once the ledger applied it, its reminder
(due + 14 days has passed). The reminder's deadline is in the future, so the run stops there."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from fordring.dunning.v1 import dunning_pb2 as dpb
from fordring.dunning.v1.dunning_pb2_grpc import DunningServiceStub
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1.ledger_pb2_grpc import LedgerServiceStub
from pymongo import AsyncMongoClient

from services.common.bus import processed_among
from services.ledger.app import LedgerApp
from services.ledger.proposals import PROPOSALS_CONSUMER
from tests.support.backends import Backend, free_port
from tests.support.clock import MovableClock
from tests.support.dunning import all_day_policy, consumer, dunning_settings
from tests.support.ledger import SERVICE_TOKEN, TenantClient, eventually, invoice_request, replica_settings
from tests.support.ledger import today as oslo_today
from tests.support.matcher import new_tenant, topics_for

pytestmark = pytest.mark.e2e

COUNT = 400
STEPS = ("nudged", "reminded")


def dunning_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.dunning"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def environment(backend: Backend, prefix: str, ledger_port: int) -> dict[str, str]:
    """One replica's FORDRING_* variables: ports of its own, small claims and a short lease."""
    settings = dunning_settings(
        backend,
        prefix,
        ledger_port,
        grpc_port=free_port(),
        http_port=free_port(),
        step_batch=25,
        step_lease_seconds=5.0,
        log_level="INFO",
        log_format="text",
    )
    return {f"FORDRING_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v is not None}


def any_day_policy(debtor_kind: str) -> str:
    """`all_day_policy` without letters: a letter waits for a business day, and this test runs on any
    day of the week (e-mail is a written notice too)."""
    doc = json.loads(all_day_policy(debtor_kind))
    for step in doc["steps"]:
        step["channels"] = [c for c in step["channels"] if c != "print"] or ["email"]
    return json.dumps(doc)


@pytest.fixture
async def ledger(backend: Backend) -> AsyncIterator[tuple[LedgerApp, str]]:
    """A ledger of its own (own topics and database), on a clock nobody moves: the real time, as the
    dunning processes have it."""
    prefix = f"x{os.urandom(6).hex()}."
    await topics_for(backend, prefix)
    app = LedgerApp(
        replica_settings(backend.kafka_bootstrap, backend.mongo_uri, prefix, service_token=SERVICE_TOKEN),
        clock=MovableClock(),
    )
    await app.start()
    try:
        await asyncio.wait_for(app.consumers_ready.wait(), timeout=90)
        yield app, prefix
    finally:
        await app.stop()


async def issue_overdue(tenant: TenantClient) -> list[pb.Invoice]:
    """COUNT consumers' invoices issued 40 days ago, due 30 days ago."""
    issued = oslo_today() - timedelta(days=40)
    invoices: list[pb.Invoice] = []
    for start in range(0, COUNT, 100):
        invoices += await asyncio.gather(
            *(
                tenant.issue(
                    invoice_request(
                        customer=consumer(f"K-{n}"), issue_date=issued, due_date=issued + timedelta(days=10)
                    )
                )
                for n in range(start, min(COUNT, start + 100))
            )
        )
    return invoices


async def histories(tenant: TenantClient, invoices: list[pb.Invoice]) -> list[list[pb.HistoryEntry]]:
    found: list[list[pb.HistoryEntry]] = []
    for start in range(0, len(invoices), 50):
        found += await asyncio.gather(*(tenant.history(i.id) for i in invoices[start : start + 50]))
    return found


async def test_sigkill_a_dunning_replica_in_the_middle_of_the_step_run(
    backend: Backend, ledger: tuple[LedgerApp, str], tmp_path: Path
) -> None:
    app, prefix = ledger
    log = tmp_path / "dunning.log"
    envs = [environment(backend, prefix, app.grpc.port) for _ in range(3)]
    processes = [dunning_process(envs[0], log), dunning_process(envs[1], log)]
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(backend.mongo_uri, tz_aware=True)
    dunning_db = mongo[envs[0]["FORDRING_MONGO_DATABASE"]]
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc.port}") as ledger_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{envs[1]['FORDRING_GRPC_PORT']}") as channel,
        ):
            loop = asyncio.get_running_loop()
            tenant = await new_tenant(app, LedgerServiceStub(ledger_channel))
            # Through the replica that stays: the policies, before any invoice, so no replica has the
            # default one (08:00 to 20:00) cached for the tenant.
            for kind in ("consumer", "business"):
                await DunningServiceStub(channel).SetPolicy(
                    dpb.SetPolicyRequest(policy_json=any_day_policy(kind)),
                    metadata=tenant.metadata,
                    wait_for_ready=True,
                    timeout=90,
                )
            invoices = await issue_overdue(tenant)
            # Issued past their due date, they are overdue from the start: the sweep finds none.
            await app.sweep_overdue()
            assert {i.status for i in invoices} == {pb.INVOICE_STATUS_OVERDUE}

            async def proposed() -> int:
                return await dunning_db["outbox"].count_documents({"type": "DunningActionTaken"})

            await eventually(
                proposed, lambda n: n >= COUNT // 4, timeout=120, what="the first steps proposed"
            )
            processes[0].send_signal(signal.SIGKILL)
            processes[0].wait(timeout=10)
            killed_at = loop.time()
            at_kill = await proposed()
            leased = await dunning_db["timers"].count_documents({"owner": {"$ne": ""}})
            assert at_kill < 2 * COUNT, f"killed too late to tell ({at_kill} of {2 * COUNT} proposed)"
            processes.append(dunning_process(envs[2], log))

            async def reminded() -> int:
                return await app.store.invoices.count_documents(
                    {"tenant_id": tenant.tenant.id, "history.type": "reminded"}
                )

            await eventually(reminded, lambda n: n == COUNT, timeout=150, what="every invoice reminded")
            finished_in = loop.time() - killed_at

            async def unanswered() -> int:
                """Proposals in the dunning outbox the ledger has not applied or refused yet."""
                ids = await dunning_db["outbox"].distinct("_id", {"type": "DunningActionTaken"})
                return len(ids) - len(await processed_among(app.store.db, PROPOSALS_CONSUMER, ids))

            await eventually(unanswered, lambda n: n == 0, timeout=60, what="every proposal answered")

            entries = await histories(tenant, invoices)
            counts = Counter(
                (invoice.id, e.type) for invoice, es in zip(invoices, entries, strict=True) for e in es
            )
            wrong = {
                invoice.id: [counts[invoice.id, step] for step in STEPS]
                for invoice in invoices
                if any(counts[invoice.id, step] != 1 for step in STEPS)
            }
            assert not wrong, f"invoices without exactly one nudge and one reminder: {wrong}"

            rejected = Counter(
                e.summary.partition(": ")[2].partition(" (")[0]
                for es in entries
                for e in es
                if e.type == "proposal_rejected"
            )
            outbox = [
                json.loads(d["value"])
                async for d in dunning_db["outbox"].find(
                    {"type": "DunningActionTaken"}, projection={"value": 1}
                )
            ]
            print(
                f"proposed at the kill: {at_kill} ({leased} timers leased); every invoice reminded "
                f"{finished_in:.1f} s after it; proposals: {len(outbox)}; "
                f"refused by the ledger: {dict(rejected) or 'none'}"
            )
            per_action = Counter(e["data"]["action_id"] for e in outbox)
            twice = sorted(
                (d["action_id"], d["action"], d["based_on_version"], e["occurred_at"], e["id"])
                for e in outbox
                for d in [e["data"]]
                if per_action[d["action_id"]] > 1
            )
            assert not twice, "steps proposed more than once:\n" + "\n".join(map(str, twice))
            steps = {(e["data"]["invoice_id"], e["data"]["action"]) for e in outbox}
            assert steps == {(i.id, action) for i in invoices for action in ("nudge", "reminder")}
            # A refusal would mean a step decided on a version the ledger had moved past: the fencing
            # and the next look waiting for the ledger's answer leave none.
            assert not rejected
    finally:
        await mongo.close()
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        print(log.read_text()[-3000:])
        import shutil

        shutil.copy(log, f"/tmp/dunning-crash-{os.getpid()}.log")
