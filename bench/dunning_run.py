"""The dunning run on the real database: the first step (the nudge) of 200,000 overdue invoices decided
and stored by the service's step run, beside a same-run baseline of as many lease claims alone.

    make bench      # or: python -m bench.dunning_run [--count 200000] [--batch 500] [--wave 2000]

Setup, not timed: SecantusDB in a temporary folder (a process of its own, as `fordring up` runs it),
the dunning database's indexes, N cases as the projection writes them (`summary_fields` of an
InvoiceSummary: consumers' invoices of 1 250 kr, overdue, due 20 days before "now"), each with its
step timer, and N bare timers due at the same times in a collection of their own for the baseline.
"Now" is Tuesday 1 December 2026, 12:00 in Oslo: a business day, inside the default sending window and
past the bank files' cut-off, so every case's nudge is due under the default policies. The timers
fall due `--wave` at a time, a second apart; each phase's clock moves on to the next second when
nothing is due (the whole run spans minutes of "now", far from the six hours after which a proposed
step is looked at again). Why waves: the embedded database has no limit push-down — a claim's
`find(due).sort(due_at).limit(batch)` reads every due timer — so with all 200,000 due at once
(`--wave 0`) both phases are quadratic and the claims alone took 33 minutes here; on MongoDB the
claim is an index range scan of `batch` entries either way. Then, in one run:
1. baseline: the N bare timers claimed (`Timers.claim`) and completed (`Timers.complete`), `--batch`
   at a time (the service's step_batch), until none is due: what the leases cost alone;
2. the run: `Timers.run_once` with the service's handler (`Stepper.run`) until none is due, the loop
   each replica runs: claim, read the cases, decide, and store in one transaction per claim the
   proposals (the outbox: no relay runs, so they stay there), the cases and the timers.
Target: steps decided per second at least 30 % of the baseline's claims per second. Each case must
come out with exactly one proposal in the outbox, its nudge.

FORDRING_MONGO_COMMAND_STATS=/tmp/x-{pid}.json counts what each run sends (the baseline's timers are
`baseline_timers`); `--profile FILE` writes a cProfile of the run (the bench process's side).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any, Final

from bench.ledger_payments import Rate, cpu_seconds, embedded_database
from services.common.clock import OSLO, FixedClock
from services.common.events import InvoiceSummary
from services.common.mongo import Doc, create_mongo_client
from services.common.outbox import OUTBOX
from services.common.timers import Timers, timer_doc
from services.dunning.cases import summary_fields
from services.dunning.policies import PolicyBook
from services.dunning.stepping import Stepper, Tenants
from services.dunning.store import BANK_DAYS, STEP_TIMER, DunningStore, timer_id

TARGET: Final = 0.30
DATABASE: Final = "dunning_bench"
BASELINE: Final = "baseline_timers"
TENANT: Final = "bench-tenant"
TODAY: Final = date(2026, 12, 1)  # a Tuesday
NOW: Final = datetime.combine(TODAY, clock_time(12, 0), tzinfo=OSLO).astimezone(UTC)
# The service's settings (services/dunning/settings.py): claim size, lease, the look after a proposal.
STEP_BATCH: Final = 500
LEASE_SECONDS: Final = 60.0
HELD_RECHECK_SECONDS: Final = 6 * 3600.0
CHUNK: Final = 2_000
# Steps fall due in waves of this many, a second apart (the claims keep up with a steady stream);
# --wave 0 makes them all due at once.
WAVE: Final = 2_000
WAVE_APART: Final = timedelta(seconds=1)


def case_doc(n: int) -> Doc:
    """The n-th case as the projection keeps it after the ledger's InvoiceOverdue."""
    due = TODAY - timedelta(days=20)
    summary = InvoiceSummary(
        invoice_id=f"inv-{n:07d}",
        kind="invoice",
        invoice_number=str(100_000 + n),
        kid="",
        customer_id=f"cust-{n // 4:07d}",
        customer_number=f"K{n // 4:07d}",
        customer_kind="consumer",
        currency="NOK",
        issue_date=(due - timedelta(days=14)).isoformat(),
        due_date=due.isoformat(),
        gross_minor=1_250_00,
        charges_minor=0,
        paid_minor=0,
        credited_minor=0,
        balance_minor=1_250_00,
        status="overdue",
        dunning_stage=0,
        version=2,
        language="nb",
    )
    return {"_id": summary.invoice_id, **summary_fields(TENANT, summary), "changed_at": NOW}


async def insert_chunked(collection: Any, docs: list[Doc]) -> None:
    for i in range(0, len(docs), CHUNK):
        await collection.insert_many(docs[i : i + CHUNK], ordered=False)


def due_at(n: int, wave: int) -> datetime:
    """When the n-th case's step timer is due: all at once (wave 0: the nudge's day, 08:00, as the
    projection made them), or in waves of `wave` timers a second apart from "now" on."""
    if not wave:
        return datetime.combine(TODAY - timedelta(days=17), clock_time(8), tzinfo=OSLO).astimezone(UTC)
    return NOW + (n // wave) * WAVE_APART


async def seed(store: DunningStore, count: int, wave: int) -> None:
    """N cases, each with its step timer, and N bare timers due at the same times for the baseline;
    the tenant's bank files of the day are in."""
    cases = [case_doc(n) for n in range(count)]
    await insert_chunked(store.cases, cases)
    for collection in ("timers", BASELINE):
        await insert_chunked(
            store.db[collection],
            [
                timer_doc(timer_id(c["_id"]), STEP_TIMER, due_at(n, wave), {}, tenant_id=TENANT)
                for n, c in enumerate(cases)
            ],
        )
    await store.db[BANK_DAYS].insert_one({"_id": TENANT, "last_day": TODAY.isoformat()})


def next_wave(clock: FixedClock, done: int, total: int, wave: int) -> bool:
    """Nothing is due now: move the clock on to the next wave's second; False when none is left."""
    if not wave or done >= total:
        return False
    clock.set(NOW + (done // wave) * WAVE_APART)
    return True


class Progress:
    """A line on stderr each tenth of the way: a 200,000-invoice phase runs for many minutes."""

    def __init__(self, what: str, total: int) -> None:
        self._what = what
        self._total = total
        self._step = max(1, total // 10)
        self._next = self._step
        self._started = time.perf_counter()

    def update(self, done: int) -> None:
        if done < self._next or done >= self._total:
            return
        self._next = (done // self._step + 1) * self._step
        seconds = time.perf_counter() - self._started
        print(
            f"  {self._what}: {done:,} of {self._total:,} in {seconds:.0f} s"
            f" ({done / seconds:,.0f}/s so far)",
            file=sys.stderr,
            flush=True,
        )


async def claims_alone(
    timers: Timers, clock: FixedClock, pids: dict[str, int], total: int, wave: int
) -> Rate:
    """The baseline: claim and complete every due timer, a claim at a time."""
    clock.set(NOW)
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    done = 0
    progress = Progress("lease claims", total)
    started = time.perf_counter()
    while True:
        claimed = await timers.claim([STEP_TIMER])
        if not claimed:
            if next_wave(clock, done, total, wave):
                continue
            break
        await timers.complete([t.id for t in claimed])
        done += len(claimed)
        progress.update(done)
    seconds = time.perf_counter() - started
    return Rate(done, seconds, {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()})


async def step_run(
    stepper: Stepper, clock: FixedClock, pids: dict[str, int], profile: str, total: int, wave: int
) -> Rate:
    """The run: `Timers.run_once` with the service's handler until no timer is due."""
    clock.set(NOW)
    profiler = cProfile.Profile() if profile else None
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    done = 0
    progress = Progress("steps", total)
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    while True:
        claimed = await stepper.timers.run_once({STEP_TIMER: stepper.run})
        if not claimed:
            if next_wave(clock, done, total, wave):
                continue
            break
        done += claimed
        progress.update(done)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds = time.perf_counter() - started
    return Rate(done, seconds, {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()})


async def check_run(store: DunningStore, count: int) -> dict[str, int]:
    """What the run left: one nudge proposed per case, each case's timer at its safety-net look."""
    proposals: dict[str, int] = {}
    actions: set[str] = set()
    async for doc in store.db[OUTBOX].find({"type": "DunningActionTaken"}, projection={"value": 1}):
        data = json.loads(doc["value"])["data"]
        proposals[data["action"]] = proposals.get(data["action"], 0) + 1
        actions.add(data["action_id"])
    stepped = await store.cases.count_documents({"outcome": "due", "next_step": "nudge"})
    later = await store.db["timers"].count_documents(
        {"due_at": {"$gte": NOW + timedelta(seconds=HELD_RECHECK_SECONDS)}}
    )
    left = {
        "nudges": proposals.get("nudge", 0),
        "action_ids": len(actions),
        "cases": stepped,
        "timers": later,
    }
    if proposals != {"nudge": count} or len(actions) != count or stepped != count or later != count:
        raise AssertionError(f"expected {count} of each: {left} (proposals {proposals})")
    return left


async def run(args: argparse.Namespace, uri: str, db_pid: int) -> dict[str, Any]:
    client = create_mongo_client(uri, app_name="bench-dunning-run")
    clock = FixedClock(NOW)
    try:
        await client.drop_database(DATABASE)
        store = DunningStore(client, DATABASE)
        await store.ensure_indexes()
        timers = Timers(store.db, clock, lease_seconds=LEASE_SECONDS, batch=args.batch)
        await timers.ensure_indexes()
        baseline_timers = Timers(
            store.db, clock, lease_seconds=LEASE_SECONDS, batch=args.batch, collection=BASELINE
        )
        await baseline_timers.ensure_indexes()
        started = time.perf_counter()
        await seed(store, args.count, args.wave)
        print(
            f"seeded {args.count:,} cases with their timers, and as many bare timers, in "
            f"{time.perf_counter() - started:.1f} s"
        )
        tenants = Tenants(None)
        tenants.put(TENANT, "NO")
        stepper = Stepper(
            store, timers, PolicyBook(store, clock), tenants, clock, held_recheck=HELD_RECHECK_SECONDS
        )
        pids = {"bench": os.getpid(), "database": db_pid}
        baseline = await claims_alone(baseline_timers, clock, pids, args.count, args.wave)
        _line("lease claims alone (claim, complete)", baseline, "timers")
        stepped = await step_run(stepper, clock, pids, args.profile, args.count, args.wave)
        _line("the step run (claim, decide, store)", stepped, "steps")
        left = await check_run(store, args.count)
    finally:
        await client.close()
    ratio = stepped.per_second / baseline.per_second
    verdict = "ok" if ratio >= TARGET else "BELOW TARGET"
    print(f"steps / lease claims = {ratio:.2f} (target >= {TARGET:.2f}: {verdict})")
    print(f"after: {left}")
    return {
        "count": args.count,
        "batch": args.batch,
        "wave": args.wave,
        "cores": os.cpu_count(),
        "claims_per_second": baseline.per_second,
        "steps_per_second": stepped.per_second,
        "ratio": ratio,
        "target": TARGET,
        "cpu_seconds": {"baseline": baseline.cpu, "run": stepped.cpu},
        "after": left,
    }


def _line(what: str, rate: Rate, unit: str) -> None:
    cpu = ", ".join(f"{who} {1000 * s / rate.count:.2f} ms" for who, s in rate.cpu.items())
    print(
        f"{what:38} {rate.count:,} {unit} in {rate.seconds:6.1f} s = {rate.per_second:7,.0f}/s"
        f"  (CPU per one: {cpu})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200_000, help="overdue invoices (cases), and timers")
    parser.add_argument("--batch", type=int, default=STEP_BATCH, help="timers per claim (step_batch)")
    parser.add_argument(
        "--wave",
        type=int,
        default=WAVE,
        help="steps falling due each second (0: every one due at once, which the embedded database "
        "makes quadratic: it reads every due timer on each claim)",
    )
    parser.add_argument("--profile", default="", help="write a cProfile of the step run to this file")
    parser.add_argument("--out", default="bench/results/dunning_run.json")
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
