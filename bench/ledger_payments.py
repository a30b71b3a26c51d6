"""The matcher's payments applied by the ledger, against raw bulk updates of as many invoices, in one run
on one embedded database.

    python -m bench.ledger_payments [--count 50000]

Setup, not timed: SecantusDB in a temporary folder (a process of its own, as `fordring up` runs it),
the ledger's indexes, a tenant, its customers and N open invoices written straight into the ledger's
database by the ledger's own builders (an invoice as IssueInvoice stores it). Then, in the same run:
1. baseline: `bulk_write` of UpdateOne on `_id` ($set the paid amount, balance and status, $inc the
   version), batches of the consumer's size, no transaction, on a copy of the invoices with their
   indexes: what updating as many invoices costs the server. (The embedded server rewrites every
   index entry of a document it updates, and an invoice has ten indexes; a copy with `_id` alone
   is updated too, for comparison.)
2. the ledger: N PaymentMatched proposals, as the matcher sends them after a bank file (most pay an
   invoice exactly, a few part-pay or over-pay into credit balance, each naming the version it saw),
   through `ProposalHandlers.on_payment_batch`: the function the ledger's consumer calls, with
   batches of its size, without Kafka in between.
Target: payments per second at least 50 % of the baseline's (the invoices' copy with its indexes).

`seed_open_invoices`, `payments_for` and `apply_rate` are for benches that drive the ledger from the
matcher's side too. FORDRING_MONGO_COMMAND_STATS=/tmp/x-{pid}.json counts what each run sends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from subprocess import Popen
from typing import Any

from pymongo import UpdateOne

from services.cli.components import mongo_argv, mongo_uri
from services.cli.probes import MongoProbe
from services.cli.processes import spawn, stop_processes, tail
from services.common.clock import SystemClock
from services.common.errors import Violations
from services.common.events import Allocation, Event, PaymentMatched, PaymentMatchedData
from services.common.kid import KidScheme, generate_kid
from services.common.mongo import Database, Doc, create_mongo_client
from services.common.tenancy import Tenant
from services.ledger.changes import Changes
from services.ledger.customers import updated_customer
from services.ledger.documents import Ctx, customer_fields
from services.ledger.domain.customer import Address, CustomerData, validate_customer
from services.ledger.domain.invoice import IssueInvoice, LineInput, check_issue_invoice
from services.ledger.handlers import ProposalHandlers
from services.ledger.issuing import invoice_doc
from services.ledger.matched import MAX_BATCH
from services.ledger.store import INVOICES, LedgerStore, customer_id_for
from services.ledger.tenants import TenantDirectory
from tests.support.backends import free_port

TARGET = 0.50
DATABASE = "ledger_bench"
# Copies of the invoices for the baseline: with the invoices' indexes (what updating them costs), and
# with `_id` alone (what the server does without index upkeep).
BASELINE = "baseline_invoices"
BARE = "baseline_invoices_bare"
TENANT = Tenant(id="bench-tenant", name="Benkekreditor AS", org_number="974760673")


@dataclass(frozen=True)
class OpenInvoice:
    invoice_id: str
    kid: str
    invoice_number: str
    customer_id: str
    amount_minor: int
    version: int


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


# --- the database --------------------------------------------------------------------------------


@contextlib.contextmanager
def embedded_database(workdir: Path) -> Iterator[tuple[str, Popen[bytes]]]:
    """SecantusDB on a free port with its data under `workdir`; yields its URI and process."""
    port = free_port()
    uri = mongo_uri(port)
    log = workdir / "mongo.log"
    process = spawn(mongo_argv(port, workdir / "mongo"), {}, log)
    try:
        deadline = time.monotonic() + 60
        while (problem := MongoProbe(uri, timeout=2.0).check()) is not None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"SecantusDB did not start ({problem}):\n" + "\n".join(tail(log)))
            time.sleep(0.1)
        yield uri, process
    finally:
        stop_processes([process], grace=10.0)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of one process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- setup: open invoices as the ledger stores them ------------------------------------------------


def _ctx(tenant: Tenant, now: datetime) -> Ctx:
    return Ctx(tenant=tenant, actor="erp:bench", now=now, today=now.date(), trace_id="", traceparent="")


def _customer(tenant: Tenant, n: int, now: datetime) -> Doc:
    v = Violations()
    data = validate_customer(
        CustomerData(
            number=f"K-{n:06d}",
            name=f"Kunde {n} AS",
            kind="business",
            org_number="974760673",
            email=f"faktura{n}@kunde.example",
            address=Address(lines=("Storgata 1",), postal_code="0155", city="Oslo", country="NO"),
            channel_preferences=("email",),
            email_consent=True,
        ),
        v,
    )
    v.raise_if_any()
    cid = customer_id_for(tenant.id, data.number)
    doc = updated_customer(None, customer_fields(data), customer_id=cid, tenant_id=tenant.id, now=now)
    assert doc is not None  # a new customer is always written
    return doc


async def seed_open_invoices(
    store: LedgerStore, tenant: Tenant, count: int, *, per_customer: int = 4, chunk: int = 2_000
) -> list[OpenInvoice]:
    """`count` open invoices of `tenant` (and their customers, `per_customer` invoices each) written
    straight into the ledger's database, built as IssueInvoice builds them. The tenant is created
    when missing. Invoices are numbered 1.. with KIDs of the tenant's scheme."""
    now = datetime.now(UTC)
    ctx = _ctx(tenant, now)
    await store.tenants.update_one(
        {"_id": tenant.id},
        {
            "$setOnInsert": {
                "name": tenant.name,
                "settings": tenant.model_dump(exclude={"id", "name", "key_name"}),
                "created_at": now,
                "api_keys": [],
            }
        },
        upsert=True,
    )
    customers = [_customer(tenant, n, now) for n in range((count + per_customer - 1) // per_customer)]
    for i in range(0, len(customers), chunk):
        await store.customers.insert_many(customers[i : i + chunk], ordered=False)
    issue = now.date()
    template = IssueInvoice(
        idempotency_key="bench",
        customer_number=customers[0]["number"],
        customer=None,
        issue_date=issue.isoformat(),
        due_date=(issue + timedelta(days=30)).isoformat(),
        payment_terms_days=0,
        currency="NOK",
        lines=(),
    )
    drafts = {}
    for price in range(100_00, 5_000_00, 100_00):  # 49 amounts, checked once each
        cmd = dataclasses.replace(template, lines=(LineInput("Konsulenttimer", "1", price, "25"),))
        drafts[price] = (cmd, check_issue_invoice(cmd, jurisdiction="NO", kid_scheme=tenant.kid_scheme))
    rng = random.Random(count)
    scheme = KidScheme(tenant.kid_scheme)
    seeded: list[OpenInvoice] = []
    batch: list[Doc] = []
    for n in range(1, count + 1):
        customer = customers[(n - 1) // per_customer]
        cmd, draft = drafts[rng.randrange(100_00, 5_000_00, 100_00)]
        cmd = dataclasses.replace(cmd, idempotency_key=f"bench-{n}", customer_number=customer["number"])
        doc = invoice_doc(
            ctx,
            cmd,
            draft,
            customer,
            fingerprint=cmd.fingerprint(),
            number=str(n),
            kid=generate_kid(n, length=tenant.kid_length, scheme=scheme),
            profile_version=0,
        )
        doc["seq"] = n
        batch.append(doc)
        seeded.append(
            OpenInvoice(doc["_id"], doc["kid"], str(n), customer["_id"], doc["gross_minor"], doc["version"])
        )
        if len(batch) == chunk:
            await store.invoices.insert_many(batch, ordered=False)
            batch = []
    if batch:
        await store.invoices.insert_many(batch, ordered=False)
    return seeded


def payments_for(
    invoices: Sequence[OpenInvoice], tenant_id: str, *, seed: int = 1, part: float = 0.05, over: float = 0.05
) -> list[PaymentMatched]:
    """One PaymentMatched per invoice in a shuffled order (a bank file's), as the matcher proposes
    them: most pay the invoice exactly, `part` of them half of it, `over` of them 100,00 more (the
    customer's credit). Each names the invoice version it was based on."""
    rng = random.Random(seed)
    order = list(invoices)
    rng.shuffle(order)
    today = date.today().isoformat()
    events = []
    for n, inv in enumerate(order):
        roll = rng.random()
        allocated = inv.amount_minor // 2 if roll < part else inv.amount_minor
        amount = allocated + 100_00 if part <= roll < part + over else allocated
        events.append(
            PaymentMatched(
                tenant_id=tenant_id,
                subject=inv.invoice_id,
                occurred_at=datetime.now(UTC),
                data=PaymentMatchedData(
                    payment_id=f"bench-payment-{seed}-{n}",
                    amount_minor=amount,
                    currency="NOK",
                    paid_on=today,
                    method="kid",
                    reference=inv.kid,
                    customer_id=inv.customer_id,
                    allocations=[
                        Allocation(
                            invoice_id=inv.invoice_id, amount_minor=allocated, based_on_version=inv.version
                        )
                    ],
                ),
            )
        )
    return events


# --- the two runs ---------------------------------------------------------------------------------


def ledger_handlers(store: LedgerStore) -> ProposalHandlers:
    """The handlers the ledger's consumer calls, on `store`, without a broker or a relay."""
    return ProposalHandlers(Changes(store, on_commit=lambda: None), TenantDirectory(store), SystemClock())


async def apply_rate(
    handlers: ProposalHandlers,
    events: Sequence[Event],
    *,
    batch: int = MAX_BATCH,
    pids: dict[str, int] | None = None,
) -> Rate:
    """Apply `events` as the consumer does, `batch` at a time; the time and CPU it took."""
    pids = {"bench": os.getpid(), **(pids or {})}
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        failed = await handlers.on_payment_batch(list(events[i : i + batch]))
        if failed:
            raise RuntimeError(f"{len(failed)} proposals not applied, e.g. {next(iter(failed.values()))!r}")
    seconds = time.perf_counter() - started
    return Rate(len(events), seconds, {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()})


async def baseline_rate(
    db: Database,
    collection: str,
    invoice_ids: Sequence[str],
    *,
    batch: int = MAX_BATCH,
    pids: dict[str, int] | None = None,
) -> Rate:
    """Raw bulk updates of these invoices' copies in `collection` (`_id` point updates of the paid
    amount, balance, status and version; no transaction), `batch` per bulk_write."""
    pids = {"bench": os.getpid(), **(pids or {})}
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    now = datetime.now(UTC)
    started = time.perf_counter()
    for i in range(0, len(invoice_ids), batch):
        await db[collection].bulk_write(
            [
                UpdateOne(
                    {"_id": invoice_id},
                    {
                        "$set": {"paid_minor": 1, "balance_minor": 0, "status": "paid", "updated_at": now},
                        "$inc": {"version": 1},
                    },
                )
                for invoice_id in invoice_ids[i : i + batch]
            ],
            ordered=False,
        )
    seconds = time.perf_counter() - started
    return Rate(len(invoice_ids), seconds, {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()})


async def copy_invoices(db: Database, collection: str, *, indexes: bool) -> None:
    """A copy of the invoices (the same documents), with the invoices' indexes or with `_id` alone."""
    await db[collection].drop()
    if indexes:
        for name, spec in (await db[INVOICES].index_information()).items():
            if name != "_id_":
                options = {k: v for k, v in spec.items() if k not in ("key", "v", "ns")}
                await db[collection].create_index(spec["key"], name=name, **options)
    chunk: list[Doc] = []
    async for doc in db[INVOICES].find({}).sort("_id", 1):
        chunk.append(doc)
        if len(chunk) == 2_000:
            await db[collection].insert_many(chunk, ordered=False)
            chunk = []
    if chunk:
        await db[collection].insert_many(chunk, ordered=False)


async def check_applied(store: LedgerStore, events: Sequence[PaymentMatched]) -> dict[str, int]:
    """What the run left: invoices by status, payments stored, the credit balances' total."""
    statuses = {
        d["_id"]: d["n"]
        async for d in await store.invoices.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
    }
    payments = await store.payments.count_documents({})
    credit = 0
    async for c in store.customers.find({}, projection={"credit_balances": 1}):
        credit += sum((c.get("credit_balances") or {}).values())
    expected_credit = sum(e.data.amount_minor - e.data.allocations[0].amount_minor for e in events)
    if payments != len(events) or credit != expected_credit:
        raise AssertionError(
            f"{payments} payments (expected {len(events)}), credit {credit} ({expected_credit})"
        )
    return {**statuses, "payments": payments}


async def run(args: argparse.Namespace, uri: str, db_pid: int) -> dict[str, Any]:
    client = create_mongo_client(uri, app_name="bench-ledger-payments")
    try:
        store = LedgerStore(client, DATABASE)
        await client.drop_database(DATABASE)
        await store.ensure_indexes()
        started = time.perf_counter()
        seeded = await seed_open_invoices(store, TENANT, args.count)
        await copy_invoices(store.db, BASELINE, indexes=True)
        await copy_invoices(store.db, BARE, indexes=False)
        print(f"seeded {len(seeded):,} open invoices and two copies in {time.perf_counter() - started:.1f} s")
        events = payments_for(seeded, TENANT.id)
        order = [e.data.allocations[0].invoice_id for e in events]
        pids = {"database": db_pid}
        bare = await baseline_rate(store.db, BARE, order, batch=args.batch, pids=pids)
        _line("raw updates, _id index only", bare, "updates")
        baseline = await baseline_rate(store.db, BASELINE, order, batch=args.batch, pids=pids)
        _line("raw updates, the invoices' indexes", baseline, "updates")
        ledger = await apply_rate(ledger_handlers(store), events, batch=args.batch, pids=pids)
        _line("the ledger's batch path", ledger, "payments")
        left = await check_applied(store, events)
    finally:
        await client.close()
    ratio = ledger.per_second / baseline.per_second
    verdict = "ok" if ratio >= TARGET else "BELOW TARGET"
    print(f"payments / raw updates of the invoices = {ratio:.2f} (target >= {TARGET:.2f}: {verdict})")
    print(f"payments / raw updates of an index-less copy = {ledger.per_second / bare.per_second:.2f}")
    # The database's CPU per payment against per raw update: steadier than the rates on a shared machine.
    cpu_ratio = baseline.cpu["database"] / baseline.count / (ledger.cpu["database"] / ledger.count)
    print(f"database CPU per raw update / per payment = {cpu_ratio:.2f}")
    print(f"after: {left}")
    return {
        "count": args.count,
        "batch": args.batch,
        "cores": os.cpu_count(),
        "baseline_updates_per_second": baseline.per_second,
        "bare_updates_per_second": bare.per_second,
        "payments_per_second": ledger.per_second,
        "ratio": ratio,
        "ratio_to_bare": ledger.per_second / bare.per_second,
        "database_cpu_ratio": cpu_ratio,
        "target": TARGET,
        "cpu_seconds": {"bare": bare.cpu, "baseline": baseline.cpu, "ledger": ledger.cpu},
        "after": left,
    }


def _line(what: str, rate: Rate, unit: str) -> None:
    cpu = ", ".join(f"{who} {1000 * s / rate.count:.2f} ms" for who, s in rate.cpu.items())
    print(
        f"{what:36} {rate.count:,} {unit} in {rate.seconds:6.1f} s = {rate.per_second:7,.0f}/s"
        f"  (CPU per one: {cpu})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=50_000, help="open invoices, and payments")
    parser.add_argument("--batch", type=int, default=MAX_BATCH, help="proposals per batch (the consumer's)")
    parser.add_argument("--out", default="bench/results/ledger_payments.json")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="fordring-bench-") as work,
        embedded_database(Path(work)) as (uri, db),
    ):
        result = asyncio.run(run(args, uri, db.pid))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(0 if result["ratio"] >= TARGET else 1)


if __name__ == "__main__":
    main()
